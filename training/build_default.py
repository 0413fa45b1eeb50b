"""Reproduce the embedded default checkpoint in one command: train, fit phi, evaluate, write the card, install.

    python -m tokcom.training.build_default [--recipe tokcom_avqa_tiny] [--work-dir runs/default] [--install]

Steps:
  1. `train()` every stage of the recipe (unimodal pretraining, alignment, task fine-tuning);
  2. fit the performance model phi_m (eq. 15) from validation losses at several token lengths, written into config;
  3. evaluate held-out accuracy per SNR and question type on AWGN and Rayleigh, with the question-only baseline
     and the text ceiling (the text-pretrained LLM given the scene description instead of the media; not a bound);
  4. write the results into `results/tokcom_avqa_default/` and the checkpoint (`evaluation.json`), and the model
     card from them;
  5. with `--install`, copy the checkpoint to `tokcom/checkpoints/tokcom-avqa-tiny/` (what `pipeline()` loads).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from tokcom.defaults import CHECKPOINTS_DIR, DEFAULT_AVQA_MODEL
from tokcom.training.evaluate_tokcom import evaluate, fit_performance_models, text_ceiling
from tokcom.training.model_card import write_model_card
from tokcom.training.recipe import load_recipe
from tokcom.training.engine import RECIPE_FILE, train

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results" / "tokcom_avqa_default"
EVAL_SNRS_DB = (-10.0, -5.0, 0.0, 5.0, 10.0, 15.0, 20.0)
CHECKPOINT_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "processor_config.json", "tokcom_recipe.json", "README.md", "evaluation.json")


def build_default(recipe_name: str, work_dir: Path, results_dir: Path, install: bool, skip_training: bool, num_samples: int) -> dict:
    began = time.time()
    recipe = load_recipe(recipe_name)
    model_dir = work_dir / "model"
    if not skip_training:
        train(recipe, work_dir)  # 1.
    training_seconds = time.time() - began
    fit = fit_performance_models(model_dir, num_samples=min(num_samples, 1000))  # 2.
    reports = {
        channel: evaluate(model_dir, EVAL_SNRS_DB, num_samples=num_samples, channel_type=channel)  # 3.
        for channel in ("awgn", "rayleigh")
    }
    # the text-pretrained LLM reading each sensor's description instead of the media: a reference, not a bound
    # (task fine-tuning keeps teaching the LLM, and the model can beat it on some question types)
    ceiling = text_ceiling(work_dir / "stages" / "pretrain_text", num_samples=num_samples)
    command = f"python -m tokcom.training.build_default --recipe {recipe_name} --num-samples {num_samples}"
    training_log = json.loads((work_dir / "training_log.json").read_text())
    summary = {
        "command": command,
        "training_seconds": training_seconds,
        "total_seconds": time.time() - began,
        "checkpoint_mb": (model_dir / "model.safetensors").stat().st_size / 2**20,
        "performance_model_fit": fit,
        "evaluation": reports,
        "text_ceiling": ceiling,
    }
    return finish_build(summary, model_dir, results_dir, training_log, DEFAULT_AVQA_MODEL, install)  # 4., 5.


def finish_build(summary: dict, model_dir: Path, results_dir: Path, training_log: dict | None, name: str,
                 install: bool, extra_folders: tuple[str, ...] = (), work_dir: Path | None = None) -> dict:  # fmt: skip
    """The last steps of every `build_default*`: `evaluation.json` into the results folder and the checkpoint (it
    carries its own results; the exported card reads them), the model card from `summary` (its `command`), and
    with `install` the copy into `tokcom/checkpoints/<name>/` (`work_dir`: the build's `--work-dir`, default the
    folder holding `model_dir`). Returns `summary`."""
    Path(results_dir).mkdir(parents=True, exist_ok=True)
    for folder in (Path(results_dir), Path(model_dir)):
        (folder / "evaluation.json").write_text(json.dumps(summary, indent=2))
    write_model_card(model_dir, summary, summary["command"], training_log, name=name)
    if install:
        install_checkpoint(model_dir, name, extra_folders, work_dir)
    return summary


def install_checkpoint(model_dir: Path, name: str, extra_folders: tuple[str, ...] = (), work_dir: Path | None = None,
                       target: Path | None = None) -> Path:  # fmt: skip
    """Copy a built default's `CHECKPOINT_FILES` (and its `extra_folders`, e.g. UniToCom's attribute reader) into
    `target` (default `tokcom/checkpoints/<name>/`), through a temporary sibling, so `pipeline()` never sees half a
    checkpoint. No path of the build machine goes along: `config.json` and `tokcom_recipe.json` are written through
    `write_portable_files` (`work_dir`: the build's `--work-dir`, default the folder holding `model_dir`)."""
    target = Path(target) if target is not None else CHECKPOINTS_DIR / name
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for file_name in CHECKPOINT_FILES:
        shutil.copy2(Path(model_dir) / file_name, tmp / file_name)
    write_portable_files(tmp, Path(model_dir).parent if work_dir is None else work_dir)
    for folder in extra_folders:
        shutil.copytree(Path(model_dir) / folder, tmp / folder)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def write_portable_files(folder: Path, work_dir: Path) -> None:
    """Rewrite a checkpoint's `config.json` without absolute `_name_or_path`s (`portable_config`) and its
    `tokcom_recipe.json` with the paths into `work_dir` relative to it (`portable_recipe`), in place; the weights
    and every other file are left as they are."""
    from tokcom.portable import portable_config, portable_recipe

    config_path, recipe_path = Path(folder) / "config.json", Path(folder) / RECIPE_FILE
    config = portable_config(json.loads(config_path.read_text()))
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")  # as `save_pretrained` writes it
    if recipe_path.is_file():
        recipe_path.write_text(json.dumps(portable_recipe(json.loads(recipe_path.read_text()), work_dir), indent=2))


def build_parser(doc: str, recipe: str, work_dir: str, results_dir: Path, num_samples: int,
                 samples_help: str) -> argparse.ArgumentParser:  # fmt: skip
    """The command line every `build_default*` module shares: recipe, work and results folders, held-out sample
    count, `--install`, `--skip-training` (reuse the trained models in the work folder)."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--recipe", default=recipe)
    parser.add_argument("--work-dir", default=work_dir)
    parser.add_argument("--results-dir", default=str(results_dir))
    parser.add_argument("--num-samples", type=int, default=num_samples, help=samples_help)
    parser.add_argument("--install", action="store_true", help="copy the checkpoint into tokcom/checkpoints/")
    parser.add_argument("--skip-training", action="store_true", help="reuse the trained models in <work-dir>")
    return parser


def main(argv=None) -> int:
    args = build_parser(__doc__, "tokcom_avqa_tiny", "runs/default", RESULTS_DIR, 2000, "held-out questions per SNR").parse_args(argv)
    summary = build_default(args.recipe, Path(args.work_dir), Path(args.results_dir), args.install, args.skip_training, args.num_samples)
    print("text ceiling", round(summary["text_ceiling"]["accuracy"], 3))
    for channel, report in summary["evaluation"].items():
        print(channel, [(r["snr_db"], round(r["accuracy"], 3)) for r in report["results"]])
    print(f"done in {summary['total_seconds'] / 60:.1f} min; checkpoint {summary['checkpoint_mb']:.1f} MB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
