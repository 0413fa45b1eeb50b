"""Speed of the synthetic AVQA world, and how well question-only vs media-aware answerers do.

Measured in one run (absolute times are noisy on shared machines, so ratios are reported too):
1. `generate_scenes` (vectorized, chunks of 256) in scenes/s, against the same renderer called
   one scene at a time (the unbatched baseline);
2. `generate_questions`, the `datasets.Dataset` builds (`generate_avqa`, `generate_valor_captions`)
   and reading a batch of 256 rows back as numpy / torch;
3. accuracy per question type of `QuestionOnlyBaseline` and of the perception reader.

    python benchmarks/data_generation_benchmark.py            # writes results/data_generation.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import datasets
import numpy as np

from tokcom.training.data import perception_baseline as perception
from tokcom.training.data import synthetic_avqa as S


def _best_time_s(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _unbatched_scenes(num_scenes: int, config: S.SyntheticAVQAConfig) -> None:
    rng = np.random.default_rng(0)
    layouts = S._sample_layouts(num_scenes, rng, config)
    for n in range(num_scenes):
        S._render_chunk(*(a[n : n + 1] for a in layouts), rng, config)


def _baseline_accuracy(num_train: int, num_test: int, seed: int) -> dict:
    splits = S.generate_avqa_splits(num_train, 0, num_test, seed=seed)
    scores = perception.score_baselines(splits["train"], splits["test"])
    scores["overall"] = sum(scores.values())
    return {
        kind: {
            "questions": int(n),
            "question_only_accuracy": round(q / n, 4),
            "media_reader_accuracy": round(m / n, 4),
        }
        for kind, (q, m, n) in sorted(scores.items())
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-scenes", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-train-scenes", type=int, default=2000)
    parser.add_argument("--baseline-test-scenes", type=int, default=500)
    parser.add_argument("--output", default="results/data_generation.json")
    args = parser.parse_args(argv)
    config, n = S.SyntheticAVQAConfig(), args.num_scenes

    S.timbre_bank(config.num_samples, config.sampling_rate)  # warm the world's caches
    S.generate_scenes(64, seed=0)
    # 1. scenes: batched vs one at a time
    scenes_s = _best_time_s(lambda: S.generate_scenes(n, seed=0), args.repeats)
    unbatched_n = min(n, 300)
    unbatched_s = _best_time_s(lambda: _unbatched_scenes(unbatched_n, config), 1) * n / unbatched_n
    # 2. questions and Dataset builds
    scenes = S.generate_scenes(n, seed=0)
    questions_s = _best_time_s(lambda: S.generate_questions(scenes, seed=1), args.repeats)
    num_questions = len(S.generate_questions(scenes, seed=1))
    avqa_s = _best_time_s(lambda: S.generate_avqa(n, seed=0), 1)
    avqa = S.generate_avqa(n, seed=0)
    batch_ms = {
        fmt: round(_best_time_s(lambda: avqa.with_format(fmt, dtype=None)[:256], args.repeats) * 1000, 2)
        for fmt in ("numpy", "torch")
    }
    captions_s = _best_time_s(lambda: S.generate_valor_captions(n, seed=0), 1)
    reader_s = _best_time_s(
        lambda: [perception.read_scene(scenes.video[i], scenes.audio[i], 16000) for i in range(200)], 1
    )
    # 3. question-only vs media-aware answers
    accuracy = _baseline_accuracy(args.baseline_train_scenes, args.baseline_test_scenes, seed=0)

    results = {
        "command": "python benchmarks/data_generation_benchmark.py",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
                    "datasets": datasets.__version__},  # fmt: skip
        "num_scenes": n,
        "num_questions": num_questions,
        "generate_scenes_scenes_per_s": round(n / scenes_s, 1),
        "unbatched_scenes_per_s": round(n / unbatched_s, 1),
        "batching_speedup": round(unbatched_s / scenes_s, 2),
        "generate_questions_s": round(questions_s, 3),
        "generate_avqa_s": round(avqa_s, 3),
        "generate_avqa_rows_per_s": round(num_questions / avqa_s, 1),
        "dataset_build_over_scene_generation": round(avqa_s / scenes_s, 2),
        "read_batch_of_256_rows_ms": batch_ms,
        "generate_valor_captions_s": round(captions_s, 3),
        "perception_reader_ms_per_scene": round(reader_s / 200 * 1000, 3),
        "accuracy_by_type": accuracy,
    }
    print(json.dumps(results, indent=2))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
