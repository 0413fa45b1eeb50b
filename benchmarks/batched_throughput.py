"""Batched inference against the per-sample loop (issue 17, throughput), in one run on the same inputs.

The per-sample loop is the official code's style: one clip at a time through the pipeline,
`[vqa(clip, ...) for clip in clips]`; batched is `vqa(clips, ..., batch_size=B)`. Both run on the embedded default
at `snr_db=inf` (the links are simulated but add no noise, so the two must give identical answers, which is
checked: answers equal, scores within 1e-5). The rounds are interleaved (loop, batched, loop, batched, ...) so a
busy phase of a shared machine hits both alike; reported: samples/s of each (median over rounds), their ratio,
where the batched time goes (cProfile of one batched call: reading inputs, featurizing the batch, of which the
filterbanks and frames, the model, postprocessing) and the machine's load average before and after. Absolute
numbers move with the machine's load; the ratio is what to compare.

    python benchmarks/batched_throughput.py [--num-samples 128] [--batch-size 32] [--rounds 3] [--threads 1]
        [--output results/batched_throughput.json]
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
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import tokcom  # noqa: E402, F401  registers the task

ROOT = Path(__file__).resolve().parent.parent
# functions whose cumulative time makes the batched breakdown (file suffix, function name)
STAGES = {
    "read inputs (checks, frames, waveform)": ("token_comm_vqa.py", "read_input"),
    "featurize the batch": ("token_comm_vqa.py", "featurize"),
    "  of which filterbanks": ("processing_tokcom.py", "ast_filterbanks"),
    "  of which frames": ("processing_tokcom.py", "process_videos"),
    "model (links + answer)": ("token_comm_vqa.py", "_forward"),
    "postprocess": ("token_comm_vqa.py", "postprocess"),
}


def make_clips(count: int, seed: int = 1234) -> list[dict]:
    """`count` synthetic clips and questions (every question type), deterministic by `seed`."""
    from tokcom.training.data.synthetic_avqa import generate_avqa

    rows = generate_avqa(-(-count // 4), seed=seed).with_format("numpy", dtype=None)
    clips = [
        {"video": row["video"], "audio": {"array": row["audio"], "sampling_rate": 16000}, "question": row["question"]}
        for row in rows
    ]
    return clips[:count]


def breakdown(vqa, clips, batch_size: int) -> dict:
    """Seconds and shares of one batched call spent in each of `STAGES` (cProfile's cumulative times)."""
    profiler = cProfile.Profile()
    profiler.enable()
    vqa(clips, snr_db=float("inf"), batch_size=batch_size)
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    total = max(row[3] for row in stats.values())  # the outermost call's cumulative time
    out = {"total_s": total}
    for label, (suffix, name) in STAGES.items():
        seconds = sum(row[3] for (path, _, function), row in stats.items() if path.endswith(suffix) and function == name)
        out[label] = {"seconds": round(seconds, 4), "share": round(seconds / total, 3)}
    return out


def run(num_samples: int, batch_size: int, rounds: int, threads: int | None) -> dict:
    from transformers import pipeline

    if num_samples < batch_size or batch_size < 1 or rounds < 1:
        raise ValueError("need --num-samples >= --batch-size >= 1 and --rounds >= 1.")
    if threads:
        torch.set_num_threads(threads)
    load_before = os.getloadavg()
    vqa = pipeline("token-comm-vqa", device="cpu")
    clips = make_clips(num_samples)
    vqa(clips[:batch_size], snr_db=float("inf"), batch_size=batch_size)  # warm up both paths
    vqa(clips[0], snr_db=float("inf"))
    loop_rates, batched_rates = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        one_by_one = [vqa(clip, snr_db=float("inf")) for clip in clips]
        loop_rates.append(num_samples / (time.perf_counter() - start))
        start = time.perf_counter()
        batched = vqa(clips, snr_db=float("inf"), batch_size=batch_size)
        batched_rates.append(num_samples / (time.perf_counter() - start))
    same_answers = [a["answer"] for a in one_by_one] == [b["answer"] for b in batched]
    score_gap = max(abs(a["score"] - b["score"]) for a, b in zip(one_by_one, batched))
    loop, fast = statistics.median(loop_rates), statistics.median(batched_rates)
    return {
        "command": f"python benchmarks/batched_throughput.py --num-samples {num_samples} --batch-size {batch_size} "
        f"--rounds {rounds}" + (f" --threads {threads}" if threads else ""),
        "model": "embedded default (tokcom-avqa-tiny)",
        "num_samples": num_samples,
        "batch_size": batch_size,
        "rounds": rounds,
        "torch_threads": torch.get_num_threads(),
        "per_sample_loop_samples_per_s": round(loop, 2),
        "batched_samples_per_s": round(fast, 2),
        "ratio": round(fast / loop, 2),
        "rounds_samples_per_s": {"loop": [round(r, 2) for r in loop_rates], "batched": [round(r, 2) for r in batched_rates]},
        "answers_identical": same_answers,
        "max_score_difference": score_gap,
        "batched_breakdown": breakdown(vqa, clips, batch_size),
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-samples", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--output", default=str(ROOT / "results" / "batched_throughput.json"))
    args = parser.parse_args(argv)
    report = run(args.num_samples, args.batch_size, args.rounds, args.threads or None)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"per-sample loop {report['per_sample_loop_samples_per_s']:.1f} samples/s, batched (batch "
        f"{args.batch_size}) {report['batched_samples_per_s']:.1f} samples/s: {report['ratio']:.1f}x; answers "
        f"identical: {report['answers_identical']}; load {report['machine']['load_average_before']} -> "
        f"{report['machine']['load_average_after']}"
    )
    for label, row in report["batched_breakdown"].items():
        if label != "total_s":
            print(f"  {label:<42} {row['seconds']:.3f} s  {row['share']:.0%}")
    print(f"wrote {args.output}")
    return 0 if report["answers_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
