"""Issue 17 for UniToCom: what a hostile user sends to `token-comm-asr`, `token-comm-text-to-image`,
`token-comm-vqa` (UniToCom), `UniToComProcessor` and `UniToComModel`'s generation ends in one `ValueError` naming the
argument and its range, bounded before the expensive work, instead of a torch error, an unbounded loop or a result
computed from something else than what was meant."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch
from transformers import pipeline

import tokcom  # noqa: F401  (registers the tasks)
from tokcom.modeling import UniToComConfig, UniToComModel, media_io
from tokcom.modeling.processing_unitocom import UniToComProcessor
from tokcom.training.tokenization import build_word_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

RATE = 16000
WORDS = ["is there a red cube ?", "a small blue sphere", "yes no two"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("unitocom")
    torch.manual_seed(0)
    config = UniToComConfig.tiny(image_tokenizer_config={"num_tokens": 4}, audio_tokenizer_config={"num_tokens": 2},
                                 max_new_tokens=3)  # fmt: skip
    UniToComModel(config).save_pretrained(folder)
    UniToComProcessor.from_model_config(config, build_word_tokenizer(WORDS), num_audio_windows=2).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def pipes(saved):
    return {task: pipeline(task, model=str(saved))
            for task in ("token-comm-vqa", "token-comm-asr", "token-comm-text-to-image")}  # fmt: skip


def _image():
    return np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)


def _wav24(path, rate: int, frames: int, channels: int = 1) -> None:
    """A 24-bit PCM WAV of silence (scipy cannot memory-map 24-bit, so it reads such files whole)."""
    data = bytes(3 * channels * frames)
    with open(path, "wb") as file:
        file.write(b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE")
        file.write(b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * 3 * channels, 3 * channels, 24))
        file.write(b"data" + struct.pack("<I", len(data)) + data)


def test_audio_shorter_than_the_stft_window_is_refused_with_its_range(pipes):
    """2 to 256 samples passed the old '2 to max' bound and crashed in torch's reflect padding (RuntimeError)."""
    asr = pipes["token-comm-asr"]
    for samples in (2, 100, 256):
        with pytest.raises(ValueError, match=r"`audio` has .* samples .*257 to 30,560"):
            asr({"array": np.zeros(samples, np.float32), "sampling_rate": RATE})
    assert set(asr({"array": np.zeros(257, np.float32), "sampling_rate": RATE}, seed=0)) == {"text", "score",
                                                                                             "transmission"}  # fmt: skip


def test_a_channels_first_array_is_refused_not_read_as_thousands_of_channels(pipes):
    """(2, 8000) was read as 2 samples of 8000 channels (RuntimeError in the front end); the channel bound names the
    transposition. A (samples, channels) stereo int16 array is still mixed down and transcribed."""
    asr = pipes["token-comm-asr"]
    with pytest.raises(ValueError, match=r"`audio` has 8,000 channels.*1 to 32.*transpose"):
        asr({"array": np.zeros((2, 8000), np.float32), "sampling_rate": RATE})
    with pytest.raises(ValueError, match=r"`audio` has 8,000 channels"):
        media_io.load_audio(np.zeros((2, 8000), np.int16), RATE)
    assert "text" in asr({"array": np.zeros((8000, 2), np.int16), "sampling_rate": RATE}, seed=0)


def test_a_24_bit_wav_is_bounded_from_its_header_before_it_is_read_whole(tmp_path, monkeypatch):
    """A 24-bit WAV cannot be memory-mapped, so scipy reads it whole: an hour of it took 385 MB and 2.2 s before the
    length was refused. Its header's length is now checked first (the bound lowered here to keep the file small)."""
    path = tmp_path / "long24.wav"
    _wav24(path, RATE, RATE)  # 1 s
    monkeypatch.setattr(media_io, "MAX_WHOLE_READ_SAMPLES", RATE // 2, raising=False)
    calls, read = [], media_io.wavfile.read

    def spy(path, mmap=False):  # scipy's reader, recording whether each call was memory-mapped
        calls.append(mmap)
        return read(path, mmap=mmap)

    monkeypatch.setattr(media_io.wavfile, "read", spy)
    with pytest.raises(ValueError, match=r"`audio` file .*24-bit WAV of 1.0 s .*at most 8,000 samples"):
        media_io.read_wav(path, sampling_rate=RATE, max_duration_s=0.5)
    assert calls == [True], "the whole file was read before the bound"


def test_a_wav_header_with_too_many_channels_is_refused_before_reading(tmp_path):
    path = tmp_path / "many.wav"
    _wav24(path, RATE, 10, channels=40)
    with pytest.raises(ValueError, match=r"`audio` file .* 40 channels; 1 to 32"):
        media_io.read_wav(path)


def test_the_processor_refuses_empty_lists_and_non_text_captions(pipes):
    processor = pipes["token-comm-vqa"].processor
    cases = [
        (dict(task="vqa", images=[], text=[]), r"`images` is an empty list"),
        (dict(task="asr", audio=[], sampling_rate=RATE), r"`audio` is an empty list"),
        (dict(task="text_to_image", text=[]), r"`caption` must be a string or a non-empty list"),
        (dict(task="text_to_image", text={"a red cube": 1}), r"`caption` must be a string or a non-empty list"),
        (dict(task="vqa", images=[_image()], text={"q": 1}), r"`text` must be a string or a non-empty list"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            processor(**kwargs)


def test_max_new_tokens_is_bounded_by_the_context(pipes):
    """Unbounded, `max_new_tokens=10**6` on a model that never emits eos decoded for minutes, its cache growing past
    4 GB; the pipeline now refuses more than the language model's positions, and the model what does not fit after
    its prompt."""
    vqa, asr = pipes["token-comm-vqa"], pipes["token-comm-asr"]
    positions = vqa.model.config.text_config.max_position_embeddings
    good = {"image": _image(), "question": "is there a red cube ?"}
    with pytest.raises(ValueError, match=rf"`max_new_tokens` must be an integer in \[1, {positions}\]"):
        vqa(good, max_new_tokens=positions + 1)
    with pytest.raises(ValueError, match=r"`max_new_tokens` must be in \[1, \d+\] for this \d+-token prompt"):
        asr({"array": np.zeros(RATE, np.float32), "sampling_rate": RATE}, max_new_tokens=positions)
    with pytest.raises(ValueError, match=r"`max_new_tokens` must be in \[1, 255\] for this 2-token prompt"):
        vqa.model.generate_text(torch.tensor([[3, 4]]), max_new_tokens=positions)
    assert vqa.model.generate_text(torch.tensor([[3, 4]]), max_new_tokens=2).shape[0] == 1


def test_image_generation_refuses_prompts_and_token_counts_beyond_the_context(pipes):
    """A 100,000-id prompt ran 113 s (1.3 GB) beyond the model's 256 positions and returned an image."""
    model = pipes["token-comm-text-to-image"].model
    positions = model.config.text_config.max_position_embeddings
    with pytest.raises(ValueError, match=rf"`input_ids` holds {positions + 1} tokens.*at most {positions}"):
        model.generate_image(torch.full((1, positions + 1), 3), num_inference_steps=1)
    with pytest.raises(ValueError, match=r"`num_tokens` must be in \[1, 255\]"):
        model.generate_tokens(torch.tensor([[3, 4]]), num_tokens=positions, num_inference_steps=1)
    with pytest.raises(ValueError, match=r"`num_inference_steps` must be an integer in \[1, 1000\], got 0"):
        model.generate_image(torch.tensor([[3, 4]]), num_inference_steps=0)
    # a numpy integer is an integer (the pipeline already accepted it)
    assert model.generate_image(torch.tensor([[3, 4]]), num_inference_steps=np.int64(1)).shape == (1, 3, 32, 32)


def test_receive_refuses_token_budgets_outside_the_tokenizer(pipes):
    """`num_tokens=-1` zeroed only the last token and 0 all of them, silently."""
    model = pipes["token-comm-vqa"].model
    for bad in (-1, 0, 5, 2.0):
        with pytest.raises(ValueError, match=r"`num_tokens` must be an integer in \[1, 4\]"):
            model.receive("image", torch.zeros(1, 3, 32, 32), num_tokens=bad)


def test_network_on_a_task_without_media_links_says_so(pipes):
    """Text-to-image has only the ideal text link: `network` named 'device dicts named ()'."""
    draw = pipes["token-comm-text-to-image"]
    with pytest.raises(ValueError, match=r"`network` .* none to allocate: use `snr_db`"):
        draw("a red cube", network={"bandwidth_hz": 1e6, "power_dbm": 20, "weight": 0.5, "devices": []})


def test_an_image_over_pillows_bomb_limit_is_a_value_error(pipes, tmp_path):
    """A 24 KB bilevel PNG of 14000x14000 pixels made Pillow raise DecompressionBombError (not a ValueError) in
    `Image.open`, before the pixel bound was checked; every family reads images through `media_io.load_image`."""
    from PIL import Image

    path = tmp_path / "bomb.png"
    Image.new("1", (14000, 14000)).save(path)
    with pytest.raises(ValueError, match=r"`image` file .*bomb.png is too large .*at most 16,777,216 pixels"):
        pipes["token-comm-vqa"]({"image": str(path), "question": "is there a red cube ?"})
    with pytest.raises(ValueError, match=r"`video` file .*too large"):
        media_io.read_frame_files([path])
