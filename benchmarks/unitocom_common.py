"""Shared parts of the UniToCom tokenizer benchmarks (`unitocom_collapse.py`, `unitocom_reconstruction_vs_snr.py`):
one recipe per tokenizer (the tiny recipe's stages with a smaller step budget), trained with the training engine
and cached on disk, held-out data, and the metrics (PSNR, mel distance).

Trained tokenizers are kept in `$TOKCOM_CACHE/unitocom_bench/<name>-<recipe digest>/model` (default
`~/.cache/tokcom/...`), so the second benchmark reuses what the first trained.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "results" / "unitocom_tokenizers"
CACHE_DIR = Path(os.environ.get("TOKCOM_CACHE", Path.home() / ".cache" / "tokcom")) / "unitocom_bench"

# The benchmark budget (2-core CPU, one thread, < 25 min for both scripts): the tiny recipe's model and link
# settings, fewer steps and examples.
STEPS = {"image": {"tokenizer": 700, "link": 600}, "audio": {"tokenizer": 700, "link": 600}}
BATCH_SIZE = 32
LEARNING_RATE = 0.003
IMAGE_PATCH_SIZE = 8  # 16 patches of 8x8 (the tiny preset's 4x4 patches cost 4x more per step here)
TRAIN_EXAMPLES = {"image": 2000, "audio": 160}
TEST_EXAMPLES = {"image": 256, "audio": 48}
BENCH_VERSION = 2  # part of the cache key: bump when the model code changes what a recipe trains
TEST_SEED = 1  # held-out: other scenes, other sentences and speakers than the training seed 0


def recipe_for(modality: str, bottleneck: str, num_tokens: int) -> dict:
    """The benchmark recipe of one tokenizer: `unitocom_tokenizer_tiny` (stages tokenizer + link; joint skipped so
    that the tokenizers are compared as trained by eq. 13 alone) with the benchmark's budget."""
    from tokcom.training.recipe import load_recipe

    recipe = copy.deepcopy(load_recipe("unitocom_tokenizer_tiny"))
    recipe["name"] = f"unitocom_bench_{modality}_{bottleneck}_{num_tokens}"
    recipe["num_threads"] = 1
    recipe["model"] = {"modality": modality, "bottleneck": bottleneck, "num_tokens": num_tokens}
    if modality == "image":
        recipe["model"]["patch_size"] = IMAGE_PATCH_SIZE
    recipe["data"] = {"train_examples": TRAIN_EXAMPLES[modality]}
    if modality == "audio":
        recipe["data"]["num_speakers"] = 8
    recipe["stages"].pop("joint")
    for stage, steps in STEPS[modality].items():
        recipe["stages"][stage].update(steps=steps, batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE)
    recipe["stages"]["link"]["symbols_per_token"] = [2, 4, 8]
    return recipe


def trained_tokenizer(modality: str, bottleneck: str, num_tokens: int, log=print):
    """The trained model of `recipe_for(...)` (from the cache, else trained now) and the seconds training took."""
    recipe = recipe_for(modality, bottleneck, num_tokens)
    digest = hashlib.sha256(json.dumps([BENCH_VERSION, recipe], sort_keys=True).encode()).hexdigest()[:12]
    return cached_tokenizer(recipe, CACHE_DIR / f"{recipe['name']}-{digest}", log)


def cached_tokenizer(recipe: dict, folder: Path, log=print):
    """The tokenizer `recipe` trains into `folder` (loaded in eval mode when `folder/model` holds it, else trained
    now with the training engine) and the seconds training took: the wall time when trained now, else the stages'
    seconds from `folder/training_log.json` (None without it)."""
    from tokcom.modeling.tokenization_unitocom import UniToComTokenizerModel
    from tokcom.training.engine import train

    seconds = None
    if not (folder / "model" / "model.safetensors").is_file():
        log(f"training {recipe['name']} -> {folder}")
        began = time.time()
        train(recipe, folder, resume=True)
        seconds = time.time() - began
    model = UniToComTokenizerModel.from_pretrained(folder / "model").eval()
    log_path = folder / "training_log.json"
    if seconds is None and log_path.is_file():
        seconds = sum(stage.get("seconds", 0.0) for stage in json.loads(log_path.read_text())["stages"])
    return model, seconds


_TEST_DATA: dict = {}


def test_inputs(model) -> torch.Tensor:
    """Held-out inputs for `model`'s modality: images in [0, 1] or log-mel windows [dB] (first window of each)."""
    from tokcom.training.stages_unitocom_tokenizer import shapes_images, spoken_log_mels

    config = model.config
    key = (config.modality, config.image_size, config.num_frames, config.num_mel_bins)
    if key not in _TEST_DATA:
        if config.modality == "image":
            _TEST_DATA[key] = shapes_images(config, TEST_EXAMPLES["image"], TEST_SEED).float() / 255.0
        else:
            mels = spoken_log_mels(config, TEST_EXAMPLES["audio"], num_speakers=4, seed=TEST_SEED)
            _TEST_DATA[key] = torch.stack([mel[: config.num_frames] for mel in mels])
    return _TEST_DATA[key]


def input_kwargs(model, inputs: torch.Tensor) -> dict:
    return {"pixel_values" if model.config.modality == "image" else "input_features": inputs}


def quality(model, reference: torch.Tensor, restored: torch.Tensor) -> float:
    """Images: PSNR [dB] (peak 1, MSE over the whole set); audio: mel distance [dB], the mean absolute log-mel
    difference (both clamped at the log-mel floor, `MEL_FLOOR_DB`)."""
    if model.config.modality == "image":
        mse = (restored - reference).pow(2).mean().item()
        return float(10 * np.log10(1.0 / max(mse, 1e-12)))
    from tokcom.modeling.tokenization_unitocom import MEL_FLOOR_DB

    return float((restored.clamp_min(MEL_FLOOR_DB) - reference.clamp_min(MEL_FLOOR_DB)).abs().mean().item())


def metric_name(model) -> str:
    return "psnr_db" if model.config.modality == "image" else "mel_distance_db"


def write_json(path: Path, payload) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")


def finish_report(report: dict, script: str, argv, output=None, echo: bool = True) -> int:
    """The end of every diagnostic benchmark: record the command that regenerates `report` (`python
    benchmarks/<script> <argv>`, `argv` defaulting to `sys.argv[1:]`), print it as one JSON line when `echo`, and
    write it to `output` when given. Returns 0 (the script's exit code)."""
    import sys

    arguments = list(argv if argv is not None else sys.argv[1:])
    report["command"] = " ".join(["python", f"benchmarks/{script}", *arguments])
    if echo:
        print(json.dumps(report))
    if output:
        write_json(Path(output), report)
    return 0
