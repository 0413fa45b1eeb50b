"""The Gradio Space, driven in a real browser (Debian chromium + Playwright), plus its sample files."""

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from tokcom.cli import main
from tokcom.space import build_space

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("TOKCOM_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"))
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]  # fmt: skip


@pytest.fixture(scope="module")
def unitocom_model(tmp_path_factory):
    """A tiny untrained UniToCom checkpoint with its processor (the tab's plumbing is under test, not its outputs)."""
    import torch

    from tokcom.modeling import UniToComConfig, UniToComModel
    from tokcom.modeling.processing_unitocom import UniToComProcessor
    from tokcom.training.data.spoken import spoken_sentences
    from tokcom.training.taichi_corpus import TaiChiCorpus
    from tokcom.training.tokenization import build_word_tokenizer

    folder = tmp_path_factory.mktemp("unitocom_model")
    torch.manual_seed(0)
    config = UniToComConfig.tiny(max_new_tokens=4)
    UniToComModel(config).save_pretrained(folder)
    corpus = TaiChiCorpus.build({"test_scenes": 3, "questions_per_scene": 4, "sentiment_sentences": 2, "seed": 2024}, "test")
    words = build_word_tokenizer([*corpus.texts(), *spoken_sentences(64, seed=2024)])
    UniToComProcessor.from_model_config(config, words).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def space(tmp_path_factory, unitocom_model):
    import torch

    from tokcom.modeling import TaiChiConfig, TaiChiForConditionalGeneration
    from tokcom.modeling.processing_taichi import DEFAULT_INSTRUCTIONS, TaiChiProcessor
    from tokcom.training.taichi_corpus import TaiChiCorpus
    from tokcom.training.tokenization import build_word_tokenizer

    # a TaiChi checkpoint for the TaiChi tab (random weights: the tab's plumbing is under test, not its answers)
    taichi = tmp_path_factory.mktemp("taichi_model")
    torch.manual_seed(0)
    TaiChiForConditionalGeneration(TaiChiConfig.tiny()).save_pretrained(taichi)
    corpus = TaiChiCorpus.build({"test_scenes": 3, "questions_per_scene": 4, "sentiment_sentences": 48, "seed": 2024}, "test")
    TaiChiProcessor(build_word_tokenizer([*DEFAULT_INSTRUCTIONS.values(), *corpus.texts()])).save_pretrained(taichi)
    return build_space(tmp_path_factory.mktemp("space") / "tokcom-space", num_scenes=3, taichi_model=str(taichi),
                       unitocom_model=str(unitocom_model))  # fmt: skip


def test_built_space_holds_app_card_model_and_samples(space):
    assert {"app.py", "requirements.txt", "README.md", "model", "samples"} <= {p.name for p in space.iterdir()}
    front = (space / "README.md").read_text().split("---")[1]
    assert "sdk: gradio" in front and "app_file: app.py" in front
    requirements = [line for line in (space / "requirements.txt").read_text().splitlines() if not line.startswith("#")]
    assert requirements and not any("tokcom" in line for line in requirements)  # the exported model brings the code
    rows = json.loads((space / "samples" / "index.json").read_text())
    assert len(rows) == 3 and all(row["questions"] for row in rows)
    scene = space / "samples" / rows[0]["id"]
    assert len(sorted(scene.glob("frame_*.png"))) == 8
    rate, audio = wavfile.read(scene / "audio.wav")
    assert rate == 16000 and audio.shape == (16000,) and np.abs(audio).max() > 0


def test_built_space_holds_the_unitocom_tab_model_and_samples(space):
    from PIL import Image

    from tokcom.cli import build_parser

    model = space / "unitocom" / "model"
    assert json.loads((model / "config.json").read_text())["model_type"] == "unitocom"
    assert (model / "modeling_unitocom.py").is_file()  # exported: the model brings its code, no tokcom install needed
    assert (space / "unitocom_tab.py").is_file()
    samples = space / "unitocom" / "samples"
    index = json.loads((samples / "index.json").read_text())
    assert len(index["images"]) == 3 and all(row["questions"] for row in index["images"]) and index["prompts"]
    assert Image.open(samples / index["images"][0]["file"]).size == (32, 32)
    assert 2 <= len(index["speech"]) <= 3 and all(row["text"] for row in index["speech"])
    rate, audio = wavfile.read(samples / index["speech"][0]["file"])
    assert rate == 16000 and audio.dtype == np.int16 and 0 < len(audio) <= 3.5 * rate and np.abs(audio).max() > 0
    assert build_parser().parse_args(["space", "--unitocom-model", "ckpt"]).unitocom_model == "ckpt"


def test_space_command_refuses_to_overwrite_without_the_flag(space, capsys):
    assert main(["space", "--build-dir", str(space), "--no-launch"]) == 0  # already built: kept as is
    with pytest.raises(FileExistsError):
        build_space(space)


@contextlib.contextmanager
def browser_page(url: str, height: int = 1400):
    """A headless chromium page (Debian's, driven by Playwright) opened at `url`; `pytest.fail` without chromium."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (.ci/run does) to run the browser test.")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": height})
            page.goto(url, wait_until="networkidle")
            yield page
        finally:
            browser.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def running_space(space, tmp_path_factory):
    port = _free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "HF_HOME": str(tmp_path_factory.mktemp("hf_home"))}  # fmt: skip
    log = open(tmp_path_factory.mktemp("log") / "app.log", "w+")
    process = subprocess.Popen([sys.executable, "app.py"], cwd=space, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if process.poll() is not None or time.time() > deadline:
                    log.seek(0)
                    pytest.fail(f"the Space did not start:\n{log.read()[-3000:]}")
                time.sleep(1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.mark.slow
def test_browser_moves_the_snr_slider_submits_and_reads_answer_and_report(running_space):
    with browser_page(running_space) as page:
        page.wait_for_function("() => document.querySelector('#question input')?.value.length > 0", timeout=60000)

        page.locator("#snr input[type=range]").fill("25")
        assert page.locator("#snr input[type=number]").input_value() == "25"
        page.locator("#submit").click()
        page.wait_for_function("() => document.querySelector('#answer textarea')?.value.length > 0", timeout=120000)
        answer = page.locator("#answer textarea").input_value()
        score = float(page.locator("#score textarea").input_value())
        report = page.locator("#report").inner_text()
        assert answer.strip() and 0.0 < score <= 1.0
        assert "visual" in report and "audio" in report and "by hand" in report
        assert report.count("25.00") == 3  # every link at the slider's SNR
        page.screenshot(path=str(ARTIFACTS / "space-by-hand.png"), full_page=True)

        page.locator("#mode").get_by_text("auto", exact=True).click()
        page.locator("#submit").click()
        page.wait_for_function("() => document.querySelector('#report')?.innerText.includes('proposed')", timeout=120000)
        report = page.locator("#report").inner_text()
        assert "latency (slowest link)" in report and "25.00" not in report  # the link budget sets the SNRs now
        page.wait_for_timeout(1000)  # let the plot and answer finish rendering before the screenshot
        page.screenshot(path=str(ARTIFACTS / "space-auto.png"), full_page=True)

        page.locator("#question input").fill("why " * 60)  # a typed (custom) question over the 200-character limit
        page.locator("#question input").press("Enter")
        page.locator("#submit").click()
        page.get_by_text("Type a question").first.wait_for(timeout=60000)  # a friendly error, not a traceback
    assert (ARTIFACTS / "space-by-hand.png").stat().st_size > 10_000


@pytest.mark.slow
def test_browser_drives_the_taichi_tab(running_space, space):
    index = json.loads((space / "taichi" / "samples" / "index.json").read_text())
    assert len(index["images"]) == 3 and index["sentences"]
    with browser_page(running_space) as page:
        page.get_by_role("tab", name="TaiChi").click()
        page.wait_for_function("() => document.querySelector('#taichi_text input')?.value.length > 0", timeout=60000)
        page.locator("#taichi_snr input[type=range]").fill("-5")
        page.locator("#taichi_visual_tokens input[type=number]").fill("4")
        page.locator("#taichi_visual_tokens input[type=number]").press("Enter")
        page.locator("#taichi_channel").get_by_text("Rayleigh", exact=True).click()
        page.locator("#taichi_submit").click()
        page.wait_for_function("() => document.querySelector('#taichi_report')?.innerText.includes('channel uses')",
                               timeout=120000)  # fmt: skip
        report = page.locator("#taichi_report").inner_text()
        assert "-5.00" in report and "visual" in report
        visual_row = next(line for line in report.splitlines() if line.strip().startswith("visual"))
        assert "4" in visual_row.split()[1:2]
        score = float(page.locator("#taichi_score textarea").input_value())
        assert 0.0 <= score <= 1.0
        page.screenshot(path=str(ARTIFACTS / "space-taichi-vqa.png"), full_page=True)

        page.locator("#taichi_task").get_by_text("Classify a sentence", exact=False).click()
        page.locator("#taichi_text input").fill(index["sentences"][0]["text"])
        page.locator("#taichi_text input").press("Enter")
        page.locator("#taichi_submit").click()
        page.wait_for_function(
            "() => /visual\\s+0\\s/.test(document.querySelector('#taichi_report')?.innerText || '')", timeout=120000
        )  # a sentence sends no visual tokens

        page.locator("#taichi_task").get_by_text("Answer a question", exact=False).click()
        page.locator("#taichi_text input").fill("why " * 60)
        page.locator("#taichi_text input").press("Enter")
        page.locator("#taichi_submit").click()
        page.get_by_text("Type a question").first.wait_for(timeout=60000)  # a friendly error, not a traceback


@pytest.mark.slow
def test_browser_drives_the_unitocom_tab(running_space):
    def report_of(page, elem_id: str) -> str:  # the task's transmission report, once its answer arrived
        page.wait_for_function(f"() => document.querySelector('#{elem_id}')?.innerText.includes('channel uses')",
                               timeout=120000)  # fmt: skip
        return page.locator(f"#{elem_id}").inner_text()

    with browser_page(running_space, height=2600) as page:
        page.get_by_role("tab", name="UniToCom").click()
        page.wait_for_function("() => document.querySelector('#unitocom_question input')?.value.length > 0",
                               timeout=60000)  # fmt: skip
        assert page.locator("#unitocom_reference textarea").input_value()  # the speech sample's text
        page.locator("#unitocom_snr input[type=range]").fill("-5")
        assert page.locator("#unitocom_snr input[type=number]").input_value() == "-5"
        page.locator("#unitocom_channel").get_by_text("Rayleigh", exact=True).click()

        page.locator("#unitocom_draw").click()  # prompt -> image: only the ideal text link is used
        report = report_of(page, "unitocom_draw_report")
        assert "text" in report and "ideal" in report and "channel uses: 0" in report
        page.locator("#unitocom_generated img").first.wait_for(timeout=60000)

        page.locator("#unitocom_transcribe").click()  # speech sample -> transcript over the audio link
        report = report_of(page, "unitocom_asr_report")
        audio_row = next(line for line in report.splitlines() if line.strip().startswith("audio"))
        assert "-5.00" in audio_row and "channel uses: 0" not in report
        assert page.locator("#unitocom_transcript textarea").count() == 1  # untrained: the text itself is noise
        assert 0.0 <= float(page.locator("#unitocom_asr_score textarea").input_value()) <= 1.0

        page.locator("#unitocom_ask").click()  # sample image + question -> answer over the image and text links
        report = report_of(page, "unitocom_vqa_report")
        image_row = next(line for line in report.splitlines() if line.strip().startswith("image"))
        assert "-5.00" in image_row and "ideal" in report
        assert 0.0 <= float(page.locator("#unitocom_vqa_score textarea").input_value()) <= 1.0
        page.wait_for_timeout(1000)  # let the plots finish rendering before the screenshot
        page.screenshot(path=str(ARTIFACTS / "space-unitocom.png"), full_page=True)

        page.locator("#unitocom_prompt input").fill("why " * 60)  # a typed prompt over the 200-character limit
        page.locator("#unitocom_prompt input").press("Enter")
        page.locator("#unitocom_draw").click()
        page.get_by_text("Type a prompt").first.wait_for(timeout=60000)  # a friendly error, not a traceback


def test_unitocom_tab_refuses_bad_inputs_with_friendly_messages(unitocom_model, tmp_path):
    import gradio as gr
    from PIL import Image

    from tokcom.defaults import default_model_path
    from tokcom.space import write_unitocom_samples
    from tokcom.spaces import app

    shutil.copytree(unitocom_model, tmp_path / "unitocom" / "model")
    vqa_rows = [{"channel_type": "awgn", "snr_db": 0, "accuracy": 0.4}, {"channel_type": "awgn", "snr_db": 20, "accuracy": 0.8}]
    asr_rows = [{"snr_db": 0, "wer": 1.3}, {"snr_db": 20, "wer": 0.2}]  # on the report's channel
    evaluation = {"tasks": {"vqa": {"results": vqa_rows}, "asr": {"channel_type": "awgn", "results": asr_rows}}}
    (tmp_path / "unitocom" / "model" / "evaluation.json").write_text(json.dumps(evaluation))  # no text_to_image results
    index = write_unitocom_samples(tmp_path / "unitocom" / "samples", num_scenes=1, num_utterances=1)
    demo = app.build_demo(str(default_model_path()), tmp_path / "none", tmp_path / "none", tmp_path / "unitocom")
    fns = {fn.api_name: fn.fn for fn in demo.fns.values()}
    draw, transcribe, vqa = fns["unitocom_draw"], fns["unitocom_transcribe"], fns["unitocom_vqa"]
    image_id, question = index["images"][0]["id"], index["images"][0]["questions"][0]["question"]
    settings = ("AWGN", 10.0, 0)

    bad = [
        (draw, ("why " * 60, *settings), "Type a prompt of 1 to 200"),
        (draw, ("a red cube", "Optical", 10.0, 0), "Channel must be one of"),
        (draw, ("a red cube", "AWGN", 99.0, 0), "SNR \\[dB\\] must be between -10 and 30"),
        (vqa, (image_id, None, "  ", *settings), "Type a question"),
        (vqa, ("no-such-image", None, question, *settings), "Pick a sample image or upload one"),
        (transcribe, (None, *settings), "Pick a speech sample or upload a .wav"),
        (transcribe, (str(tmp_path / "unitocom" / "samples" / f"{image_id}.png"), *settings), "Audio must be a .wav"),
    ]
    wavfile.write(tmp_path / "long.wav", 48000, np.zeros((48000 * 5, 2), np.int16))  # 5 s, 48 kHz stereo
    bad.append((transcribe, (str(tmp_path / "long.wav"), *settings), "Speech must be at most 3.8 s .*got 5.0 s"))
    (tmp_path / "big.png").write_bytes(b"\0" * (5 * 2**20 + 1))
    bad.append((vqa, (image_id, str(tmp_path / "big.png"), question, *settings), "at most 5 MB"))
    (tmp_path / "notes.png").write_text("not an image")
    bad.append((vqa, (image_id, str(tmp_path / "notes.png"), question, *settings), "image"))
    for fn, args, message in bad:
        with pytest.raises(gr.Error, match=message) as caught:
            fn(*args)
        assert str(tmp_path) not in str(caught.value) and "Traceback" not in str(caught.value)

    # good inputs: a 48 kHz stereo upload is resampled to the model's rate; each report names the task's links
    wave = (0.3 * np.sin(2 * np.pi * 300 * np.arange(48000) / 48000) * 32767).astype(np.int16)
    wavfile.write(tmp_path / "upload.wav", 48000, np.stack([wave, wave], axis=1))
    text, score, report, plot = transcribe(str(tmp_path / "upload.wav"), "Rayleigh", 3.0, 0)
    assert isinstance(text, str) and 0.0 <= float(score) <= 1.0 and "| audio |" in report and "3.00" in report
    assert not plot.axes[0].lines  # results on AWGN only: none for Rayleigh
    image, report, plot = draw("a red cube", *settings)
    assert isinstance(image, Image.Image) and "| text |" in report and "channel uses: 0" in report
    assert "no evaluation results" in plot.axes[0].texts[0].get_text()
    answer, score, report, plot = vqa(image_id, None, question, *settings)
    assert isinstance(answer, str) and "| image |" in report and "| text |" in report
    assert plot.axes[0].get_ylabel() == "accuracy" and len(plot.axes[0].lines[0].get_xdata()) == 2
    assert transcribe(str(tmp_path / "upload.wav"), *settings)[3].axes[0].get_ylim()[1] >= 1.3  # a WER above 1 shows


def test_uploaded_files_are_checked_with_friendly_messages(tmp_path):
    import gradio as gr
    from PIL import Image

    from tokcom.spaces import app

    for index in range(3):
        Image.fromarray(np.full((20, 24, 3), index * 50, np.uint8)).save(tmp_path / f"f{2 - index}.png")
    frames = app.read_frames([str(tmp_path / f"f{i}.png") for i in range(3)])
    assert frames.shape == (3, 20, 24, 3) and frames[0, 0, 0, 0] == 100  # sorted by file name: f0 was saved last
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(gr.Error, match="images"):
        app.read_frames([str(tmp_path / "notes.txt")])
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(gr.Error, match="same size"):
        app.read_frames([str(tmp_path / "f0.png"), str(tmp_path / "small.png")])
    with pytest.raises(gr.Error, match="at most"):
        app.read_frames([str(tmp_path / "f0.png")] * (app.MAX_FRAMES + 1))

    wavfile.write(tmp_path / "stereo.wav", 8000, np.full((800, 2), 16384, np.int16))
    waveform, rate = app.read_audio(str(tmp_path / "stereo.wav"))
    assert rate == 8000 and waveform.shape == (800,) and waveform.dtype == np.float32 and abs(waveform[0] - 0.5) < 1e-3
    with pytest.raises(gr.Error, match=".wav"):
        app.read_audio(str(tmp_path / "f0.png"))
    (tmp_path / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(gr.Error, match="readable"):
        app.read_audio(str(tmp_path / "broken.wav"))
    wavfile.write(tmp_path / "long.wav", 1000, np.zeros(31_000, np.int16))
    with pytest.raises(gr.Error, match="30 s"):
        app.read_audio(str(tmp_path / "long.wav"))


def test_uploaded_44k_and_48k_stereo_wavs_are_resampled_and_answer_like_the_16k_sample(tmp_path):
    from scipy.signal import resample_poly

    from tokcom.defaults import default_model_path
    from tokcom.space import write_samples
    from tokcom.spaces import app

    rows = write_samples(tmp_path, num_scenes=1)
    demo = app.build_demo(str(default_model_path()), tmp_path)
    answer = next(fn for fn in demo.fns.values() if fn.api_name == "answer").fn
    scene = tmp_path / rows[0]["id"]
    settings = ("AWGN", 30.0, "by hand", 32, 16, 3.0, 23.0, 0.3, 0.4, 0)
    question = rows[0]["questions"][0]["question"]
    reference = answer(rows[0]["id"], None, str(scene / "audio.wav"), question, *settings)
    rate, pcm = wavfile.read(scene / "audio.wav")
    assert rate == 16000
    for upload_rate in (44100, 48000):
        wave = resample_poly(pcm / 32768.0, upload_rate // 100, rate // 100)
        stereo = np.clip(np.round(np.stack([wave, wave], axis=1) * 32768), -32768, 32767).astype(np.int16)
        wavfile.write(tmp_path / "upload.wav", upload_rate, stereo)
        out = answer(rows[0]["id"], None, str(tmp_path / "upload.wav"), question, *settings)
        assert out[0] == reference[0] and abs(float(out[1]) - float(reference[1])) < 0.02
