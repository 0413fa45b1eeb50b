"""The Space's TaiChi tab: an image (sample or upload) and a task (question answering, captioning, or classifying a
sentence); the instruction, the text and the visual tokens cross TaiChi's split VLM and its link at the chosen SNR,
channel and visual token budget; the answer, the per-link report and the task's held-out curve are shown.

Built by `app.build_demo` when the Space folder holds `taichi/model` (an exported TaiChi checkpoint) and
`taichi/samples` (`tokcom.space.write_taichi_samples`). Needs no `tokcom` install (the model brings its code).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import gradio as gr
import matplotlib.pyplot as plt
import numpy as np

TASKS = {"Answer a question about the image": "vqa", "Describe the image": "caption",
         "Classify a sentence (text only)": "sentiment"}  # fmt: skip
PIPELINE_TASKS = {"vqa": "token-comm-vqa", "caption": "token-comm-image-to-text",
                  "sentiment": "token-comm-text-classification"}  # fmt: skip
OUTPUT_KEYS = {"vqa": "answer", "caption": "generated_text", "sentiment": "label"}
HEADLINE = {"vqa": "accuracy", "caption": "bleu4", "sentiment": "accuracy"}
MAX_IMAGE_BYTES = 5 * 2**20
MAX_TEXT_CHARS = 200


def load_task_curves(model: str, headline: dict = HEADLINE) -> dict:
    """`{task: {channel: [(snr_db, headline metric), ...]}}` from the model's `evaluation.json` (`{"tasks": {task:
    {"results": [{"channel_type", "snr_db", <headline[task]>}, ...]}}}`; rows without a `channel_type` are on the
    report's own, default AWGN), for the tasks in `headline` that it has; {} without one."""
    path = Path(model) / "evaluation.json"
    if not path.is_file():
        return {}
    summary = json.loads(path.read_text(encoding="utf-8"))
    curves = {}
    for task, report in (summary.get("tasks") or {}).items():
        for row in report.get("results", []) if task in headline else []:
            channel = row.get("channel_type", report.get("channel_type", "awgn"))
            curves.setdefault(task, {}).setdefault(channel, []).append((row["snr_db"], row[headline[task]]))
    return curves


def task_plot(curves: dict, task: str, channel: str, snr_db: float, headline: dict = HEADLINE):
    """The task's held-out metric (`headline[task]`) vs SNR on `channel`, with this call's SNR marked."""
    figure, axis = plt.subplots(figsize=(5, 3), dpi=100)
    points = sorted(curves.get(task, {}).get(channel, []))
    if points:
        snrs, values = zip(*points)
        axis.plot(snrs, values, "o-", label=f"held-out {headline[task]} ({channel})")
        axis.plot([snr_db], [float(np.interp(snr_db, snrs, values))], "r*", markersize=14, label=f"this call: {snr_db:.1f} dB")
        axis.set_ylim(0, max(1.0, *values))  # a word error rate can pass 1
        axis.legend(loc="lower right", fontsize=8)
    else:
        axis.text(0.5, 0.5, "no evaluation results for this task and channel", ha="center", va="center",
                  transform=axis.transAxes)  # fmt: skip
    axis.set_xlabel("SNR [dB]")
    axis.set_ylabel(headline[task])
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def report_markdown(transmission: dict) -> str:
    """TaiChi's two links (visual tokens, instruction + text) as a markdown table."""
    rows = "\n".join(
        f"| {link} | {transmission[link]['tokens']} | "
        + ("-" if transmission[link]["snr_db"] is None else f"{transmission[link]['snr_db']:.2f}") + " |"
        for link in ("visual", "text")
    )
    return (f"| link | tokens | SNR [dB] |\n|---|---|---|\n{rows}\n\nchannel uses: {transmission['channel_uses']} "
            f"(complex symbols through the channel coder)")  # fmt: skip


def chosen_image(upload: str | None, sample: str | None) -> str:
    """The uploaded image's path (at most `MAX_IMAGE_BYTES`), else the picked sample's; `gr.Error` without either."""
    if upload:
        if Path(upload).stat().st_size > MAX_IMAGE_BYTES:
            raise gr.Error(f"The image must be at most {MAX_IMAGE_BYTES // 2**20} MB.")
        return upload
    if sample is None:
        raise gr.Error("Pick a sample image or upload one.")
    return sample


def build_taichi_tab(model: str, samples_dir: Path, friendly, check_range, channels: dict, snr_range):
    """The tab's components and handlers, inside the caller's `gr.Tab`. `friendly` wraps handlers (one-line
    messages), `check_range` checks a slider value, `channels` maps labels to channel types."""
    from transformers import pipeline

    pipes = {task: pipeline(name, model=model, trust_remote_code=True, device="cpu") for task, name in PIPELINE_TASKS.items()}
    config = pipes["vqa"].model.config
    max_visual = int(config.max_visual_tokens)
    index = json.loads((samples_dir / "index.json").read_text(encoding="utf-8")) if (samples_dir / "index.json").is_file() else {}
    images = {row["id"]: row for row in index.get("images", [])}
    sentences = [row["text"] for row in index.get("sentences", [])]
    curves = load_task_curves(model)

    def sample_view(sample_id):
        if sample_id not in images:
            return None, gr.update(choices=[], value=None)
        questions = [q["question"] for q in images[sample_id]["questions"]]
        return str(samples_dir / images[sample_id]["file"]), gr.update(choices=questions + sentences, value=questions[0])

    def run(sample_id, upload, task_label, text, channel, snr_db, visual_tokens, seed):
        if task_label not in TASKS:
            raise gr.Error(f"Task must be one of {list(TASKS)}.")
        if channel not in channels:
            raise gr.Error(f"Channel must be one of {list(channels)}.")
        task = TASKS[task_label]
        snr = check_range(snr_db, "SNR [dB]", *snr_range)
        call = {"snr_db": snr, "channel_type": channels[channel], "seed": int(seed or 0)}
        text = (text or "").strip()
        if task != "caption" and not 1 <= len(text) <= MAX_TEXT_CHARS:
            raise gr.Error(f"Type a {'question' if task == 'vqa' else 'sentence'} of 1 to {MAX_TEXT_CHARS} characters.")
        if task == "sentiment":
            out = pipes[task](text, **call)
        else:
            image = chosen_image(upload, str(samples_dir / images[sample_id]["file"]) if sample_id in images else None)
            call["num_visual_tokens"] = int(check_range(visual_tokens, "Visual tokens", 1, max_visual))
            out = pipes[task]({"image": image, "question": text} if task == "vqa" else {"image": image}, **call)
        marked = min(max(snr, snr_range[0]), snr_range[1]) if math.isfinite(snr) else snr_range[1]
        return (out[OUTPUT_KEYS[task]], f"{out['score']:.3f}", report_markdown(out["transmission"]),
                task_plot(curves, task, channels[channel], marked))  # fmt: skip

    gr.Markdown(
        "## TaiChi: a vision-language model split across the link\n"
        "A CLIP ViT (low-resolution view) and a ConvNeXt (full image) tokenize the image; the Bilateral Attention "
        "Network fuses them into a few tokens, a KAN projects them, the LLM's first layers run at the device, and "
        "an SNR-adaptive channel coder sends the result; the base station runs the remaining layers and answers. "
        f"Model: `{model}` (tiny, trained on a synthetic shapes world)."
    )
    with gr.Row():
        with gr.Column():
            sample = gr.Dropdown(list(images), value=next(iter(images), None), label="Sample image", elem_id="taichi_sample")
            view = gr.Image(label="Image", type="filepath", interactive=False, elem_id="taichi_image")
            upload = gr.Image(label="Or upload an image (.png/.jpg)", type="filepath", sources=["upload"],
                              elem_id="taichi_upload")  # fmt: skip
            task = gr.Radio(list(TASKS), value=next(iter(TASKS)), label="Task", elem_id="taichi_task")
            text = gr.Dropdown([], label="Question or sentence (pick or type)", allow_custom_value=True, elem_id="taichi_text")
        with gr.Column():
            channel = gr.Radio(list(channels), value=next(iter(channels)), label="Channel", elem_id="taichi_channel")
            snr = gr.Slider(*snr_range, value=10.0, step=0.5, label="SNR [dB]", elem_id="taichi_snr")
            visual_tokens = gr.Slider(1, max_visual, value=max_visual, step=1, label="Visual tokens (budget)",
                                      elem_id="taichi_visual_tokens")  # fmt: skip
            seed = gr.Number(0, precision=0, minimum=0, label="Noise seed", elem_id="taichi_seed")
            submit = gr.Button("Send and answer", variant="primary", elem_id="taichi_submit")
    with gr.Row():
        with gr.Column():
            answer = gr.Textbox(label="Output", interactive=False, elem_id="taichi_answer")
            score = gr.Textbox(label="Score (probability of the output)", interactive=False, elem_id="taichi_score")
            report = gr.Markdown(elem_id="taichi_report")
        plot = gr.Plot(label="Held-out metric vs SNR", elem_id="taichi_plot")
    sample.change(friendly(sample_view), sample, [view, text])
    inputs = [sample, upload, task, text, channel, snr, visual_tokens, seed]
    submit.click(friendly(run), inputs, [answer, score, report, plot], api_name="taichi", concurrency_limit=1)
    return friendly(sample_view), sample, [view, text]  # the app shows the first sample on page load
