"""Reproduce the embedded TaiChi default in one command: train, evaluate every task, write the card, install.

    python -m tokcom.training.build_default_taichi [--recipe taichi_tiny] [--work-dir runs/taichi] [--install]

Steps:
  1. `train()` every stage of the recipe (unimodal pretraining, BAN+KAN pretraining, multitask SFT, the channel
     coder alone, joint VLM-channel coding);
  2. fit phi of the visual link (answer loss vs visual tokens, validation split) into the config, so that the
     pipelines' `network=` mode (the allocator) works; evaluate each task held out (`TaiChiEvaluator`): VQA per question family with the question-only baselines,
     captions (BLEU-4, attribute recall), sentiment with the bag-of-words baseline, at `EVAL_SNRS_DB` on AWGN and
     Rayleigh; and the same VQA sweep for the model after the coder-alone stage (`stages/separate_coding`: the
     paper's "without joint coding"); and the text ceiling: VQA by the text-pretrained LLM given each image's exact
     scene words over an ideal link (`TextCeilingEvaluator` on `stages/pretrain_text`); and VQA with the question over
     an ideal text link while the visual link's SNR moves (`VISUAL_ONLY_SNRS_DB`: at -30 dB only the question is
     left, so accuracy should fall to the question-only baseline);
  3. write `results/taichi_default/evaluation.json`, the checkpoint's `evaluation.json` and its model card;
  4. with `--install`, copy the checkpoint to `tokcom/checkpoints/taichi-tiny/`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tokcom.training.build_default import build_parser, finish_build
from tokcom.training.engine import train
from tokcom.training.evaluation import sweep
from tokcom.training.evaluate_taichi import TaiChiEvaluator, TextCeilingEvaluator, fit_visual_performance_model
from tokcom.training.recipe import load_recipe

DEFAULT_NAME = "taichi-tiny"
RESULTS_DIR = Path(__file__).resolve().parent.parent / "results" / "taichi_default"
EVAL_SNRS_DB = (-30.0, -10.0, -5.0, 0.0, 10.0, 20.0)
VISUAL_ONLY_SNRS_DB = (-30.0, -10.0, 20.0)
CHANNELS = ("awgn", "rayleigh")


def evaluate_tasks(model_dir: Path, num_samples: int, snrs=EVAL_SNRS_DB, tasks=("vqa", "caption", "sentiment"),
                   text_snr_db=None) -> dict:  # fmt: skip
    """`{task: sweep report}` of one checkpoint (captions on a quarter of the samples: they are long to decode);
    `text_snr_db` fixes the text link's SNR while the sweep moves the visual link's (`TaiChiEvaluator`)."""
    reports = {}
    for task in tasks:
        count = max(1, num_samples // 4) if task == "caption" else num_samples
        evaluator = TaiChiEvaluator.from_checkpoint(model_dir, num_samples=count, task=task, text_snr_db=text_snr_db)
        reports[task] = sweep(evaluator, snrs, CHANNELS, progress=True)
    return reports


def build_default(recipe_name: str, work_dir: Path, results_dir: Path, install: bool, skip_training: bool,
                  num_samples: int) -> dict:  # fmt: skip
    began = time.time()
    recipe = load_recipe(recipe_name)
    model_dir = work_dir / "model"
    if not skip_training:
        train(recipe, work_dir)  # 1.
    evaluation_began = time.time()
    fit = fit_visual_performance_model(model_dir, num_samples=min(num_samples, 500))  # 2. phi of the visual link
    config_path = model_dir / "config.json"
    config = json.loads(config_path.read_text())
    config["performance_model"] = fit["performance_model"]
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    tasks = evaluate_tasks(model_dir, num_samples)
    # the image's tokens alone: the question over an ideal text link, the visual link swept (-30 dB: question-only)
    visual_only = evaluate_tasks(model_dir, num_samples, snrs=VISUAL_ONLY_SNRS_DB, tasks=("vqa",), text_snr_db=float("inf"))
    separate = work_dir / "stages" / "separate_coding"
    without_joint = evaluate_tasks(separate, num_samples, tasks=("vqa",)) if separate.is_dir() else None
    text_model = work_dir / "stages" / "pretrain_text"  # the LLM before it saw an image, given the exact scene
    text_ceiling = None
    if text_model.is_dir():
        evaluator = TextCeilingEvaluator.from_checkpoint(text_model, num_samples=num_samples, task="vqa")
        text_ceiling = sweep(evaluator, (float("inf"),), ("none",), progress=True)
    command = f"python -m tokcom.training.build_default_taichi --recipe {recipe_name} --num-samples {num_samples}"
    training_log = json.loads((work_dir / "training_log.json").read_text())
    summary = {
        "command": command,
        # the stages' own times from the training log (also right when this call reused a trained model)
        "training_seconds": sum(stage.get("seconds", 0.0) for stage in training_log.get("stages", [])),
        "evaluation_seconds": time.time() - evaluation_began,
        "total_seconds": time.time() - began,
        "skip_training": skip_training,
        "checkpoint_mb": (model_dir / "model.safetensors").stat().st_size / 2**20,
        "performance_model_fit": fit,
        "tasks": tasks,
        "vqa_visual_link_only": visual_only,
        "without_joint_coding": without_joint,
        "text_ceiling": text_ceiling,
    }
    return finish_build(summary, model_dir, results_dir, training_log, DEFAULT_NAME, install)  # 3., 4.


def main(argv=None) -> int:
    args = build_parser(__doc__, "taichi_tiny", "runs/taichi", RESULTS_DIR, 1000, "held-out samples per task and SNR").parse_args(argv)
    summary = build_default(args.recipe, Path(args.work_dir), Path(args.results_dir), args.install, args.skip_training,
                            args.num_samples)  # fmt: skip
    for task, report in summary["tasks"].items():
        field = "bleu4" if task == "caption" else "accuracy"
        print(task, [(r["channel_type"], r["snr_db"], round(r[field], 3)) for r in report["results"]])
    print(f"done in {summary['total_seconds'] / 60:.1f} min; checkpoint {summary['checkpoint_mb']:.1f} MB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
