"""Reproduce the embedded UniToCom default in one command: train the tokenizers, the attribute reader and the MLLM,
evaluate every task, write the card, install.

    python -m tokcom.training.build_default_unitocom [--recipe unitocom_tiny] [--work-dir runs/unitocom] [--install]

Steps:
  1. `train()` the image and the audio tokenizer with their adaptive links (`TOKENIZER_RECIPES`, Algorithm 1 of `unitocom-genib.txt`) into `<work-dir>/image_tokenizer` and `<work-dir>/audio_tokenizer`;
  2. train the shapes-world attribute reader (`tokcom.training.shapes_reader`: text-to-image attribute accuracy
     and the features of its FID) into `<work-dir>/shapes_reader`;
  3. `train()` the MLLM stage of the recipe on the frozen tokenizers into `<work-dir>/mllm` (its `model/` is the
     checkpoint) and copy the reader into the checkpoint;
  4. fit phi of the image and audio links (answer loss vs tokens sent, validation split) into the config, so that
     the pipelines' `network=` mode (the allocator) works; evaluate each task held out (`UniToComEvaluator`): VQA (with the question-only baselines) and ASR (with the
     constant-transcript baseline) at `EVAL_SNRS_DB` on AWGN and Rayleigh, both with the ideal link beside;
     text-to-image once (the caption crosses the ideal text link, so the SNR does not enter) with the reader's and
     the de-tokenizer's references;
  5. write `results/unitocom_default/evaluation.json`, the checkpoint's `evaluation.json` and its model card;
  6. with `--install`, copy the checkpoint to `tokcom/checkpoints/unitocom-tiny/` (its recipe's tokenizer paths
     relative to `--work-dir`, its config without this machine's paths: `tokcom.portable`).
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
import time
from pathlib import Path

from tokcom.training.build_default import build_parser, finish_build
from tokcom.training.engine import train
from tokcom.training.evaluate_unitocom import READER_FOLDER, UniToComEvaluator, fit_performance_models
from tokcom.training.evaluation import sweep
from tokcom.training.recipe import load_recipe

DEFAULT_NAME = "unitocom-tiny"
RESULTS_DIR = Path(__file__).resolve().parent.parent / "results" / "unitocom_default"
EVAL_SNRS_DB = (-30.0, -10.0, -5.0, 0.0, 10.0, 20.0)
CHANNELS = ("awgn", "rayleigh")
TOKENIZER_KEYS = {"image": "image_tokenizer_path", "audio": "audio_tokenizer_path"}
TOKENIZER_RECIPES = {"image": "unitocom_tokenizer_tiny", "audio": "unitocom_tokenizer_audio_tiny"}  # step 1
READER_SETTINGS = {"seed": 0}  # step 2 (`train_attribute_reader`'s defaults otherwise)


def mllm_recipe(recipe: dict, work_dir: Path) -> dict:
    """The MLLM recipe with its tokenizer paths pointing at step 1's checkpoints."""
    recipe = copy.deepcopy(recipe)
    for modality, key in TOKENIZER_KEYS.items():
        recipe.setdefault("model", {})[key] = str((work_dir / f"{modality}_tokenizer" / "model").resolve())
    return recipe


def evaluate_tasks(model_dir: Path, num_samples: int, num_asr_samples: int, num_image_samples: int) -> dict:
    """`{task: sweep report}`: VQA and ASR over `EVAL_SNRS_DB` x `CHANNELS`; text-to-image at one point."""
    reports = {}
    for task, count in (("vqa", num_samples), ("asr", num_asr_samples)):
        evaluator = UniToComEvaluator.from_checkpoint(model_dir, num_samples=count, task=task)
        reports[task] = sweep(evaluator, EVAL_SNRS_DB, CHANNELS, progress=True)
    evaluator = UniToComEvaluator.from_checkpoint(model_dir, num_samples=num_image_samples, task="text_to_image")
    reports["text_to_image"] = sweep(evaluator, (20.0,), ("rayleigh",), progress=True)
    return reports


def build_default(recipe_name: str, work_dir: Path, results_dir: Path, install: bool, skip_training: bool,
                  num_samples: int) -> dict:  # fmt: skip
    from tokcom.training.shapes_reader import train_attribute_reader

    began = time.time()
    recipe = load_recipe(recipe_name)
    model_dir = work_dir / "mllm" / "model"
    reader_report = None
    if not skip_training:
        for modality in TOKENIZER_KEYS:  # 1.
            train(load_recipe(TOKENIZER_RECIPES[modality]), work_dir / f"{modality}_tokenizer", resume=True)
        if not (work_dir / "shapes_reader" / "training_report.json").is_file():  # 2. (kept when resuming)
            reader, reader_report = train_attribute_reader(**READER_SETTINGS)
            reader.save_pretrained(work_dir / "shapes_reader")
            (work_dir / "shapes_reader" / "training_report.json").write_text(json.dumps(reader_report, indent=2))
        train(mllm_recipe(recipe, work_dir), work_dir / "mllm", resume=True)  # 3.
    shutil.copytree(work_dir / "shapes_reader", model_dir / READER_FOLDER, dirs_exist_ok=True)
    if reader_report is None and (work_dir / "shapes_reader" / "training_report.json").is_file():
        reader_report = json.loads((work_dir / "shapes_reader" / "training_report.json").read_text())
    evaluation_began = time.time()
    count = max(1, num_samples // 2)
    fit = fit_performance_models(model_dir, num_samples=count)  # 4. phi of the image and audio links (network mode)
    config_path = model_dir / "config.json"
    config = json.loads(config_path.read_text())
    config["performance_model"] = fit["performance_model"]
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    tasks = evaluate_tasks(model_dir, num_samples, count, count)  # 4.
    command = f"python -m tokcom.training.build_default_unitocom --recipe {recipe_name} --num-samples {num_samples}"
    logs = {name: json.loads((work_dir / name / "training_log.json").read_text())
            for name in ("image_tokenizer", "audio_tokenizer", "mllm") if (work_dir / name / "training_log.json").is_file()}
    summary = {
        "command": command,
        # the stages' own times from the training logs (also right when this call reused trained models)
        "training_seconds": {name: sum(s.get("seconds", 0.0) for s in log.get("stages", [])) for name, log in logs.items()},
        "evaluation_seconds": time.time() - evaluation_began,
        "total_seconds": time.time() - began,
        "skip_training": skip_training,
        "checkpoint_mb": sum(f.stat().st_size for f in model_dir.rglob("*.safetensors")) / 2**20,
        "performance_model_fit": fit,
        "shapes_reader": reader_report,
        "tasks": tasks,
    }
    return finish_build(summary, model_dir, results_dir, logs["mllm"], DEFAULT_NAME, install, (READER_FOLDER,),
                        work_dir)  # 5., 6.


def main(argv=None) -> int:
    args = build_parser(__doc__, "unitocom_tiny", "runs/unitocom", RESULTS_DIR, 500,
                        "held-out VQA questions per point (ASR utterances and text-to-image prompts: half)").parse_args(argv)
    summary = build_default(args.recipe, Path(args.work_dir), Path(args.results_dir), args.install, args.skip_training,
                            args.num_samples)  # fmt: skip
    for task, report in summary["tasks"].items():
        field = {"vqa": "accuracy", "asr": "wer", "text_to_image": "attribute_accuracy"}[task]
        print(task, [(r["channel_type"], r["snr_db"], round(r[field], 3)) for r in report["results"]])
    print(f"done in {summary['total_seconds'] / 60:.1f} min; checkpoint {summary['checkpoint_mb']:.1f} MB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
