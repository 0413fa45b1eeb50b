"""The `tokcom` command.

    tokcom demo [--output-dir DIR] [--num-scenes N] [--seed S]
    tokcom allocate PROBLEM.json [--method proposed|alternating|pb-wf|era|max|half] [--output OUT.json]
    tokcom train --recipe RECIPE --output-dir DIR [--stages ...] [--resume] [--init-model PATH] [--max-steps N]
    tokcom evaluate [--model PATH] --snr-db 0 10 20 [--num-samples N] [--channel-type awgn] [--fit-performance-model] --output OUT.json
    tokcom export [--model PATH_OR_NAME] --output DIR [--repo-id OWNER/NAME] [--results EVAL.json] [--overwrite]
    tokcom publish DIR --repo-id OWNER/NAME [--private] [--dry-run] [--repo-type model|space]
    tokcom space [--build-dir DIR] [--model PATH] [--taichi-model PATH] [--unitocom-model PATH] [--port 7860]
                 [--no-launch] [--overwrite]

Each subcommand imports its implementation lazily so that `tokcom --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def write_json_atomic(path: str | os.PathLike, payload) -> Path:
    """Write `payload` as JSON to `path` through a temporary file, so a failure leaves no half-written file."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2, sort_keys=False)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:  # e.g. a full disk: the previous file (if any) stays, no temporary is left
        tmp.unlink(missing_ok=True)
        raise
    return path


def _check_output_parent(path, argument: str) -> None:
    """`ValueError` naming `argument` when the folder that will hold `path` cannot be written (before any work)."""
    from tokcom.files import check_writable_folder

    if path:
        check_writable_folder(Path(path).expanduser().absolute().parent, argument)


def _cmd_allocate(args: argparse.Namespace) -> int:
    from tokcom.pipelines.allocation import METHODS, allocate

    if args.method not in METHODS:
        raise ValueError(f"`--method` must be one of {METHODS}, got {args.method!r}.")
    problem_path = Path(args.problem)
    if not problem_path.is_file():
        raise FileNotFoundError(f"Problem file not found: {problem_path}")
    try:
        problem = json.loads(problem_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"Problem file {problem_path} is not valid JSON: {error}") from None
    except RecursionError:
        raise ValueError(f"Problem file {problem_path} nests JSON too deeply to be a problem dict.") from None
    result = allocate(problem, method=args.method)
    if args.output:
        write_json_atomic(args.output, result)
        print(f"wrote {args.output}", file=sys.stderr)
    print(json.dumps(result, indent=2))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from tokcom.demo import run_demo

    run_demo(output_dir=args.output_dir, num_scenes=args.num_scenes, seed=args.seed)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from tokcom.training.recipe import load_recipe
    from tokcom.training.engine import close_distributed, train

    final = train(load_recipe(args.recipe), args.output_dir, args.stages, args.resume, args.init_model, args.max_steps)
    close_distributed()  # `accelerate launch -m tokcom.cli train ...` runs this on every rank
    print(f"model written to {final}" if final else f"stopped after --max-steps; continue with --resume in {args.output_dir}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from tokcom.training.evaluation import evaluate_checkpoint

    if args.fit_performance_model and not args.fit_output:
        raise ValueError("`--fit-performance-model` needs `--fit-output DIR` (a new folder for the fitted checkpoint).")
    if args.fit_output and Path(args.fit_output).exists():
        raise FileExistsError(f"`--fit-output` {args.fit_output} already exists; choose a new folder.")
    _check_output_parent(args.output, "--output")
    _check_output_parent(args.fit_output, "--fit-output")
    from tokcom.hub import resolve_model

    model = resolve_model(args.model)  # the embedded default without --model; garbage files named in one line
    if args.fit_performance_model:
        from transformers import AutoConfig

        model_type = AutoConfig.from_pretrained(model).model_type
        if model_type != "tokcom":  # TaiChi's and UniToCom's phi are fitted by their build commands
            raise ValueError(f"`--fit-performance-model` fits TokCom's phi; a {model_type} checkpoint gets its phi from "
                             f"its build command (`python -m tokcom.training.build_default_{model_type}`).")
    options = {"num_samples": args.num_samples, "split": args.split}
    options.update({k: v for k, v in (("num_visual_tokens", args.num_visual_tokens), ("num_audio_tokens", args.num_audio_tokens),
                                      ("task", args.task)) if v is not None})  # fmt: skip
    report = evaluate_checkpoint(model, args.snr_db, args.channel_type, seed=args.seed, **options)
    if args.fit_performance_model:
        from tokcom.training.evaluate_tokcom import fit_performance_models

        report["performance_model_fit"] = fit_performance_models(
            model, num_samples=args.num_samples or 1000, seed=args.seed, output_dir=args.fit_output
        )
        fitted = report["performance_model_fit"]["performance_model"]
        print(f"fitted phi per modality (checkpoint with it written to {args.fit_output}): {fitted}")
    if args.output:
        write_json_atomic(args.output, report)
    from tokcom.training.evaluation import METRICS

    fields = [METRICS[name][1] for name in report["metrics"]]
    has_loss = all("loss" in row for row in report["results"])  # text-to-image has no loss
    print(f"{'channel':>9} {'SNR [dB]':>9} " + " ".join(f"{field:>9}" for field in fields) + (f" {'loss':>8}" if has_loss else ""))
    for row in report["results"]:
        values = " ".join(f"{row[field]:>9.3f}" for field in fields)
        print(f"{row['channel_type']:>9} {row['snr_db']:>9.1f} {values}" + (f" {row['loss']:>8.4f}" if has_loss else ""))
    baseline = report.get("question_only_baseline")
    if baseline is not None:
        overall = baseline.get("accuracy", baseline.get("overall"))
        print(f"question-only baseline accuracy: {overall:.3f}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from tokcom.hub import export_model

    _check_output_parent(args.output, "--output")
    folder = export_model(args.model, args.output, repo_id=args.repo_id, results=args.results, overwrite=args.overwrite)
    files = sorted(p.name for p in folder.iterdir())
    print(f"exported {folder} ({len(files)} files): {', '.join(files)}")
    return 0


def _cmd_publish(args: argparse.Namespace) -> int:
    from tokcom.hub import publish_folder

    report = publish_folder(args.folder, args.repo_id, private=args.private, dry_run=args.dry_run, repo_type=args.repo_type)
    verb = "would upload" if args.dry_run else "uploaded"
    print(f"{verb} {len(report['files'])} files ({report['total_bytes'] / 2**20:.2f} MiB) to {args.repo_type} {args.repo_id}"
          f"{' (private)' if args.private else ''}:")  # fmt: skip
    for row in report["files"]:
        print(f"  {row['path']}  {row['bytes']:,} B")
    if report["url"]:
        print(report["url"])
    return 0


def _cmd_space(args: argparse.Namespace) -> int:
    from tokcom.space import build_space, launch_space

    folder = Path(args.build_dir)
    if args.overwrite or not (folder / "app.py").is_file():
        build_space(folder, model=args.model, overwrite=args.overwrite, taichi_model=args.taichi_model,
                    unitocom_model=args.unitocom_model)
        print(f"built the Space in {folder}", file=sys.stderr)
    if args.no_launch:
        return 0
    return launch_space(folder, port=args.port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tokcom", description="Token communication models on simulated wireless links.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="run the main job offline on the embedded default")
    demo.add_argument("--output-dir", default="tokcom-demo", help="where plots and JSON go (default: ./tokcom-demo)")
    demo.add_argument("--num-scenes", type=int, default=4, help="synthetic audio-visual scenes to show (1-64)")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_cmd_demo)

    alloc = sub.add_parser("allocate", help="solve the bandwidth/power/token-length problem (16) for a network")
    alloc.add_argument("problem", help="problem JSON file (see tokcom.pipelines.allocation.allocate)")
    alloc.add_argument("--method", default="proposed", help="proposed|alternating|pb-wf|era|max|half")
    alloc.add_argument("--output", help="also write the result JSON here")
    alloc.set_defaults(func=_cmd_allocate)

    train = sub.add_parser("train", help="train a model family with a recipe (one process; use accelerate launch for more)")
    train.add_argument("--recipe", default="tokcom_avqa_tiny", help="recipe JSON path or name in training/recipes")
    train.add_argument("--output-dir", required=True)
    train.add_argument("--stages", nargs="+", help="stages to run (default: all of the recipe's family)")
    train.add_argument("--resume", action="store_true")
    train.add_argument("--init-model", help="start from this checkpoint")
    train.add_argument("--max-steps", type=int, help="stop (resumably) after this many optimization steps")
    train.set_defaults(func=_cmd_train)

    evaluate = sub.add_parser("evaluate", help="held-out task metrics per SNR, channel type and question type (any family)")
    evaluate.add_argument("--model", help="checkpoint folder (default: the embedded default)")
    evaluate.add_argument("--snr-db", type=float, nargs="+", default=[0.0, 10.0, 20.0])
    evaluate.add_argument("--num-samples", type=int, help="number of held-out questions (default: all)")
    evaluate.add_argument("--channel-type", nargs="+", default=["awgn"], choices=["awgn", "rayleigh", "none"])
    evaluate.add_argument("--num-visual-tokens", type=int)
    evaluate.add_argument("--num-audio-tokens", type=int)
    evaluate.add_argument("--split", default="test", choices=["train", "validation", "test"])
    evaluate.add_argument("--task", choices=["vqa", "caption", "sentiment", "asr", "text_to_image"],
                          help="the task of a multitask family (TaiChi: vqa, caption, sentiment; UniToCom: vqa, asr, "
                               "text_to_image; default vqa)")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--output", help="write the report JSON here")
    evaluate.add_argument(
        "--fit-performance-model", action="store_true",
        help="also fit phi_m(s) (eq. 15) from validation losses at several token lengths; needs --fit-output",
    )  # fmt: skip
    evaluate.add_argument("--fit-output", help="new folder: a copy of the checkpoint with the fitted phi in its config")
    evaluate.set_defaults(func=_cmd_evaluate)

    export = sub.add_parser("export", help="write a complete Hub model repo (code for trust_remote_code, card, weights)")
    export.add_argument("--model", help="checkpoint folder or Hub repo id (default: the embedded default)")
    export.add_argument("--output", required=True, help="folder to create")
    export.add_argument("--repo-id", help="OWNER/NAME the card's usage snippet loads (default: the folder's name)")
    export.add_argument("--results", help="evaluation JSON for the card (default: <model>/evaluation.json)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing --output folder")
    export.set_defaults(func=_cmd_export)

    publish = sub.add_parser("publish", help="upload an exported folder (or a built Space) to the Hugging Face Hub")
    publish.add_argument("folder")
    publish.add_argument("--repo-id", required=True, help="OWNER/NAME")
    publish.add_argument("--private", action="store_true")
    publish.add_argument("--dry-run", action="store_true", help="validate and list the files; upload nothing")
    publish.add_argument("--repo-type", default="model", choices=["model", "space"])
    publish.set_defaults(func=_cmd_publish)

    space = sub.add_parser("space", help="build the Gradio Space (app, exported model, samples) and serve it locally")
    space.add_argument("--build-dir", default="tokcom-space", help="Space folder (built when missing; default ./tokcom-space)")
    space.add_argument("--model", help="checkpoint folder (default: the embedded default)")
    space.add_argument("--taichi-model", help="TaiChi checkpoint for the TaiChi tab (default: the embedded one, if installed)")
    space.add_argument("--unitocom-model", help="UniToCom checkpoint for the UniToCom tab (default: the embedded one, if installed)")
    space.add_argument("--port", type=int, default=7860)
    space.add_argument("--no-launch", action="store_true", help="only build the folder")
    space.add_argument("--overwrite", action="store_true", help="rebuild an existing folder")
    space.set_defaults(func=_cmd_space)
    return parser


def PublishErrorType() -> type:  # noqa: N802 (lazy: keeps `tokcom --help` from importing huggingface_hub)
    from tokcom.hub import PublishError

    return PublishError


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, PublishErrorType()) as error:
        print(f"tokcom {args.command}: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # a write that failed mid-way (full disk, ...): one line, not a traceback
        is_io = isinstance(error, OSError) or type(error).__name__ == "SafetensorError" and "I/O error" in str(error)
        if not is_io:
            raise
        from tokcom.files import describe_os_error

        where = f" ({error.filename})" if isinstance(error, OSError) and error.filename else ""
        print(f"tokcom {args.command}: error: a write failed{where}: {describe_os_error(error)}; nothing half-written "
              "was kept.", file=sys.stderr)  # fmt: skip
        return 2


if __name__ == "__main__":
    sys.exit(main())
