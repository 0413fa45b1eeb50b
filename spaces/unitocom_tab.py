"""The Space's UniToCom tab: one latent MLLM at the base station, three tasks over the link at the chosen SNR and
channel. A text prompt crosses the (ideal) text link and the base station generates an image by next-token
diffusion; speech (a sample or an uploaded `.wav`) crosses the audio link and comes back as a transcript; an image
(a sample or an upload) and a question cross the image and text links and come back as an answer. Each shows the
per-link transmission report and the task's held-out curve from the model's `evaluation.json`.

Built by `app.build_demo` when the Space folder holds `unitocom/model` (an exported UniToCom checkpoint) and
`unitocom/samples` (`tokcom.space.write_unitocom_samples`). Needs no `tokcom` install (the model brings its code).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import gradio as gr
from PIL import Image

PIPELINE_TASKS = {"text_to_image": "token-comm-text-to-image", "asr": "token-comm-asr", "vqa": "token-comm-vqa"}
HEADLINE = {"text_to_image": "attribute_accuracy", "asr": "wer", "vqa": "accuracy"}  # evaluation.json's metrics
MAX_TEXT_CHARS = 200
DISPLAY_SCALE = 8  # generated images are the tokenizer's size (32x32 for the tiny model): shown enlarged


def report_markdown(transmission: dict) -> str:
    """The links a UniToCom task used (image / audio: the adaptive coder over the channel; text: ideal) as a table."""
    rows = []
    for link, record in transmission.items():
        if isinstance(record, dict):
            snr = "ideal" if link == "text" else f"{record['snr_db']:.2f}"
            rows.append(f"| {link} | {record['tokens']} | {snr} |")
    return ("| link | tokens | SNR [dB] |\n|---|---|---|\n" + "\n".join(rows)
            + f"\n\nchannel uses: {transmission['channel_uses']} (complex symbols of the image or audio link; the "
              "text link is ideal and not counted)")  # fmt: skip


def text_outputs(name: str, task: str) -> tuple:
    """A text task's output box (`#unitocom_<name>`), its score and its report (`#unitocom_<task>_score`, `_report`)."""
    return (gr.Textbox(label=name.capitalize(), interactive=False, elem_id=f"unitocom_{name}"),
            gr.Textbox(label=f"Score (probability of the {name})", interactive=False, elem_id=f"unitocom_{task}_score"),
            gr.Markdown(elem_id=f"unitocom_{task}_report"))  # fmt: skip


def sample_picker(rows: dict, label: str, elem_id: str) -> gr.Dropdown:
    """A dropdown of the sample ids in `rows`, the first picked."""
    return gr.Dropdown(list(rows), value=next(iter(rows), None), label=label, elem_id=elem_id)


def build_unitocom_tab(model: str, samples_dir: Path, friendly, check_range, channels: dict, snr_range, *, ask,
                       read_audio, resample, chosen_image, load_task_curves, task_plot):  # fmt: skip
    """The tab's components and handlers, inside the caller's `gr.Tab`; the app's helpers come in: `friendly` wraps
    handlers (one-line messages), `check_range` checks a slider value, `channels` maps labels to channel types,
    `ask(pipe, input, **call)` runs a pipeline showing its unknown-word warnings to the user, `read_audio` /
    `resample` read an uploaded `.wav` (with the app's bounds) and bring it to the model's rate; from the TaiChi tab,
    `chosen_image` picks (and bounds) an uploaded or sample image, `load_task_curves` / `task_plot` read and draw
    held-out curves (given `HEADLINE`)."""
    from transformers import pipeline

    pipes = {task: pipeline(name, model=model, trust_remote_code=True, device="cpu") for task, name in PIPELINE_TASKS.items()}
    processor = pipes["asr"].processor
    rate, max_samples = int(processor.sampling_rate), int(processor.max_audio_samples)
    index = json.loads((samples_dir / "index.json").read_text(encoding="utf-8")) if (samples_dir / "index.json").is_file() else {}
    images = {row["id"]: row for row in index.get("images", [])}
    speech = {row["id"]: row for row in index.get("speech", [])}
    prompts = list(index.get("prompts", []))
    curves = load_task_curves(model, HEADLINE)

    def call_settings(channel, snr_db, seed) -> dict:
        if channel not in channels:
            raise gr.Error(f"Channel must be one of {list(channels)}.")
        return {"snr_db": check_range(snr_db, "SNR [dB]", *snr_range), "channel_type": channels[channel], "seed": int(seed or 0)}

    def check_text(text, what: str) -> str:
        text = (text or "").strip()
        if not 1 <= len(text) <= MAX_TEXT_CHARS:
            raise gr.Error(f"Type a {what} of 1 to {MAX_TEXT_CHARS} characters.")
        return text

    def plot(task, call):
        snr = call["snr_db"]
        marked = min(max(snr, snr_range[0]), snr_range[1]) if math.isfinite(snr) else snr_range[1]
        return task_plot(curves, task, call["channel_type"], marked, HEADLINE)

    def draw(prompt, channel, snr_db, seed):
        call = call_settings(channel, snr_db, seed)
        out = ask(pipes["text_to_image"], check_text(prompt, "prompt"), **call)
        image = out["image"].resize((out["image"].width * DISPLAY_SCALE, out["image"].height * DISPLAY_SCALE), Image.NEAREST)
        return image, report_markdown(out["transmission"]), plot("text_to_image", call)

    def transcribe(audio_path, channel, snr_db, seed):
        call = call_settings(channel, snr_db, seed)
        if not audio_path:
            raise gr.Error("Pick a speech sample or upload a .wav file.")
        waveform, upload_rate = read_audio(audio_path)
        waveform = resample(waveform, upload_rate, rate)
        if waveform.shape[0] > max_samples:
            raise gr.Error(f"Speech must be at most {max_samples / rate:.1f} s long for this model "
                           f"(got {waveform.shape[0] / rate:.1f} s).")  # fmt: skip
        out = ask(pipes["asr"], {"array": waveform, "sampling_rate": rate}, **call)
        return out["text"], f"{out['score']:.3f}", report_markdown(out["transmission"]), plot("asr", call)

    def answer(sample_id, upload, question, channel, snr_db, seed):
        call = call_settings(channel, snr_db, seed)
        question = check_text(question, "question")
        image = chosen_image(upload, str(samples_dir / images[sample_id]["file"]) if sample_id in images else None)
        out = ask(pipes["vqa"], {"image": image, "question": question}, **call)
        return out["answer"], f"{out['score']:.3f}", report_markdown(out["transmission"]), plot("vqa", call)

    def show_image(image_id):
        if image_id not in images:
            return None, gr.update(choices=[], value=None)
        questions = [q["question"] for q in images[image_id]["questions"]]
        return str(samples_dir / images[image_id]["file"]), gr.update(choices=questions, value=questions[0])

    def show_speech(speech_id):
        if speech_id not in speech:
            return None, ""
        return str(samples_dir / speech[speech_id]["file"]), speech[speech_id]["text"]

    def show_samples(image_id, speech_id):
        return *show_image(image_id), *show_speech(speech_id)

    gr.Markdown(
        "## UniToCom: one latent MLLM for understanding and generation over the link\n"
        "Images and speech become continuous sigma-GenIB tokens that cross the channel through an adaptive "
        "coder-modulator; text crosses an ideal link. The base station's latent MLLM answers questions, transcribes "
        "speech (LM head) and generates images token by token (diffusion head). Generated images stay at the base "
        f"station. Model: `{model}` (tiny, trained on a synthetic shapes world and espeak-ng speech)."
    )
    with gr.Row():
        channel = gr.Radio(list(channels), value=next(iter(channels)), label="Channel", elem_id="unitocom_channel")
        snr = gr.Slider(*snr_range, value=10.0, step=0.5, label="SNR [dB]", elem_id="unitocom_snr")
        seed = gr.Number(0, precision=0, minimum=0, label="Noise seed", elem_id="unitocom_seed")
    shared = [channel, snr, seed]

    gr.Markdown("### Text prompt -> generated image")
    with gr.Row():
        with gr.Column():
            prompt = gr.Dropdown(prompts, value=next(iter(prompts), None), label="Prompt (pick or type)",
                                 allow_custom_value=True, elem_id="unitocom_prompt")  # fmt: skip
            draw_button = gr.Button("Send and generate", variant="primary", elem_id="unitocom_draw")
            generated = gr.Image(label=f"Generated image ({DISPLAY_SCALE}x enlarged)", type="pil", interactive=False,
                                 elem_id="unitocom_generated")  # fmt: skip
            draw_report = gr.Markdown(elem_id="unitocom_draw_report")
        draw_plot = gr.Plot(label="Held-out attribute accuracy vs SNR", elem_id="unitocom_draw_plot")

    gr.Markdown("### Speech -> transcript")
    with gr.Row():
        with gr.Column():
            speech_sample = sample_picker(speech, "Speech sample", "unitocom_speech_sample")
            audio = gr.Audio(label="Speech (.wav; upload to replace)", type="filepath", sources=["upload"],
                             elem_id="unitocom_audio")  # fmt: skip
            reference = gr.Textbox(label="What the sample says", interactive=False, elem_id="unitocom_reference")
            transcribe_button = gr.Button("Send and transcribe", variant="primary", elem_id="unitocom_transcribe")
            transcript, asr_score, asr_report = text_outputs("transcript", "asr")
        asr_plot = gr.Plot(label="Held-out word error rate vs SNR", elem_id="unitocom_asr_plot")

    gr.Markdown("### Image + question -> answer")
    with gr.Row():
        with gr.Column():
            image_sample = sample_picker(images, "Sample image", "unitocom_image_sample")
            view = gr.Image(label="Image", type="filepath", interactive=False, height=192, elem_id="unitocom_image")
            upload = gr.Image(label="Or upload an image (.png/.jpg)", type="filepath", sources=["upload"],
                              elem_id="unitocom_upload")  # fmt: skip
            question = gr.Dropdown([], label="Question (pick or type)", allow_custom_value=True, elem_id="unitocom_question")
            ask_button = gr.Button("Send and answer", variant="primary", elem_id="unitocom_ask")
            answer_box, vqa_score, vqa_report = text_outputs("answer", "vqa")
        vqa_plot = gr.Plot(label="Held-out accuracy vs SNR", elem_id="unitocom_vqa_plot")

    image_sample.change(friendly(show_image), image_sample, [view, question])
    speech_sample.change(friendly(show_speech), speech_sample, [audio, reference])
    draw_button.click(friendly(draw), [prompt, *shared], [generated, draw_report, draw_plot], api_name="unitocom_draw",
                      concurrency_limit=1)  # fmt: skip
    transcribe_button.click(friendly(transcribe), [audio, *shared], [transcript, asr_score, asr_report, asr_plot],
                            api_name="unitocom_transcribe", concurrency_limit=1)  # fmt: skip
    ask_button.click(friendly(answer), [image_sample, upload, question, *shared], [answer_box, vqa_score, vqa_report, vqa_plot],
                     api_name="unitocom_vqa", concurrency_limit=1)  # fmt: skip
    return friendly(show_samples), [image_sample, speech_sample], [view, question, audio, reference]  # for page load
