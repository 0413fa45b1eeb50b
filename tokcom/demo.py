"""`tokcom demo`: the main job on the embedded default, offline.

Steps:
  1. generate a few synthetic audio-visual scenes with MUSIC-AVQA-style questions;
  2. allocate bandwidth, power and token lengths for the paper's default network (Table I, problem 16);
  3. send each scene's frames as token embeddings over AWGN and Rayleigh links (measured SNR, frame PSNR);
  4. if the embedded TokComForAVQA default is installed: answer the questions with pipeline("token-comm-vqa")
     over the links the allocator chose, and print accuracy versus SNR on held-out questions.
Writes `demo.json` and PNG plots into the output folder.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch

PATCH = 4  # frames become tokens of 4x4x3 pixel patches for the channel demonstration


def frames_to_tokens(video: torch.Tensor) -> torch.Tensor:
    """uint8 `(T, H, W, 3)` -> float tokens `(T, (H/4) (W/4), 48)` in [0, 1]."""
    t, h, w, c = video.shape
    x = video.float().div(255.0).view(t, h // PATCH, PATCH, w // PATCH, PATCH, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(t, (h // PATCH) * (w // PATCH), PATCH * PATCH * c)


def tokens_to_frames(tokens: torch.Tensor, size: int) -> np.ndarray:
    """Inverse of `frames_to_tokens` -> uint8 `(T, H, W, 3)`."""
    t = tokens.shape[0]
    g = size // PATCH
    x = tokens.view(t, g, g, PATCH, PATCH, 3).permute(0, 1, 3, 2, 4, 5).reshape(t, size, size, 3)
    return (x.clamp(0, 1) * 255).round().byte().numpy()


def psnr_db(reference: np.ndarray, received: np.ndarray) -> float:
    mse = np.mean((reference.astype(np.float64) - received.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _print_table(title: str, header: list[str], rows: list[list]) -> None:
    widths = [max(len(str(x)) for x in [h] + [r[i] for r in rows]) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths)))
    for row in rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)))


def channel_demo(video: np.ndarray, output_dir: Path, snrs_db=(0.0, 10.0, 20.0)) -> list[dict]:
    """Send one scene's frames over AWGN and Rayleigh links; plot the received frames; return measurements."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tokcom.modeling import TokenChannel

    frames = torch.from_numpy(video)
    tokens = frames_to_tokens(frames)
    rows, images = [], {}
    for channel_type in ("awgn", "rayleigh"):
        channel = TokenChannel(channel_type=channel_type, equalizer="mmse")
        for snr in snrs_db:
            received = channel(tokens, snr_db=snr, generator=torch.Generator().manual_seed(0))
            measured = 10 * math.log10(tokens.pow(2).sum().item() / (received - tokens).pow(2).sum().item())
            out = tokens_to_frames(received, video.shape[1])
            images[(channel_type, snr)] = out[0]
            rows.append({"channel": channel_type, "snr_db": snr, "measured_snr_db": measured, "psnr_db": psnr_db(video, out)})
    figure, axes = plt.subplots(2, len(snrs_db) + 1, figsize=(2.2 * (len(snrs_db) + 1), 4.6))
    for r, channel_type in enumerate(("awgn", "rayleigh")):
        axes[r, 0].imshow(video[0])
        axes[r, 0].set_title("sent")
        for c, snr in enumerate(snrs_db, start=1):
            axes[r, c].imshow(images[(channel_type, snr)])
            axes[r, c].set_title(f"{channel_type} {snr:g} dB", fontsize=9)
    for axis in axes.flat:
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(output_dir / "received_frames.png", dpi=100)
    plt.close(figure)
    return rows


def run_demo(output_dir: str | Path = "tokcom-demo", num_scenes: int = 4, seed: int = 0) -> dict:
    """Run the demo and return (and write) its report."""
    if not 1 <= num_scenes <= 64:
        raise ValueError(f"`num_scenes` must be in [1, 64], got {num_scenes}.")
    from tokcom.pipelines.allocation import allocate, default_network
    from tokcom.training.data.synthetic_avqa import generate_avqa

    began = time.time()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    report: dict = {}

    # 1. scenes and questions
    dataset = generate_avqa(num_scenes, seed=seed)
    rows = [[r["video_id"], r["type"], r["question"], r["anser"]] for r in dataset.select_columns(["video_id", "type", "question", "anser"])]
    _print_table(f"1. {len(dataset)} questions about {num_scenes} synthetic scenes", ["video", "type", "question", "answer"], rows)
    report["questions"] = [dict(zip(["video_id", "type", "question", "answer"], r)) for r in rows]

    # 2. resource allocation for the default network (Table I)
    allocation = allocate(default_network(), method="proposed")
    table = [
        [d["name"], d["tokens"], f"{d['bandwidth_hz'] / 1e6:.3f}", f"{d['power_w'] * 1e3:.1f}", f"{d['snr_db']:.1f}", f"{d['latency_s'] * 1e3:.2f}"]
        for d in allocation["devices"]
    ]
    _print_table(
        f"2. allocation (problem 16, lambda={default_network()['weight']}): cost {allocation['cost']:.4f}, "
        f"latency {allocation['latency_s'] * 1e3:.2f} ms",
        ["device", "tokens", "B [MHz]", "p [mW]", "SNR [dB]", "T [ms]"],
        table,
    )
    report["allocation"] = allocation

    # 3. frames as tokens over the channel
    video = dataset.with_format("numpy", dtype=None)[0]["video"]
    measurements = channel_demo(np.asarray(video), output_dir)
    _print_table(
        "3. one scene's frames as 48-dim tokens over the channel (MMSE equalizer)",
        ["channel", "SNR [dB]", "measured [dB]", "frame PSNR [dB]"],
        [[m["channel"], m["snr_db"], f"{m['measured_snr_db']:.2f}", f"{m['psnr_db']:.1f}"] for m in measurements],
    )
    report["channel"] = measurements

    # 4. token-communication VQA on the embedded default, when installed
    try:
        from tokcom.defaults import default_model_path

        model_path = default_model_path()
    except FileNotFoundError as missing:
        print(f"\n4. skipped: {missing}")
        report["vqa"] = None
    else:
        report["vqa"] = _vqa_demo(model_path, dataset, output_dir)
    report["seconds"] = time.time() - began
    (output_dir / "demo.json").write_text(json.dumps(report, indent=2, default=float))
    print(f"\nwrote {output_dir / 'demo.json'} and PNG plots in {output_dir}/ ({report['seconds']:.1f} s)")
    return report


def network_for_model() -> dict:
    """The paper's default network (Table I) without `phi`/`tokens_max`/`bits_per_token`: the model supplies them."""
    from tokcom.pipelines.allocation import default_network

    network = default_network()
    network.pop("bits_per_token")
    for device in network["devices"]:
        device.pop("phi")
        device.pop("tokens_max")
    return network


def _vqa_demo(model_path: Path, dataset, output_dir: Path, num_questions: int = 300) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from transformers import pipeline

    from tokcom.training.evaluate_tokcom import evaluate

    # 4a. the demo's questions through pipeline("token-comm-vqa") with the allocator choosing the links
    vqa = pipeline("token-comm-vqa", model=str(model_path))
    rows = dataset.with_format("numpy", dtype=None)
    inputs = [
        {"video": row["video"], "audio": {"array": row["audio"], "sampling_rate": int(row["sampling_rate"])}, "question": row["question"]}
        for row in rows
    ]
    outputs = vqa(inputs, network=network_for_model(), batch_size=8, seed=0)
    answers = [[r["question"], r["anser"], o["answer"], f"{o['score']:.2f}", "ok" if o["answer"] == r["anser"] else "x"] for r, o in zip(rows, outputs)]
    _print_table("4. answers at the base station (pipeline('token-comm-vqa'), network mode)", ["question", "truth", "answer", "score", ""], answers)
    transmission = outputs[0]["transmission"]
    link_rows = [
        [link, transmission[link]["tokens"], f"{transmission[link]['snr_db']:.1f}",
         f"{(transmission[link]['bandwidth_hz'] or 0) / 1e6:.3f}", f"{(transmission[link]['latency_s'] or 0) * 1e3:.3f}"]
        for link in ("visual", "audio", "text")
    ]  # fmt: skip
    _print_table(
        f"   transmission of the first clip: total latency {transmission['latency_s'] * 1e3:.3f} ms, "
        f"{transmission['channel_uses']} channel uses",
        ["link", "tokens", "SNR [dB]", "B [MHz]", "T [ms]"],
        link_rows,
    )
    # 4b. accuracy versus SNR on held-out questions at the allocated token lengths
    report = evaluate(
        model_path, snr_db=(-10.0, -5.0, 0.0, 5.0, 10.0, 20.0), num_samples=num_questions, progress=False,
        num_visual_tokens=transmission["visual"]["tokens"], num_audio_tokens=transmission["audio"]["tokens"],
    )  # fmt: skip
    _print_table(
        f"5. held-out accuracy vs SNR ({report['num_samples']} questions, AWGN, s_v={report['num_visual_tokens']}, "
        f"s_a={report['num_audio_tokens']}); question-only baseline {report['question_only_baseline']['accuracy']:.3f}",
        ["SNR [dB]", "accuracy"],
        [[r["snr_db"], f"{r['accuracy']:.3f}"] for r in report["results"]],
    )
    figure, axis = plt.subplots(figsize=(4.5, 3.2))
    axis.plot([r["snr_db"] for r in report["results"]], [r["accuracy"] for r in report["results"]], "o-", label="TokCom")
    axis.axhline(report["question_only_baseline"]["accuracy"], color="gray", ls="--", label="question only")
    axis.set_xlabel("SNR [dB]")
    axis.set_ylabel("accuracy")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(output_dir / "accuracy_vs_snr.png", dpi=100)
    plt.close(figure)
    return {"answers": outputs, "accuracy_vs_snr": report}


__all__ = ["channel_demo", "frames_to_tokens", "run_demo", "tokens_to_frames"]
