"""Batched inference against the per-sample loop (issue 17, throughput), in one run on the same inputs, for each
family's `pipeline("token-comm-vqa")`.

The per-sample loop is the official code's style: one input at a time through the pipeline,
`[vqa(x, ...) for x in inputs]`; batched is `vqa(inputs, ..., batch_size=B)`. Both run at `snr_db=inf` (the links
are simulated but add no noise, so the two must give identical answers, which is checked: answers equal, scores
within 1e-5). The rounds are interleaved (loop, batched, loop, batched, ...) so a busy phase of a shared machine
hits both alike; reported: samples/s of each (median over rounds), their ratio, where the batched time goes
(cProfile of one batched call: reading inputs, featurizing the batch, the model, postprocessing, and the family's
costly parts of them) and the machine's load average before and after. Absolute numbers move with the machine's
load; the ratio is what to compare.

`--family` picks the model and its inputs:
- `tokcom` (default): the embedded TokCom AVQA default (`tokcom-avqa-tiny`) on synthetic AVQA clips (video, audio,
  question);
- `taichi`: a TaiChi checkpoint on shapes-world images and questions (held-out scenes);
- `unitocom`: a UniToCom checkpoint on shapes-world images and questions.
`--model PATH` names a saved checkpoint of the family. Without it, TaiChi uses the installed default
`tokcom/checkpoints/taichi-tiny` when there is one; otherwise (and always for UniToCom) an untrained tiny model is
built as the family's training stages build it (tiny config, word tokenizer of a small shapes-world corpus), saved
to a temporary folder and loaded from there; the report says so.

    python benchmarks/batched_throughput.py [--num-samples 128] [--batch-size 32] [--rounds 3] [--threads 1]
        [--output results/batched_throughput.json]
    python benchmarks/batched_throughput.py --family taichi [--model PATH] [...]
        [--output results/batched_throughput_taichi.json]
    python benchmarks/batched_throughput.py --family unitocom [--model PATH] [...]
        [--output results/batched_throughput_unitocom.json]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import tokcom  # noqa: E402, F401  registers the task

ROOT = Path(__file__).resolve().parent.parent
# functions whose cumulative time makes the batched breakdown (file suffix, function name), per family
STAGES = {
    "read inputs (checks, frames, waveform)": ("token_comm_vqa.py", "read_input"),
    "featurize the batch": ("token_comm_vqa.py", "featurize"),
    "  of which filterbanks": ("processing_tokcom.py", "ast_filterbanks"),
    "  of which frames": ("processing_tokcom.py", "process_videos"),
    "model (links + answer)": ("token_comm_vqa.py", "_forward"),
    "postprocess": ("token_comm_vqa.py", "postprocess"),
}
TAICHI_STAGES = {
    "read inputs (checks, image)": ("token_comm_taichi.py", "read_input"),
    "featurize the batch": ("token_comm_taichi.py", "featurize"),
    "  of which images (resize, normalize)": ("processing_taichi.py", "process_images"),
    "model (links + answer)": ("token_comm_taichi.py", "_forward"),
    "  of which generate": ("modeling_taichi.py", "generate"),
    "postprocess": ("token_comm_taichi.py", "postprocess"),
}
UNITOCOM_STAGES = {
    "read inputs (checks, image)": ("token_comm_unitocom.py", "read_input"),
    "featurize the batch": ("token_comm_unitocom.py", "featurize"),
    "  of which images (resize)": ("processing_unitocom.py", "image_tensors"),
    "model (links + answer)": ("token_comm_unitocom.py", "_forward"),
    "  of which the image link (tokenizer, channel)": ("modeling_unitocom.py", "send"),
    "  of which generate_text": ("modeling_unitocom.py", "generate_text"),
    "postprocess": ("token_comm_unitocom.py", "postprocess"),
}
INSTALLED_TAICHI = ROOT / "tokcom" / "checkpoints" / "taichi-tiny"
UNTRAINED = "untrained tiny (throughput does not depend on the weights)"
# the shapes world of the untrained models' word tokenizers and of the inputs (held-out scenes)
SHAPES_DATA = {"questions_per_scene": 4, "max_objects": 3, "sentiment_sentences": 64}
TOKENIZER_SCENES = 256
SCORE_TOLERANCE = 1e-5  # batched and per-sample scores of one input may differ this much


def make_clips(count: int, seed: int = 1234) -> list[dict]:
    """`count` synthetic clips and questions (every question type), deterministic by `seed`."""
    from tokcom.training.data.synthetic_avqa import generate_avqa

    rows = generate_avqa(-(-count // 4), seed=seed).with_format("numpy", dtype=None)
    clips = [
        {"video": row["video"], "audio": {"array": row["audio"], "sampling_rate": 16000}, "question": row["question"]}
        for row in rows
    ]
    return clips[:count]


def make_shapes_questions(count: int, seed: int = 1234) -> list[dict]:
    """`count` held-out shapes-world images (uint8 `(64, 64, 3)`) with their questions, deterministic by `seed`."""
    from tokcom.training.taichi_corpus import TaiChiCorpus

    scenes = -(-count // SHAPES_DATA["questions_per_scene"]) + 1
    corpus = TaiChiCorpus.build({**SHAPES_DATA, "test_scenes": scenes, "seed": seed}, "test")
    if len(corpus.questions) < count:
        raise RuntimeError(f"The shapes world gave {len(corpus.questions)} questions for {count} samples.")
    return [{"image": corpus.images[q["image_index"]], "question": q["question"]} for q in corpus.questions[:count]]


def untrained_taichi(folder: Path) -> None:
    """An untrained tiny TaiChi and its processor, built as `TaiChiStages.setup` builds them, saved to `folder`."""
    from tokcom.training.stages_taichi import TaiChiStages

    recipe = {"seed": 0, "data": {**SHAPES_DATA, "train_scenes": TOKENIZER_SCENES}}
    TaiChiStages.setup(recipe, None, folder).save_checkpoint(folder)


def untrained_unitocom(folder: Path) -> None:
    """An untrained tiny UniToCom and its word tokenizer, built as `UniToComStages.setup` builds them (VQA data
    only), saved to `folder` as a training checkpoint (the pipeline takes the processor settings from the config)."""
    from tokcom.training.stages_unitocom import UniToComStages

    data = {"train_scenes": TOKENIZER_SCENES, "questions_per_scene": SHAPES_DATA["questions_per_scene"]}
    recipe = {"seed": 0, "data": data, "stages": {"mllm": {"tasks": {"vqa": 1.0}}}}
    UniToComStages.setup(recipe, None, folder).save_checkpoint(folder)


# per family: the inputs, the breakdown, the model used without --model ((description, path or None: the
# pipeline's default)) and how to build an untrained tiny one into a folder
FAMILIES = {
    "tokcom": {"inputs": make_clips, "stages": STAGES, "untrained": None,
               "default": lambda: ("embedded default (tokcom-avqa-tiny)", None)},
    "taichi": {"inputs": make_shapes_questions, "stages": TAICHI_STAGES, "untrained": untrained_taichi,
               "default": lambda: ("installed default (taichi-tiny)", str(INSTALLED_TAICHI))
               if (INSTALLED_TAICHI / "config.json").is_file() else (UNTRAINED, None)},
    "unitocom": {"inputs": make_shapes_questions, "stages": UNITOCOM_STAGES, "untrained": untrained_unitocom,
                 "default": lambda: (UNTRAINED, None)},
}  # fmt: skip


def breakdown(vqa, inputs, batch_size: int, stages: dict = STAGES) -> dict:
    """Seconds and shares of one batched call spent in each of `stages` (cProfile's cumulative times)."""
    profiler = cProfile.Profile()
    profiler.enable()
    vqa(inputs, snr_db=float("inf"), batch_size=batch_size)
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    total = max(row[3] for row in stats.values())  # the outermost call's cumulative time
    out = {"total_s": total}
    for label, (suffix, name) in stages.items():
        seconds = sum(row[3] for (path, _, function), row in stats.items() if path.endswith(suffix) and function == name)
        out[label] = {"seconds": round(seconds, 4), "share": round(seconds / total, 3)}
    return out


def load_pipeline(family: str, model: str | None, scratch: Path):
    """The family's VQA pipeline on the CPU and a description of its model: `model`, else the family's default,
    else an untrained tiny model built into `scratch`."""
    from transformers import pipeline

    spec = FAMILIES[family]
    if model is not None:
        description, path = model, model
    else:
        description, path = spec["default"]()
        if path is None and spec["untrained"] is not None:
            spec["untrained"](scratch)
            path = str(scratch)
    return pipeline("token-comm-vqa", **({"model": path} if path else {}), device="cpu"), description


def command_line(family: str, model: str | None, num_samples: int, batch_size: int, rounds: int, threads) -> str:
    return ("python benchmarks/batched_throughput.py" + (f" --family {family}" if family != "tokcom" else "")
            + (f" --model {model}" if model else "") + f" --num-samples {num_samples} --batch-size {batch_size} "
            f"--rounds {rounds}" + (f" --threads {threads}" if threads else ""))  # fmt: skip


def run(num_samples: int, batch_size: int, rounds: int, threads: int | None, family: str = "tokcom",
        model: str | None = None) -> dict:  # fmt: skip
    if num_samples < batch_size or batch_size < 1 or rounds < 1:
        raise ValueError("need --num-samples >= --batch-size >= 1 and --rounds >= 1.")
    if family not in FAMILIES:
        raise ValueError(f"--family must be one of {sorted(FAMILIES)}, got {family!r}.")
    if threads:
        torch.set_num_threads(threads)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix=f"throughput-{family}-") as scratch:  # an untrained model's folder
        vqa, description = load_pipeline(family, model, Path(scratch))
        report = measure(vqa, FAMILIES[family]["inputs"](num_samples), batch_size, rounds, FAMILIES[family]["stages"])
    return {
        "command": command_line(family, model, num_samples, batch_size, rounds, threads),
        "model": description,
        "num_samples": num_samples,
        "batch_size": batch_size,
        "rounds": rounds,
        "torch_threads": torch.get_num_threads(),
        **report,
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
    }


def measure(vqa, inputs: list, batch_size: int, rounds: int, stages: dict) -> dict:
    """Interleaved rounds of the per-sample loop and the batched call on `inputs`, the identity of their outputs
    and the batched call's breakdown over `stages`."""
    num_samples = len(inputs)
    vqa(inputs[:batch_size], snr_db=float("inf"), batch_size=batch_size)  # warm up both paths
    vqa(inputs[0], snr_db=float("inf"))
    loop_rates, batched_rates = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        one_by_one = [vqa(x, snr_db=float("inf")) for x in inputs]
        loop_rates.append(num_samples / (time.perf_counter() - start))
        start = time.perf_counter()
        batched = vqa(inputs, snr_db=float("inf"), batch_size=batch_size)
        batched_rates.append(num_samples / (time.perf_counter() - start))
    same_answers = [a["answer"] for a in one_by_one] == [b["answer"] for b in batched]
    scored = all("score" in a for a in one_by_one + batched)
    score_gap = max(abs(a["score"] - b["score"]) for a, b in zip(one_by_one, batched)) if scored else None
    loop, fast = statistics.median(loop_rates), statistics.median(batched_rates)
    return {
        "per_sample_loop_samples_per_s": round(loop, 2),
        "batched_samples_per_s": round(fast, 2),
        "ratio": round(fast / loop, 2),
        "rounds_samples_per_s": {"loop": [round(r, 2) for r in loop_rates], "batched": [round(r, 2) for r in batched_rates]},
        "answers_identical": same_answers,
        "max_score_difference": score_gap,
        "batched_breakdown": breakdown(vqa, inputs, batch_size, stages),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=sorted(FAMILIES), default="tokcom")
    parser.add_argument("--model", default=None, help="a saved checkpoint of the family (default: see the docstring)")
    parser.add_argument("--num-samples", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--output", default=None, help="default: results/batched_throughput.json for tokcom, "
                        "results/batched_throughput_<family>.json otherwise")  # fmt: skip
    args = parser.parse_args(argv)
    name = "batched_throughput.json" if args.family == "tokcom" else f"batched_throughput_{args.family}.json"
    output = Path(args.output or ROOT / "results" / name)
    report = run(args.num_samples, args.batch_size, args.rounds, args.threads or None, args.family, args.model)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"{args.family} ({report['model']}): per-sample loop {report['per_sample_loop_samples_per_s']:.1f} samples/s, "
        f"batched (batch {args.batch_size}) {report['batched_samples_per_s']:.1f} samples/s: {report['ratio']:.1f}x; "
        f"answers identical: {report['answers_identical']} (max score difference {report['max_score_difference']}); "
        f"load {report['machine']['load_average_before']} -> {report['machine']['load_average_after']}"
    )
    for label, row in report["batched_breakdown"].items():
        if label != "total_s":
            print(f"  {label:<48} {row['seconds']:.3f} s  {row['share']:.0%}")
    print(f"wrote {output}")
    gap = report["max_score_difference"]
    return 0 if report["answers_identical"] and (gap is None or gap <= SCORE_TOLERANCE) else 1


if __name__ == "__main__":
    sys.exit(main())
