"""The Gradio Space, driven in a real browser (Debian chromium + Playwright), plus its sample files."""

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
def space(tmp_path_factory):
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
    return build_space(tmp_path_factory.mktemp("space") / "tokcom-space", num_scenes=3, taichi_model=str(taichi))


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


def test_space_command_refuses_to_overwrite_without_the_flag(space, capsys):
    assert main(["space", "--build-dir", str(space), "--no-launch"]) == 0  # already built: kept as is
    with pytest.raises(FileExistsError):
        build_space(space)


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
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (.ci/run does) to run the browser test.")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(running_space, wait_until="networkidle")
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
        finally:
            browser.close()
    assert (ARTIFACTS / "space-by-hand.png").stat().st_size > 10_000


@pytest.mark.slow
def test_browser_drives_the_taichi_tab(running_space, space):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (.ci/run does) to run the browser test.")
    from playwright.sync_api import sync_playwright

    index = json.loads((space / "taichi" / "samples" / "index.json").read_text())
    assert len(index["images"]) == 3 and index["sentences"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(running_space, wait_until="networkidle")
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
        finally:
            browser.close()


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
