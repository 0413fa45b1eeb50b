"""tokcom Space: ask a question about an audio-visual clip whose tokens cross a simulated wireless uplink.

Runs offline: the model is a folder exported by `tokcom export` (or a Hub repo id) loaded with
`trust_remote_code=True`, so this file needs only torch, transformers, peft, scipy, numpy, gradio, matplotlib and
pillow, not the `tokcom` package. `tokcom space` builds a folder with this app, the embedded default model and
sample scenes, and starts it.

Media reading (the WAV scaling rule, mono mixdown, resampling, frame order and checks) is the model's own
`media_io.py`: `tokcom space` copies `modeling/media_io.py`, the same file that `tokcom export` ships as remote code
next to the pipeline, beside this app, so the Space and the pipeline read audio and frames identically without
`tokcom` installed. Imported from this app's folder by path (not by module name, so no other `media_io` on
`sys.path` can shadow it); when the file is absent (running from the tokcom source tree) it comes from the installed
`tokcom.modeling.media_io`. Uploaded WAVs at any rate (44.1 kHz, 48 kHz, ...) are mixed down and resampled to the
model's rate.

Environment: `TOKCOM_MODEL` (model folder or repo id, default `./model`), `TOKCOM_SAMPLES` (default `./samples`),
`TOKCOM_TAICHI` / `TOKCOM_UNITOCOM` (folders with `model/` and `samples/` for the TaiChi and UniToCom tabs, default
`./taichi` and `./unitocom`; a tab is shown only when its `model/config.json` exists),
`GRADIO_SERVER_NAME`/`GRADIO_SERVER_PORT` (default 127.0.0.1:7860).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import math
import os
import re
import warnings
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from transformers import pipeline  # noqa: E402

HERE = Path(__file__).resolve().parent
logger = logging.getLogger("tokcom.space")


def _load_media_io():
    """The `media_io` module beside this file (a built Space), else `tokcom.modeling.media_io` (the source tree)."""
    path = HERE / "media_io.py"
    if not path.is_file():
        from tokcom.modeling import media_io

        return media_io
    spec = importlib.util.spec_from_file_location("tokcom_space_media_io", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


media_io = _load_media_io()


def _load_tab(name: str):
    """`<name>.py` beside this file (`taichi_tab`, `unitocom_tab`; a built Space and the source tree alike), imported
    by path."""
    spec = importlib.util.spec_from_file_location(f"tokcom_space_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SNR_RANGE_DB = (-10.0, 30.0)
BANDWIDTH_RANGE_MHZ = (0.5, 10.0)
POWER_RANGE_DBM = (0.0, 30.0)
DISTANCE_RANGE_KM = (0.05, 1.0)
MAX_FRAMES = 64
MAX_FRAME_BYTES = 5 * 2**20
MAX_AUDIO_BYTES = 10 * 2**20
MAX_AUDIO_SECONDS = 30.0
MAX_QUESTION_CHARS = 200
FRAME_SUFFIXES = media_io.FRAME_SUFFIXES
CHANNELS = {"AWGN": "awgn", "Rayleigh": "rayleigh"}


def load_samples(folder: Path) -> list[dict]:
    """`samples/index.json` rows `{"id", "caption", "questions": [{"question", "answer", "type"}]}`; [] if absent."""
    index = folder / "index.json"
    return json.loads(index.read_text(encoding="utf-8")) if index.is_file() else []


def load_evaluation(model: str) -> dict:
    """`{channel: [(snr_db, accuracy), ...]}` from the model's `evaluation.json`; {} when it has none."""
    path = Path(model) / "evaluation.json"
    if not path.is_file():
        try:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(model, "evaluation.json"))
        except Exception:  # offline, or a repo without results: the plot says so
            return {}
    summary = json.loads(path.read_text(encoding="utf-8"))
    reports = summary.get("evaluation", {summary.get("channel_type", "awgn"): summary})
    return {channel: [(r["snr_db"], r["accuracy"]) for r in report["results"]] for channel, report in reports.items()}


def frames_strip(frames: np.ndarray, scale: int = 4) -> np.ndarray:
    """`(T, H, W, 3)` uint8 -> one `(H * scale, T * W * scale, 3)` image, frames side by side."""
    strip = np.concatenate(list(frames), axis=1)
    return np.asarray(Image.fromarray(strip).resize((strip.shape[1] * scale, strip.shape[0] * scale), Image.NEAREST))


def read_frames(paths: list[str]) -> np.ndarray:
    """Uploaded frame images (in `media_io`'s frame order: by file name, numbers naturally) -> uint8
    `(T, H, W, 3)`; `gr.Error` on bad files."""
    if len(paths) > MAX_FRAMES:
        raise gr.Error(f"Upload at most {MAX_FRAMES} frames (got {len(paths)}).")
    paths = media_io.sort_frame_paths(paths)
    for path in paths:
        if path.suffix.lower() not in FRAME_SUFFIXES:
            raise gr.Error(f"Frames must be {', '.join(FRAME_SUFFIXES)} images; {path.name} is not.")
        if path.stat().st_size > MAX_FRAME_BYTES:
            raise gr.Error(f"Each frame must be at most {MAX_FRAME_BYTES // 2**20} MB; {path.name} is larger.")
    try:
        return media_io.read_frame_files(paths, name="frames")
    except ValueError as error:
        if "same size" in str(error):
            raise gr.Error("All frames must have the same size.") from None
        raise gr.Error(f"A frame is not a readable image: {friendly_message(error)}") from None


def read_audio(path: str) -> tuple[np.ndarray, int]:
    """A `.wav` file -> mono float32 waveform in [-1, 1] (`media_io`'s scaling) and its rate [Hz]; `gr.Error` on bad
    files."""
    if Path(path).suffix.lower() not in media_io.AUDIO_SUFFIXES:
        raise gr.Error("Audio must be a .wav file.")
    if Path(path).stat().st_size > MAX_AUDIO_BYTES:
        raise gr.Error(f"Audio must be at most {MAX_AUDIO_BYTES // 2**20} MB.")
    try:
        waveform, rate, duration_s = media_io.read_wav(path)
    except ValueError:
        raise gr.Error("The audio file is not a readable .wav file (or it is empty).") from None
    if duration_s > MAX_AUDIO_SECONDS:
        raise gr.Error(f"Audio must be at most {MAX_AUDIO_SECONDS:g} s long.")
    return waveform, rate


def resample_for(waveform: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """`waveform` at `rate` [Hz] -> at the model's `target_rate` [Hz] (an uploaded 44.1/48 kHz WAV, say)."""
    return media_io.resample(waveform, rate, target_rate)


def report_markdown(out: dict) -> str:
    """The pipeline's per-link transmission report as a markdown table."""

    def fmt(value, scale=1.0, digits=2):
        return "-" if value is None else f"{value * scale:.{digits}f}"

    tx = out["transmission"]
    rows = [
        f"| {link} | {tx[link]['tokens']} | {fmt(tx[link]['bandwidth_hz'], 1e-6, 3)} | {fmt(tx[link]['power_w'], 1e3, 1)} "
        f"| {fmt(tx[link]['snr_db'])} | {fmt(tx[link]['latency_s'], 1e3, 3)} |"
        for link in ("visual", "audio", "text")
    ]
    header = "| link | tokens | bandwidth [MHz] | power [mW] | SNR [dB] | latency [ms] |\n|---|---|---|---|---|---|\n"
    footer = f"\n\nchannel uses: {tx['channel_uses']}; allocation: {tx['method'] or 'by hand'}"
    if tx["latency_s"] is not None:
        footer += f"; latency (slowest link): {tx['latency_s'] * 1e3:.3f} ms"
    return header + "\n".join(rows) + footer


def snr_plot(curves: dict, channel: str, snr_db: float):
    """Held-out accuracy vs SNR of the model on `channel`, with the current SNR marked."""
    figure, axis = plt.subplots(figsize=(5, 3), dpi=100)
    points = curves.get(channel)
    if points:
        snrs, accuracies = zip(*points)
        axis.plot(snrs, accuracies, "o-", label=f"held-out accuracy ({channel})")
        marked = float(np.interp(snr_db, snrs, accuracies))
        axis.plot([snr_db], [marked], "r*", markersize=14, label=f"this call: {snr_db:.1f} dB")
        axis.set_ylim(0, 1)
        axis.legend(loc="lower right", fontsize=8)
    else:
        axis.text(0.5, 0.5, "no evaluation results for this channel", ha="center", va="center", transform=axis.transAxes)
    axis.set_xlabel("SNR [dB]")
    axis.set_ylabel("accuracy")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure


GENERIC_ERROR = "Something went wrong while answering; the error was logged on the server. Try other inputs."
_PATH = re.compile(r"(?:[A-Za-z]:)?[\\/][^\s'\"`,;:()]*[\\/]([^\s'\"`,;:()\\/]+)")


def friendly_message(error: BaseException) -> str:
    """One line for the user from one of our input checks' `ValueError`/`FileNotFoundError`: its first line, with
    server paths (an upload's temporary folder) cut to the file's name."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return _PATH.sub(r"\1", lines[0]) if lines else "The input was refused."


def friendly(fn):
    """`fn` as a Gradio handler that shows users a one-line message instead of raw exception text: `gr.Error`s pass
    through; `ValueError`/`FileNotFoundError` (the pipeline's and media reader's input checks, which name what was
    wrong and what is allowed) become a `gr.Error` with their first line; anything else is logged here with its
    traceback and shown as `GENERIC_ERROR`."""

    @functools.wraps(fn)
    def handler(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (ValueError, FileNotFoundError) as error:
            raise gr.Error(friendly_message(error)) from None
        except Exception:
            logger.exception("the Space's %s failed", getattr(fn, "__name__", "handler"))
            raise gr.Error(GENERIC_ERROR) from None

    return handler


def ask(vqa, clip, **call) -> dict:
    """`vqa(clip, **call)` (any of the Space's pipelines), showing the pipeline's warnings about the text (words the
    model does not know) to the user as `gr.Warning`s."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = vqa(clip, **call)
    for warning in caught:
        if warning.category.__name__ == "UnknownWordsWarning":
            gr.Warning(str(warning.message))
    return out


def _check_range(value, name: str, low: float, high: float) -> float:
    if value is None or not (low <= float(value) <= high):
        raise gr.Error(f"{name} must be between {low:g} and {high:g} (got {value}).")
    return float(value)


def build_demo(model: str | None = None, samples_dir: str | Path | None = None, taichi_dir: str | Path | None = None,
               unitocom_dir: str | Path | None = None) -> gr.Blocks:  # fmt: skip
    """The Gradio Blocks app for `model` (folder or repo id) and the sample scenes in `samples_dir`; with a TaiChi
    folder (`taichi_dir`, default `TOKCOM_TAICHI` or `./taichi`, holding `model/` and `samples/`) a TaiChi tab too,
    and with a UniToCom folder (`unitocom_dir`, default `TOKCOM_UNITOCOM` or `./unitocom`, the same layout) a
    UniToCom tab."""
    model = model or os.environ.get("TOKCOM_MODEL", str(HERE / "model"))
    samples_dir = Path(samples_dir or os.environ.get("TOKCOM_SAMPLES", HERE / "samples"))
    taichi_dir = Path(taichi_dir or os.environ.get("TOKCOM_TAICHI", HERE / "taichi"))
    unitocom_dir = Path(unitocom_dir or os.environ.get("TOKCOM_UNITOCOM", HERE / "unitocom"))
    vqa = pipeline("token-comm-vqa", model=model, trust_remote_code=True, device="cpu")
    config = vqa.model.config
    max_visual, max_audio = int(config.max_visual_tokens), int(config.max_audio_tokens)
    model_rate = int(vqa.processor.feature_extractor.sampling_rate)  # uploads are resampled to it
    samples = load_samples(samples_dir)
    curves = load_evaluation(model)
    by_id = {s["id"]: s for s in samples}

    def sample_media(sample_id):
        if sample_id not in by_id:
            return None, None, gr.update(choices=[], value=None)
        folder = samples_dir / sample_id
        frames = read_frames([str(p) for p in folder.glob("frame_*.png")])
        questions = [q["question"] for q in by_id[sample_id]["questions"]]
        return frames_strip(frames), str(folder / "audio.wav"), gr.update(choices=questions, value=questions[0])

    def answer(sample_id, frame_files, audio_path, question, channel, snr_db, mode, visual_tokens, audio_tokens,
               bandwidth_mhz, power_dbm, visual_km, audio_km, seed):  # fmt: skip
        question = (question or "").strip()
        if not question or len(question) > MAX_QUESTION_CHARS:
            raise gr.Error(f"Type a question of 1 to {MAX_QUESTION_CHARS} characters.")
        if channel not in CHANNELS:
            raise gr.Error(f"Channel must be one of {list(CHANNELS)}.")
        if frame_files:
            frames = read_frames([getattr(f, "name", f) for f in frame_files])
        elif sample_id in by_id:
            frames = read_frames([str(p) for p in (samples_dir / sample_id).glob("frame_*.png")])
        else:
            raise gr.Error("Pick a sample scene or upload frames.")
        if not audio_path:
            raise gr.Error("Pick a sample scene or upload a .wav file.")
        waveform, rate = read_audio(audio_path)
        waveform, rate = resample_for(waveform, rate, model_rate), model_rate
        clip = {"video": frames, "audio": {"array": waveform, "sampling_rate": rate}, "question": question}
        call = {"channel_type": CHANNELS[channel], "seed": int(seed or 0)}
        if mode == "auto":
            bandwidth_hz = _check_range(bandwidth_mhz, "Bandwidth [MHz]", *BANDWIDTH_RANGE_MHZ) * 1e6
            network = {
                "bandwidth_hz": bandwidth_hz, "power_dbm": _check_range(power_dbm, "Power [dBm]", *POWER_RANGE_DBM),
                "weight": 0.6,
                "devices": [
                    {"name": "visual", "distance_km": _check_range(visual_km, "Visual device distance [km]", *DISTANCE_RANGE_KM)},
                    {"name": "audio", "distance_km": _check_range(audio_km, "Audio device distance [km]", *DISTANCE_RANGE_KM)},
                ],
            }  # fmt: skip
            out = ask(vqa, clip, network=network, **call)
            marked_snr = out["transmission"]["visual"]["snr_db"]
        else:
            snr = _check_range(snr_db, "SNR [dB]", *SNR_RANGE_DB)
            call.update(
                snr_db=snr,
                num_visual_tokens=int(_check_range(visual_tokens, "Visual tokens", 1, max_visual)),
                num_audio_tokens=int(_check_range(audio_tokens, "Audio tokens", 1, max_audio)),
            )
            out = ask(vqa, clip, **call)
            marked_snr = snr
        plot_snr = min(max(marked_snr, SNR_RANGE_DB[0]), SNR_RANGE_DB[1]) if math.isfinite(marked_snr) else SNR_RANGE_DB[1]
        return out["answer"], f"{out['score']:.3f}", report_markdown(out), snr_plot(curves, CHANNELS[channel], plot_snr)

    with gr.Blocks(title="tokcom: token communication") as demo:
        with gr.Tab("TokCom: audio-visual QA", elem_id="tab_tokcom"):
            gr.Markdown(
                "# Token communication: audio-visual QA over a wireless uplink\n"
                "Video tokens, audio tokens and the question each cross their own simulated link (AWGN or Rayleigh); "
                "a LoRA-adapted LLM at the base station answers from the noisy tokens. Model: `" + str(model) + "` "
                "(tiny, trained on a synthetic audio-visual world)."
            )
            with gr.Row():
                with gr.Column():
                    sample = gr.Dropdown([s["id"] for s in samples], value=samples[0]["id"] if samples else None,
                                         label="Sample scene", elem_id="sample")  # fmt: skip
                    frames_view = gr.Image(label="Frames (left to right in time)", interactive=False, elem_id="frames")
                    audio = gr.Audio(label="Audio (.wav; upload to replace)", type="filepath", sources=["upload"], elem_id="audio")
                    frame_files = gr.File(label="Or upload frames (.png/.jpg, sorted by name)", file_count="multiple",
                                          file_types=list(FRAME_SUFFIXES), elem_id="frame_files")  # fmt: skip
                    question = gr.Dropdown([], label="Question (pick or type)", allow_custom_value=True, elem_id="question")
                with gr.Column():
                    channel = gr.Radio(list(CHANNELS), value="AWGN", label="Channel", elem_id="channel")
                    snr = gr.Slider(*SNR_RANGE_DB, value=10.0, step=0.5, label="SNR [dB] (by-hand mode)", elem_id="snr")
                    mode = gr.Radio(["by hand", "auto"], value="by hand", label="Token lengths",
                                    info="auto: the allocator picks tokens, bandwidth and power; each link's SNR then "
                                         "follows from its power, bandwidth and distance", elem_id="mode")  # fmt: skip
                    visual_tokens = gr.Slider(1, max_visual, value=max_visual, step=1, label="Visual tokens", elem_id="visual_tokens")
                    audio_tokens = gr.Slider(1, max_audio, value=max_audio, step=1, label="Audio tokens", elem_id="audio_tokens")
                    bandwidth = gr.Slider(*BANDWIDTH_RANGE_MHZ, value=3.0, step=0.1, label="Uplink bandwidth [MHz] (auto)", elem_id="bandwidth")
                    power = gr.Slider(*POWER_RANGE_DBM, value=23.0, step=0.5, label="Power budget [dBm] (auto)", elem_id="power")
                    visual_km = gr.Slider(*DISTANCE_RANGE_KM, value=0.35, step=0.01, label="Video device distance [km]", elem_id="visual_km")
                    audio_km = gr.Slider(*DISTANCE_RANGE_KM, value=0.45, step=0.01, label="Audio device distance [km]", elem_id="audio_km")
                    seed = gr.Number(0, precision=0, minimum=0, label="Noise seed", elem_id="seed")
                    submit = gr.Button("Send and answer", variant="primary", elem_id="submit")
            with gr.Row():
                with gr.Column():
                    answer_box = gr.Textbox(label="Answer", interactive=False, elem_id="answer")
                    score_box = gr.Textbox(label="Score (probability of the answer)", interactive=False, elem_id="score")
                    report = gr.Markdown(elem_id="report")
                plot = gr.Plot(label="Accuracy vs SNR", elem_id="plot")
            sample.change(friendly(sample_media), sample, [frames_view, audio, question])
            demo.load(friendly(sample_media), sample, [frames_view, audio, question])
            inputs = [sample, frame_files, audio, question, channel, snr, mode, visual_tokens, audio_tokens,
                      bandwidth, power, visual_km, audio_km, seed]  # fmt: skip
            submit.click(friendly(answer), inputs, [answer_box, score_box, report, plot], api_name="answer", concurrency_limit=1)
        taichi_tab = _load_tab("taichi_tab")  # its curve reader and plot serve the UniToCom tab too
        if (taichi_dir / "model" / "config.json").is_file():
            with gr.Tab("TaiChi: image QA, captions, sentences", elem_id="tab_taichi"):
                show_sample, taichi_sample, taichi_views = taichi_tab.build_taichi_tab(
                    str(taichi_dir / "model"), taichi_dir / "samples", friendly, _check_range, CHANNELS, SNR_RANGE_DB
                )
            demo.load(show_sample, taichi_sample, taichi_views)
        if (unitocom_dir / "model" / "config.json").is_file():
            with gr.Tab("UniToCom: image generation, speech, image QA", elem_id="tab_unitocom"):
                show_samples, unitocom_samples, unitocom_views = _load_tab("unitocom_tab").build_unitocom_tab(
                    str(unitocom_dir / "model"), unitocom_dir / "samples", friendly, _check_range, CHANNELS,
                    SNR_RANGE_DB, ask=ask, read_audio=read_audio, resample=resample_for, chosen_image=taichi_tab.chosen_image,
                    load_task_curves=taichi_tab.load_task_curves, task_plot=taichi_tab.task_plot,
                )  # fmt: skip
            demo.load(show_samples, unitocom_samples, unitocom_views)
    return demo.queue(default_concurrency_limit=1, max_size=32)


if __name__ == "__main__":
    build_demo().launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        share=False,  # no `show_error`: users see `friendly` one-line messages, never raw exception text
    )
