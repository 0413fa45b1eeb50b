"""Reconstruction through UniToCom's adaptive link vs SNR, channel, token length, rate and constellation.

For sigma-GenIB and VAE tokenizers (each trained by the training engine with the tiny recipe's stages at the
benchmark budget of `unitocom_common.py`: eq. (13), then the SNR/rate-adaptive coder over -10..20 dB, AWGN and
Rayleigh, analog and 16-QAM, rates 2/4/8 symbols per token), the mean tokens of held-out data go through T, the
channel (eq. 2) and R, and F_beta rebuilds the input:

  1. images (32x32 shapes world), S_m = 16/32/64/128: PSNR vs SNR (-10..20 dB), AWGN and Rayleigh (block fading,
     ZF), 4 complex symbols per token (one per pair of the 8 token reals); also the same tokens sent uncoded
     (`TokenChannel` alone, the same 4 symbols per token) as the reference for what the learned coder buys;
  2. audio (0.96 s log-mels of held-out espeak-ng speakers), S_m = 32: mel distance [dB] vs SNR, same links;
  3. S_m = 32 image tokenizers: what a rate and a constellation cost: 2/4/8 symbols per token, analog vs
     16-QAM (straight-through trained), AWGN and Rayleigh.

Writes `results/unitocom_tokenizers/reconstruction_vs_snr.json` and `reconstruction_vs_snr.png`.

    python benchmarks/unitocom_reconstruction_vs_snr.py [--quick]

`--quick` evaluates only S_m = 32 (for a smoke run). Reduced sweeps (time budget): audio only at S_m = 32; the
rate/constellation sweep only at S_m = 32; one training seed per tokenizer.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from unitocom_common import OUT_DIR, STEPS, input_kwargs, metric_name, quality, test_inputs, trained_tokenizer, write_json

SNRS_DB = (-10.0, -5.0, 0.0, 5.0, 10.0, 15.0, 20.0)
CHANNELS = ("awgn", "rayleigh")
TOKEN_LENGTHS = (16, 32, 64, 128)
BOTTLENECKS = ("sigma_genib", "vae")
DEFAULT_RATE = 4  # complex symbols per 8-dimensional token: one per pair of reals, as the uncoded reference
CHUNK = 64


@torch.no_grad()
def through_link(model, inputs, snr_db, channel_type, rate=DEFAULT_RATE, constellation="analog", coded=True, seed=0):
    """Quality of F_beta(R(h T(mu) + n)) on `inputs` (or of the uncoded `TokenChannel(mu)` with `coded=False`)."""
    generator = torch.Generator().manual_seed(seed)
    restored = []
    for start in range(0, len(inputs), CHUNK):
        part = inputs[start : start + CHUNK]
        mean = model.encode(**input_kwargs(model, part)).mean
        if snr_db is None:
            received = mean
        elif coded:
            received = model.transmit(mean, snr_db, rate, channel_type, constellation, generator)
        else:
            received = model.channel(mean, snr_db=snr_db, channel_type=channel_type, generator=generator)
        restored.append(model.decode(received))
    return quality(model, inputs, torch.cat(restored))


def snr_curves(model, inputs, coded=True) -> dict:
    return {channel: [round(through_link(model, inputs, snr, channel, coded=coded, seed=i), 3)
                      for i, snr in enumerate(SNRS_DB)] for channel in CHANNELS}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only S_m = 32")
    args = parser.parse_args()
    torch.set_num_threads(1)
    began = time.time()
    lengths = (32,) if args.quick else TOKEN_LENGTHS
    results = {"snrs_db": list(SNRS_DB), "rate_symbols_per_token": DEFAULT_RATE, "image": {}, "audio": {}, "rates": {}}
    training_seconds = {}

    # 1. images: every token length, both tokenizers, coded and uncoded
    for bottleneck in BOTTLENECKS:
        for num_tokens in lengths:
            model, seconds = trained_tokenizer("image", bottleneck, num_tokens)
            training_seconds[f"image_{bottleneck}_{num_tokens}"] = seconds
            inputs = test_inputs(model)
            entry = {
                "clean": round(through_link(model, inputs, None, None), 3),
                "coded": snr_curves(model, inputs),
                "uncoded": snr_curves(model, inputs, coded=False),
                "channel_uses_per_image": num_tokens * DEFAULT_RATE,
            }
            results["image"].setdefault(bottleneck, {})[str(num_tokens)] = entry
            print(f"image {bottleneck} S={num_tokens}: clean {entry['clean']} dB, AWGN {entry['coded']['awgn']}")

    # 2. audio at S_m = 32
    for bottleneck in BOTTLENECKS:
        model, seconds = trained_tokenizer("audio", bottleneck, 32)
        training_seconds[f"audio_{bottleneck}_32"] = seconds
        inputs = test_inputs(model)
        entry = {"clean": round(through_link(model, inputs, None, None), 3), "coded": snr_curves(model, inputs),
                 "uncoded": snr_curves(model, inputs, coded=False)}  # fmt: skip
        results["audio"][bottleneck] = {"32": entry}
        print(f"audio {bottleneck} S=32: clean {entry['clean']} dB mel distance, AWGN {entry['coded']['awgn']}")

    # 3. rates and constellations at S_m = 32 (images)
    for bottleneck in BOTTLENECKS:
        model, _ = trained_tokenizer("image", bottleneck, 32)
        inputs = test_inputs(model)
        sweep = {}
        for rate in model.config.link_symbols_per_token_choices:
            for constellation in ("analog", "qam16"):
                sweep[f"{rate}_{constellation}"] = {
                    channel: [round(through_link(model, inputs, snr, channel, rate, constellation, seed=i), 3)
                              for i, snr in enumerate(SNRS_DB)] for channel in CHANNELS  # fmt: skip
                }
        results["rates"][bottleneck] = sweep
        print(f"rates {bottleneck}: {({k: v['awgn'][4] for k, v in sweep.items()})} (AWGN 10 dB)")

    results["metric"] = {"image": "psnr_db (higher is better)", "audio": "mel_distance_db (lower is better)"}
    results["settings"] = {
        "training_steps": STEPS, "training_seconds": training_seconds, "quick": args.quick,
        "reduced": "audio only at S_m = 32; rate/constellation sweep only at S_m = 32 images; one seed; the "
                   "benchmark budget (700 tokenizer + 600 link steps at batch 32, 8x8 image patches) is far below the "
                   "paper's 200 epochs",
        "links": "T/R = AdaptiveChannelCoder (FiLM on SNR), trained on mu tokens over -10..20 dB, AWGN + Rayleigh "
                 "(block, ZF), analog + 16-QAM, 2/4/8 symbols per token; 'uncoded' = TokenChannel on mu directly",
        "metric_names": {"image": "psnr_db", "audio": "mel_distance_db"},
        "seconds": round(time.time() - began, 1),
        "command": "python benchmarks/unitocom_reconstruction_vs_snr.py" + (" --quick" if args.quick else ""),
    }  # fmt: skip
    write_json(OUT_DIR / "reconstruction_vs_snr.json", results)
    plot(results)
    print(f"wrote {OUT_DIR / 'reconstruction_vs_snr.json'} in {results['settings']['seconds']} s")


def plot(results: dict) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    snrs = results["snrs_db"]
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.2))
    styles = {"sigma_genib": "-", "vae": "--"}
    ax = axes[0]
    for bottleneck, by_length in results["image"].items():
        entry = by_length.get("32")
        if entry is None:
            continue
        for channel, color in zip(CHANNELS, ("C0", "C3")):
            ax.plot(snrs, entry["coded"][channel], styles[bottleneck], color=color, label=f"{bottleneck} {channel}")
            ax.plot(snrs, entry["uncoded"][channel], styles[bottleneck], color=color, alpha=0.35,
                    label=f"{bottleneck} {channel} uncoded")  # fmt: skip
    ax.set(title="images, S=32, 4 symbols/token", xlabel="SNR [dB]", ylabel="PSNR [dB]")
    ax.legend(fontsize=7)
    ax = axes[1]
    for bottleneck, by_length in results["image"].items():
        lengths = sorted(int(s) for s in by_length)
        for index, color in ((2, "C1"), (4, "C2"), (6, "C4")):
            ax.plot(lengths, [by_length[str(s)]["coded"]["awgn"][index] for s in lengths], styles[bottleneck],
                    marker="o", color=color, label=f"{bottleneck} {snrs[index]:g} dB")  # fmt: skip
    ax.set(title="images vs token length (AWGN)", xlabel="S_m", ylabel="PSNR [dB]", xscale="log")
    ax.legend(fontsize=7)
    ax = axes[2]
    for bottleneck, by_length in results["audio"].items():
        for channel, color in zip(CHANNELS, ("C0", "C3")):
            ax.plot(snrs, by_length["32"]["coded"][channel], styles[bottleneck], color=color, label=f"{bottleneck} {channel}")
    ax.set(title="audio, S=32", xlabel="SNR [dB]", ylabel="mel distance [dB] (lower is better)")
    ax.legend(fontsize=7)
    ax = axes[3]
    for name, curves in results["rates"].get("sigma_genib", {}).items():
        ax.plot(snrs, curves["awgn"], "-" if name.endswith("analog") else ":", marker="o", label=name)
    ax.set(title="sigma-GenIB S=32: rate x constellation (AWGN)", xlabel="SNR [dB]", ylabel="PSNR [dB]")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT_DIR / "reconstruction_vs_snr.png", dpi=110)


if __name__ == "__main__":
    main()
