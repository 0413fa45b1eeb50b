"""Phase-2 data (issue 12): generation speed and the baselines that show what each synthetic dataset demands.

Measured in one run and written to `results/data_phase2/benchmark.json` (+ a table in `results/data_phase2/README.md`):
1. shapes world: rendering (images/s, 128x128 with 1-6 objects), CLEVR questions (questions/s), and
   `generate_clevr` as a `datasets.Dataset` (images/s, PNG encoding included);
2. probes on one-object scenes: material from the 32x32 (LR) and the 128x128 (HR) view (logistic regression on
   the same image statistics; ridge regression on LR raw pixels), and the shape of small / large objects from an
   object-centred crop (ridge on raw pixels) at each resolution;
3. CLEVR baselines per question family: two question-only readers (family prior, exact-question prior) and the
   perfect-scene-graph reader (program execution);
4. sentiment: bag-of-words logistic regression versus a GRU that reads order, on SST-2-like and IMDB-like data;
5. spoken: espeak-ng synthesis (utterances/s, a cold cache) and a rerun from the cache.

    python benchmarks/data_phase2_benchmark.py            # ~2-4 min on 2 busy cores
    python benchmarks/data_phase2_benchmark.py --quick    # smaller sizes, for a smoke test
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tokcom.training.data.probes import LogisticProbe, RidgeProbe, image_statistics
from tokcom.training.data.sentiment import bag_of_words_accuracy, generate_imdb, generate_sst2, order_aware_accuracy
from tokcom.training.data.shapes_questions import QUESTION_FAMILIES, question_only_accuracy
from tokcom.training.data.shapes_render import SHAPES, ShapesWorldConfig, generate_shapes_scenes
from tokcom.training.data.shapes_world import generate_clevr, generate_shapes_world, scene_graph_accuracy

ROOT = Path(__file__).resolve().parents[1]


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def shapes_speed(n: int) -> dict:
    generate_shapes_scenes(8, seed=99)  # warm up
    scenes, render_s = _timed(lambda: generate_shapes_scenes(n, seed=0))
    world, question_s = _timed(lambda: generate_shapes_world(n, seed=0, render=False))
    ds, dataset_s = _timed(lambda: generate_clevr(n // 2, seed=0, questions_per_image=10))
    num_questions = len(world["questions"]["questions"])
    return {"images": n, "render_images_per_s": n / render_s, "questions": num_questions,
            "questions_per_s": num_questions / question_s, "clevr_dataset_images_per_s": (n // 2) / dataset_s,
            "clevr_dataset_rows": ds.num_rows}  # fmt: skip


def _crops(scenes, low: bool, half_hr: int = 12) -> np.ndarray:
    """Object-centred crops (same field of view at both resolutions) -> (scenes, pixels) in [0, 1]."""
    images = scenes.low_res() if low else scenes.images
    factor = scenes.config.image_size // scenes.config.low_res_size if low else 1
    half = half_hr // factor
    padded = np.pad(images, ((0, 0), (half, half), (half, half), (0, 0)), mode="edge")
    out = []
    for i in range(len(scenes)):
        cx, cy = (int(round(c / factor)) for c in scenes.pixel_coords[i, 0, :2])
        out.append(padded[i, cy : cy + 2 * half, cx : cx + 2 * half])
    return np.stack(out).reshape(len(scenes), -1) / 255.0


def probes(n: int) -> dict:
    config = ShapesWorldConfig(min_objects=1, max_objects=1)
    train, test = generate_shapes_scenes(n, seed=10, config=config), generate_shapes_scenes(n, seed=11, config=config)
    y_train, y_test = train.material[:, 0], test.material[:, 0]
    out = {"scenes_per_split": n, "material_chance": float(max(y_test.mean(), 1 - y_test.mean()))}
    for view, a, b in (("hr", train.images, test.images), ("lr", train.low_res(), test.low_res())):
        probe = LogisticProbe().fit(image_statistics(a), y_train)
        out[f"material_{view}_statistics_probe"] = probe.accuracy(image_statistics(b), y_test)
    pixels = RidgeProbe(alpha=1.0).fit(train.low_res().reshape(n, -1) / 255.0, y_train)
    out["material_lr_pixel_probe"] = pixels.accuracy(test.low_res().reshape(n, -1) / 255.0, y_test)
    for size, name in ((1, "small"), (0, "large")):
        keep_train, keep_test = train.size[:, 0] == size, test.size[:, 0] == size
        for view, low in (("hr", False), ("lr", True)):
            probe = RidgeProbe(alpha=0.01).fit(_crops(train, low)[keep_train], train.shape[keep_train, 0])
            out[f"shape_{name}_{view}_crop_probe"] = probe.accuracy(_crops(test, low)[keep_test], test.shape[keep_test, 0])
    out["shape_chance"] = 1.0 / len(SHAPES)
    return out


def clevr_baselines(num_train: int, num_test: int) -> dict:
    train = generate_shapes_world(num_train, seed=0, split="train", render=False)
    test = generate_shapes_world(num_test, seed=1, split="test", render=False)
    blind = question_only_accuracy(train["questions"]["questions"], test["questions"]["questions"])
    reader = scene_graph_accuracy(test["questions"]["questions"], test["scene_graphs"]["scenes"])
    return {"train_images": num_train, "test_images": num_test, "test_questions": len(test["questions"]["questions"]),
            "question_only_family_prior": blind["family_prior"], "question_only_question_prior": blind["question_prior"],
            "scene_graph_reader": reader}  # fmt: skip


def sentiment(num_train: int, num_test: int, imdb_train: int, imdb_test: int) -> dict:
    out = {}
    for name, make, n_train, n_test, key, epochs in (("sst2", generate_sst2, num_train, num_test, "sentence", 8),
                                                     ("imdb", generate_imdb, imdb_train, imdb_test, "text", 10)):  # fmt: skip
        train, test = make(n_train, seed=0), make(n_test, seed=1)
        args = (train[key], train["label"], test[key], test["label"])
        bow, bow_s = _timed(lambda: bag_of_words_accuracy(*args))
        gru, gru_s = _timed(lambda: order_aware_accuracy(*args, epochs=epochs))
        out[name] = {"train": n_train, "test": n_test, "bag_of_words_accuracy": bow, "order_aware_gru_accuracy": gru,
                     "gru_epochs": epochs, "bow_fit_s": bow_s, "gru_fit_s": gru_s}  # fmt: skip
    return out


def spoken(num_speakers: int, per_speaker: int) -> dict:
    from tokcom.training.data.spoken import SpeechCache, generate_spoken

    if shutil.which("espeak-ng") is None:
        return {"skipped": "espeak-ng is not installed (Debian package `espeak-ng`)"}
    with tempfile.TemporaryDirectory() as tmp:
        cold = SpeechCache(Path(tmp) / "cache")
        _, cold_s = _timed(lambda: generate_spoken(Path(tmp) / "a", num_speakers - 2, 1, 1, per_speaker, seed=0, cache=cold))
        warm = SpeechCache(Path(tmp) / "cache")
        _, warm_s = _timed(lambda: generate_spoken(Path(tmp) / "b", num_speakers - 2, 1, 1, per_speaker, seed=0, cache=warm))
    total = num_speakers * per_speaker
    return {"utterances": total, "synthesized": cold.synthesized, "cold_utterances_per_s": total / cold_s,
            "cached_utterances_per_s": total / warm_s, "reused_from_cache": warm.reused}  # fmt: skip


def _table(result: dict) -> str:
    p, c, s = result["probes"], result["clevr"], result["sentiment"]
    rows = ["| measure | value |", "|---|---|"]
    speed = result["speed"]
    rows += [f"| shapes rendering, 128x128, 1-6 objects | {speed['render_images_per_s']:.0f} images/s |",
             f"| CLEVR questions (no rendering) | {speed['questions_per_s']:.0f} questions/s |",
             f"| `generate_clevr` Dataset (render + PNG + 10 questions/image) | {speed['clevr_dataset_images_per_s']:.0f} images/s |"]  # fmt: skip
    if "cold_utterances_per_s" in result["spoken"]:
        sp = result["spoken"]
        rows += [f"| espeak-ng utterances, cold cache (16 kHz FLAC) | {sp['cold_utterances_per_s']:.1f} utterances/s |",
                 f"| same, from the cache | {sp['cached_utterances_per_s']:.0f} utterances/s |"]  # fmt: skip
    rows += [f"| material probe, LR 32x32 (statistics / raw pixels; chance {p['material_chance']:.2f}) | "
             f"{p['material_lr_statistics_probe']:.3f} / {p['material_lr_pixel_probe']:.3f} |",
             f"| material probe, HR 128x128 (statistics) | {p['material_hr_statistics_probe']:.3f} |",
             f"| shape of small objects, crop probe HR / LR (chance 0.33) | {p['shape_small_hr_crop_probe']:.3f} / "
             f"{p['shape_small_lr_crop_probe']:.3f} |",
             f"| shape of large objects, crop probe HR / LR | {p['shape_large_hr_crop_probe']:.3f} / "
             f"{p['shape_large_lr_crop_probe']:.3f} |"]  # fmt: skip
    for name in ("sst2", "imdb"):
        rows.append(f"| {name}: bag-of-words LR / order-aware GRU | {s[name]['bag_of_words_accuracy']:.3f} / "
                    f"{s[name]['order_aware_gru_accuracy']:.3f} |")  # fmt: skip
    family = ["| CLEVR family | question-only (family prior) | question-only (exact question) | scene-graph reader |",
              "|---|---|---|---|"]
    for f in [*QUESTION_FAMILIES, "overall"]:
        family.append(f"| {f} | {c['question_only_family_prior'][f]:.3f} | {c['question_only_question_prior'][f]:.3f} "
                      f"| {c['scene_graph_reader'][f]:.3f} |")  # fmt: skip
    return "\n".join(rows) + "\n\n" + "\n".join(family) + "\n"


_NOTES = """
How to read it:

- **Probes** use one-object scenes (400 per split). Material: logistic regression on the same 15 image statistics
  (means, spreads, gradient and Laplacian energy) of each view, plus ridge regression on the 32x32 raw pixels.
  Shape: ridge regression on raw pixels of an object-centred crop (24x24 HR pixels, the same field of view as 6x6
  LR pixels). Metal's highlight/ripple and small objects' shape are rendered as detail with zero mean inside every
  4x4 block, so the LR view cannot show them by construction; the probes confirm it (LR at chance) and show the HR
  view does (material 1.0; small-object shape well above chance with a linear probe). Large objects' shape stays
  readable at LR, as it should.
- **CLEVR baselines**: 1,000 training and 500 test scenes, 10 questions each, answers balanced per family.
  "family prior" answers each family's most common training answer; "exact question" answers the most common
  training answer of the identical question text. The perfect-scene-graph reader executes each question's program
  on its scene graph (`shapes_questions.execute_program`); 1.000 everywhere checks questions, programs and answers
  agree. The exact-question prior beats the family prior mainly on exist and count: general filters ("large
  things") usually match something and specific ones ("red metal cubes") usually do not, as in CLEVR.
- **Sentiment** (2,000 training and 500 test texts each): bag-of-words logistic regression versus a one-layer GRU
  (32 units) that reads each sentence in order and sums the sentences' logits over a text, trained from scratch
  on the generated training split (8 epochs for SST-2-like, 10 for IMDB-like). Every word is about as frequent in
  positive as in negative texts, so bag of words stays near chance; the label follows from negation scope and
  which clause a connective makes the main one, which the GRU reads. IMDB-like reviews are labelled by the
  majority of their 3 or 5 opinion sentences (among neutral filler). With 600 reviews or a single GRU over the
  whole review (no sentence split) the reader stayed near chance in trials; the table is the configuration above.
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--out", default=str(ROOT / "results" / "data_phase2"))
    parser.add_argument("--readme-only", action="store_true", help="rewrite README.md from benchmark.json")
    args = parser.parse_args(argv)
    if args.readme_only:
        result = json.loads((Path(args.out) / "benchmark.json").read_text())
        _write_readme(Path(args.out), _table(result))
        return result
    torch.set_num_threads(2)
    q = args.quick
    result = {
        "command": "python benchmarks/data_phase2_benchmark.py" + (" --quick" if q else ""),
        "machine": {"platform": platform.platform(), "torch_threads": torch.get_num_threads()},
        "speed": shapes_speed(64 if q else 512),
        "probes": probes(100 if q else 400),
        "clevr": clevr_baselines(100 if q else 1000, 50 if q else 500),
        "sentiment": sentiment(300 if q else 2000, 100 if q else 500, 100 if q else 2000, 50 if q else 500),
        "spoken": spoken(4, 2 if q else 5),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "benchmark_quick.json" if q else "benchmark.json"
    (out / name).write_text(json.dumps(result, indent=2) + "\n")
    table = _table(result)
    print(json.dumps(result, indent=2))
    print(table)
    if not q:
        _write_readme(out, table)
    return result


def _write_readme(out: Path, table: str) -> None:
    (out / "README.md").write_text(
        "# Phase-2 data: generation speed and baselines (issue 12)\n\n"
        "Regenerate (writes `benchmark.json` and this file; `--readme-only` rewrites this file from the JSON):\n\n"
        "```bash\n.venv/bin/python benchmarks/data_phase2_benchmark.py\n```\n\n"
        "Absolute speeds are from one run on a shared 2-core machine and vary with its load; probe and baseline "
        "accuracies are deterministic up to floating point (fixed seeds).\n\n" + table + _NOTES
    )

if __name__ == "__main__":
    main()
