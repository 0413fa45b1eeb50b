"""Reproduce Fig. 5 of the TokCom letter (and the 13.7% claim of its summary) on the tiny default.

Compares, over SNR from -10 to 20 dB on AWGN and Rayleigh, with several training seeds:
  - ITC:   two-stage model (alignment then task fine-tuning), maximum token lengths;
  - TC-NA: the same pretrained starting point, task fine-tuning only (same number of task steps);
  - TC-HL: the ITC model at half the maximum token lengths;
  - allocated: the ITC model at the token lengths the allocator chooses for the paper's default network.

    python benchmarks/fig5_alignment.py [--seeds 0 1 2] [--num-samples 1000] [--base runs/fig5/base]

The unimodal pretraining (shared by every variant, as in the paper where the encoders and LLM come pretrained)
runs once into `--base` if that folder holds no checkpoint; `--base-model` reuses one instead (for example the
snapshot `runs/default/stages/pretrain_text` that `python -m tokcom.training.build_default` leaves). Variants already
trained in `--runs-dir` with the same recipe, seed and base are reused (a rerun with one more seed trains only that
seed); an interrupted one resumes. Writes `results/fig5/fig5.json` and `fig5.png`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from tokcom.modeling import TokComForAVQA
from tokcom.pipelines.allocation import allocate
from tokcom.training.evaluate_tokcom import evaluate, fit_performance_models
from tokcom.training.recipe import load_recipe
from tokcom.training.engine import train

ROOT = Path(__file__).resolve().parent.parent
SNRS_DB = (-10.0, -5.0, 0.0, 5.0, 10.0, 15.0, 20.0)
PRETRAIN_STAGES = ["pretrain_vision", "pretrain_audio", "pretrain_text"]


def allocated_lengths(model_dir: Path) -> tuple[int, int]:
    """Token lengths the allocator picks for Table I's network with the model's fitted phi and q."""
    from tokcom.demo import network_for_model

    config = TokComForAVQA.config_class.from_pretrained(model_dir)
    if config.performance_model is None:
        fit_performance_models(model_dir, num_samples=500)
        config = TokComForAVQA.config_class.from_pretrained(model_dir)
    network = network_for_model()
    network["bits_per_token"] = config.bits_per_token
    for device in network["devices"]:
        device["phi"] = config.performance_model[device["name"]]
        device["tokens_max"] = config.max_tokens(device["name"])
    tokens = {d["name"]: d["tokens"] for d in allocate(network)["devices"]}
    return tokens["visual"], tokens["audio"]


def run(seeds, num_samples: int, base: Path, out_dir: Path, recipe_name: str, base_model: Path | None = None) -> dict:
    began = time.time()
    recipe = load_recipe(recipe_name)
    command = f"python benchmarks/fig5_alignment.py --seeds {' '.join(map(str, seeds))} --num-samples {num_samples}"
    if base_model is not None:
        command += f" --base-model {base_model}"
    else:
        base_model = base / "model"
        if not (base_model / "config.json").exists():
            train(recipe, base, stages=PRETRAIN_STAGES)
    curves: dict = {}
    for seed in seeds:
        seeded = {**recipe, "training_seed": int(seed)}
        # resume=True: a variant already trained (same recipe and seed, same base) is reused, an interrupted one
        # continues; train() refuses a folder trained from another recipe or base
        itc = train(seeded, out_dir / f"itc-seed{seed}", stages=["align", "task"], init_model=str(base_model), resume=True)
        tc_na = train(seeded, out_dir / f"tcna-seed{seed}", stages=["task"], init_model=str(base_model), resume=True)
        config = TokComForAVQA.config_class.from_pretrained(itc)
        half = (max(1, config.max_visual_tokens // 2), max(1, config.max_audio_tokens // 2))
        allocated = allocated_lengths(itc)
        variants = {"ITC": (itc, (None, None)), "TC-NA": (tc_na, (None, None)), "TC-HL": (itc, half), "allocated": (itc, allocated)}
        for channel in ("awgn", "rayleigh"):
            for name, (model_dir, (s_v, s_a)) in variants.items():
                report = evaluate(model_dir, SNRS_DB, num_samples, channel, s_v, s_a, progress=False, with_baseline=False)
                key = f"{name}/{channel}"
                curves.setdefault(key, {"tokens": [report["num_visual_tokens"], report["num_audio_tokens"]], "runs": []})
                curves[key]["runs"].append([r["accuracy"] for r in report["results"]])
    for entry in curves.values():
        runs = np.asarray(entry["runs"])
        entry["mean"], entry["std"] = runs.mean(0).tolist(), runs.std(0).tolist()
    gain = {
        channel: float(np.mean(curves[f"ITC/{channel}"]["mean"]) - np.mean(curves[f"TC-NA/{channel}"]["mean"]))
        for channel in ("awgn", "rayleigh")
    }
    return {
        "command": command,
        "base_model": str(base_model),
        "snr_db": list(SNRS_DB),
        "seeds": list(seeds),
        "num_samples": num_samples,
        "curves": curves,
        "alignment_gain_mean_accuracy": gain,
        "seconds": time.time() - began,
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    for axis, channel in zip(axes, ("awgn", "rayleigh")):
        for name, style in (("ITC", "o-"), ("TC-NA", "s--"), ("TC-HL", "^-."), ("allocated", "d:")):
            entry = result["curves"][f"{name}/{channel}"]
            label = f"{name} (s_v={entry['tokens'][0]}, s_a={entry['tokens'][1]})"
            axis.errorbar(result["snr_db"], entry["mean"], yerr=entry["std"], fmt=style, capsize=3, label=label)
        axis.set_title(channel.upper())
        axis.set_xlabel("SNR [dB]")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy")
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--recipe", default="tokcom_avqa_tiny")
    parser.add_argument("--base", default="runs/fig5/base")
    parser.add_argument("--base-model", help="an already pretrained checkpoint to start every variant from")
    parser.add_argument("--runs-dir", default="runs/fig5")
    parser.add_argument("--results-dir", default=str(ROOT / "results" / "fig5"))
    args = parser.parse_args(argv)
    base_model = Path(args.base_model) if args.base_model else None
    result = run(args.seeds, args.num_samples, Path(args.base), Path(args.runs_dir), args.recipe, base_model)
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "fig5.json").write_text(json.dumps(result, indent=2))
    plot(result, results_dir / "fig5.png")
    print(json.dumps(result["alignment_gain_mean_accuracy"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
