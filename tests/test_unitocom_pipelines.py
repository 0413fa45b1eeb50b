"""UniToCom's pipelines (issue 16): token-comm-vqa (image + question), token-comm-text-to-image and token-comm-asr
over a tiny untrained UniToComModel saved with its processor and loaded through `transformers.pipeline`: output
types and shapes, batching, seeds, the transmission report, the SNR reaching the link, and bad inputs."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import wavfile
from transformers import pipeline

import tokcom  # noqa: F401  (registers the tasks)
import tokcom.modeling.processing_unitocom as processing_unitocom
import tokcom.pipelines.token_comm_unitocom as token_comm_unitocom
from tokcom.modeling import UniToComConfig, UniToComModel
from tokcom.modeling.processing_unitocom import UniToComProcessor
from tokcom.pipelines.token_comm_unitocom import (
    TokenCommASRPipeline,
    TokenCommTextToImagePipeline,
    UniToComVQAPipeline,
)
from tokcom.training.tokenization import build_word_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

NUM_IMAGE_TOKENS, NUM_AUDIO_TOKENS, WINDOWS = 4, 2, 2
WORDS = ["is there a red cube ?", "how many spheres are there", "a small blue sphere", "yes no two"]
RATE = 16000


def tiny_config() -> UniToComConfig:
    return UniToComConfig.tiny(image_tokenizer_config={"num_tokens": NUM_IMAGE_TOKENS},
                               audio_tokenizer_config={"num_tokens": NUM_AUDIO_TOKENS}, max_new_tokens=3)  # fmt: skip


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("unitocom")
    torch.manual_seed(0)
    config = tiny_config()
    UniToComModel(config).save_pretrained(folder)
    UniToComProcessor.from_model_config(config, build_word_tokenizer(WORDS), num_audio_windows=WINDOWS).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def vqa(saved):
    return pipeline("token-comm-vqa", model=str(saved))


def _image(seed, size=48):
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def _speech(seed, seconds=0.5):
    t = np.arange(int(seconds * RATE)) / RATE
    return {"array": (0.3 * np.sin(2 * np.pi * (200 + 100 * seed) * t)).astype(np.float32), "sampling_rate": RATE}


def _spy(monkeypatch, model, method: str, key: str) -> list:
    """Record the `key` argument of every `model.<method>` call (what the base station's MLLM reads)."""
    seen, original = [], getattr(model, method)

    def record(*args, **kwargs):
        seen.append(kwargs[key].clone())
        return original(*args, **kwargs)

    monkeypatch.setattr(model, method, record)
    return seen


def test_docstrings_run():
    assert doctest.testmod(processing_unitocom).failed == 0
    assert doctest.testmod(token_comm_unitocom).failed == 0


def test_processor_round_trips_and_refuses_another_models_settings(saved, tmp_path):
    processor = UniToComProcessor.from_pretrained(saved)
    assert processor.to_dict() == UniToComProcessor.from_model_config(
        tiny_config(), build_word_tokenizer(WORDS), num_audio_windows=WINDOWS).to_dict()  # fmt: skip
    processor.save_pretrained(tmp_path)
    again = UniToComProcessor.from_pretrained(tmp_path)
    assert again.to_dict() == processor.to_dict() and len(again.tokenizer) == len(processor.tokenizer)
    other = UniToComConfig.tiny(image_tokenizer_config={"num_tokens": 8})
    with pytest.raises(ValueError, match="num_image_tokens"):
        processor.check_model_config(other)
    with pytest.raises(ValueError, match="image_token_id"):
        UniToComProcessor(build_word_tokenizer(WORDS), image_token_id=3)
    with pytest.raises(ValueError, match="`images` \\(2\\) and `text` \\(1\\)"):
        processor(task="vqa", images=[_image(0), _image(1)], text=["is there a red cube?"])
    with pytest.raises(ValueError, match="`audio` is not used"):
        processor(task="text_to_image", text="a red cube", audio=np.zeros(100, np.float32))
    with pytest.raises(ValueError, match="No UniToComProcessor"):
        pipeline("token-comm-vqa", model=UniToComModel.from_pretrained(saved), processor=str(tmp_path / "missing"))


def test_a_training_checkpoint_without_processor_config_gets_the_models_settings(saved, tmp_path):
    model = UniToComModel.from_pretrained(saved)
    model.save_pretrained(tmp_path)  # what `stages_unitocom` saves: the model and its word tokenizer
    UniToComProcessor.from_pretrained(saved).tokenizer.save_pretrained(tmp_path)
    asr = pipeline("token-comm-asr", model=str(tmp_path))
    assert asr.processor.num_audio_tokens == NUM_AUDIO_TOKENS and asr.processor.num_audio_windows == 4
    out = asr(_speech(0), seed=0)
    assert out["transmission"]["audio"]["tokens"] == 4 * NUM_AUDIO_TOKENS


def test_vqa_answers_a_batch_with_its_report_reproducibly(vqa, tmp_path):
    assert isinstance(vqa, UniToComVQAPipeline)
    questions = ["is there a red cube?", "how many spheres are there?", "is there a sphere?"]
    inputs = [{"image": _image(k), "question": q} for k, q in enumerate(questions)]
    batched = vqa(inputs, snr_db=5.0, channel_type="rayleigh", seed=3, batch_size=3, num_symbols_per_token=4)
    again = vqa(inputs, snr_db=5.0, channel_type="rayleigh", seed=3, batch_size=3, num_symbols_per_token=4)
    assert len(batched) == 3 and batched == again  # the same seed and batches: the same answers and scores
    for out, question in zip(batched, questions):
        assert set(out) == {"answer", "score", "transmission"}
        assert isinstance(out["answer"], str) and 0.0 <= out["score"] <= 1.0
        report = out["transmission"]
        words = len(vqa.processor.tokenizer(question, add_special_tokens=False)["input_ids"])
        assert report["text"]["tokens"] == words and report["image"]["tokens"] == NUM_IMAGE_TOKENS
        assert report["image"]["snr_db"] == 5.0 and report["method"] is None
        assert report["channel_uses"] == NUM_IMAGE_TOKENS * 4  # the image link's tokens x channel uses per token
    budget = vqa(inputs[0], snr_db=5.0, num_image_tokens=2, num_symbols_per_token=2)["transmission"]
    assert budget["image"]["tokens"] == 2 and budget["channel_uses"] == 4
    # batching gives the one-by-one answers on a noiseless link
    one = [vqa(x, channel_type="none") for x in inputs]
    assert [o["answer"] for o in one] == [b["answer"] for b in vqa(inputs, channel_type="none", batch_size=3)]
    # a saved pipeline (model, processor, custom_pipelines) loads and answers the same
    vqa.save_pretrained(tmp_path)
    reloaded = pipeline("token-comm-vqa", model=str(tmp_path))
    assert [reloaded(x, channel_type="none") for x in inputs] == one


def test_vqa_snr_and_token_budget_reach_the_received_tokens(vqa, monkeypatch):
    seen = _spy(monkeypatch, vqa.model, "generate_text", "image_tokens")
    good = {"image": _image(0), "question": "is there a red cube?"}
    for snr_db, seed in ((60.0, 0), (60.0, 1), (-20.0, 0), (-20.0, 1)):
        vqa(good, snr_db=snr_db, channel_type="awgn", seed=seed)
    high_a, high_b, low_a, low_b = (tokens[0] for tokens in seen)
    noise_high, noise_low = (high_a - high_b).norm(), (low_a - low_b).norm()
    assert noise_low > 100 * noise_high  # at 60 dB the noise draws hardly matter, at -20 dB they dominate
    assert (low_a - high_a).norm() > 10 * noise_high  # very low vs very high SNR: other received tokens
    vqa(good, snr_db=60.0, num_image_tokens=1, seed=0)
    assert torch.all(seen[-1][0, 1:] == 0) and torch.any(seen[-1][0, 0] != 0)  # not sent: the prior mean 0


def test_text_to_image_returns_pil_images_seeded(saved):
    draw = pipeline("token-comm-text-to-image", model=str(saved))
    assert isinstance(draw, TokenCommTextToImagePipeline)
    captions = ["a small blue sphere", "a red cube"]
    outs = draw(captions, seed=0, num_inference_steps=2, batch_size=2)
    size = tiny_config().image_tokenizer_config.image_size
    for out, caption in zip(outs, captions):
        assert set(out) == {"image", "transmission"}
        assert isinstance(out["image"], Image.Image) and out["image"].size == (size, size) and out["image"].mode == "RGB"
        words = len(draw.processor.tokenizer(caption, add_special_tokens=False)["input_ids"])
        assert out["transmission"]["text"]["tokens"] == words and out["transmission"]["channel_uses"] == 0
    pixels = [np.asarray(o["image"]) for o in outs]
    assert np.array_equal(pixels[0], np.asarray(draw(captions, seed=0, num_inference_steps=2, batch_size=2)[0]["image"]))
    other_seed = np.asarray(draw(captions[0], seed=1, num_inference_steps=2)["image"])
    alone = np.asarray(draw(captions[0], seed=0, num_inference_steps=2)["image"])
    assert not np.array_equal(alone, other_seed)
    # the caption crosses the ideal text link: the SNR does not change the generated image
    assert np.array_equal(alone, np.asarray(draw(captions[0], seed=0, num_inference_steps=2, snr_db=-30.0)["image"]))


def test_asr_transcribes_a_batch_and_the_snr_reaches_the_audio_tokens(saved, monkeypatch, tmp_path):
    asr = pipeline("token-comm-asr", model=str(saved))
    assert isinstance(asr, TokenCommASRPipeline)
    inputs = [_speech(0), {"audio": _speech(1)["array"], "sampling_rate": RATE}, _speech(2, seconds=0.1)]
    outs = asr(inputs, snr_db=10.0, seed=0, batch_size=3)
    assert outs == asr(inputs, snr_db=10.0, seed=0, batch_size=3)
    for out in outs:
        assert set(out) == {"text", "score", "transmission"} and isinstance(out["text"], str)
        report = out["transmission"]
        assert report["audio"]["tokens"] == WINDOWS * NUM_AUDIO_TOKENS and "text" not in report
        assert report["channel_uses"] == WINDOWS * NUM_AUDIO_TOKENS * 8
    assert asr(inputs[0], num_audio_tokens=1)["transmission"]["audio"]["tokens"] == WINDOWS
    wav = tmp_path / "speech.wav"  # a file at another rate is resampled to the front end's
    wavfile.write(wav, 8000, (_speech(0)["array"][::2] * 32767).astype(np.int16))
    assert set(asr(str(wav), seed=0)) == {"text", "score", "transmission"}
    seen = _spy(monkeypatch, asr.model, "generate_text", "audio_tokens")
    for snr_db, seed in ((60.0, 0), (60.0, 1), (-20.0, 0), (-20.0, 1)):
        asr(inputs[0], snr_db=snr_db, seed=seed)
    high_a, high_b, low_a, low_b = (tokens[0] for tokens in seen)
    assert high_a.shape == (WINDOWS * NUM_AUDIO_TOKENS, 8)
    assert (low_a - low_b).norm() > 100 * (high_a - high_b).norm() and (low_a - high_a).norm() > 0


def test_bad_inputs_raise_value_errors_naming_the_argument(saved, vqa, tmp_path):
    draw = pipeline("token-comm-text-to-image", model=str(saved))
    asr = pipeline("token-comm-asr", model=str(saved))
    good = {"image": _image(0), "question": "is there a red cube?"}
    limit = asr.processor.max_audio_samples
    long_wav = tmp_path / "long.wav"
    wavfile.write(long_wav, RATE, np.zeros(limit + RATE, np.int16))
    cases = [
        (vqa, {"image": _image(0)}, {}, "question"),
        (vqa, {**good, "question": "   "}, {}, "question"),
        (vqa, {**good, "question": "cube " * 300}, {}, "question.*characters"),
        (vqa, {**good, "question": "a " * 260}, {}, "question.*tokens"),
        (vqa, {**good, "image": np.zeros((32, 32), np.uint8)}, {}, "image"),
        (vqa, {**good, "image": np.zeros((32, 32, 3), np.float32)}, {}, "image"),
        (vqa, {**good, "audio": 1}, {}, "Unknown input key"),
        (vqa, [], {}, "empty list"),
        (vqa, good, {"num_image_tokens": NUM_IMAGE_TOKENS + 1}, "num_image_tokens"),
        (vqa, good, {"num_symbols_per_token": 3}, "num_symbols_per_token"),
        (vqa, good, {"snr_db": float("nan")}, "snr_db"),
        (vqa, good, {"channel_type": "fiber"}, "channel_type"),
        (vqa, good, {"num_inference_steps": 2}, "Unknown argument"),
        (vqa, good, {"network": {"bandwidth_hz": 1e6, "power_dbm": 20, "weight": 0.5,
                                 "devices": [{"name": "image", "distance_km": 0.3}]}}, "performance_model"),
        (draw, "", {}, "text"),
        (draw, {"text": "a red cube", "image": _image(0)}, {}, "Unknown input key"),
        (draw, "a red cube", {"num_inference_steps": 0}, "num_inference_steps"),
        (draw, "a red cube", {"max_new_tokens": 4}, "max_new_tokens"),
        (asr, {"array": np.zeros(RATE, np.float32), "sampling_rate": 8000}, {}, "sampling_rate"),
        (asr, {"array": np.zeros(limit + 1, np.float32), "sampling_rate": RATE}, {}, "audio.*samples"),
        (asr, {"array": np.zeros((2, 2, 2), np.float32), "sampling_rate": RATE}, {}, "audio.*shape"),
        (asr, np.zeros(RATE, np.float32), {}, "sampling_rate"),
        (asr, {"array": np.zeros(RATE, np.float32), "sampling_rate": RATE, "rate": 1}, {}, "Unknown key.*audio"),
        (asr, str(long_wav), {}, "audio.*samples"),
        (asr, {"path": str(long_wav), "sampling_rate": RATE}, {}, "sampling_rate"),
        (asr, {"array": np.full(RATE, np.nan, np.float32), "sampling_rate": RATE}, {}, "audio"),
    ]  # fmt: skip
    for pipe, inputs, kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            pipe(inputs, **kwargs)
            pytest.fail(f"no ValueError for {pipe.task_name} {kwargs} ({message})")
    with pytest.raises(ValueError, match="UniToComModel"):
        UniToComVQAPipeline(model=torch.nn.Linear(1, 1))
    with pytest.raises(ValueError, match="processor="):
        pipeline("token-comm-asr", model=UniToComModel(tiny_config()))


def test_a_task_without_an_embedded_default_asks_for_a_model():
    """Every task has an embedded default now (`unitocom-tiny` serves ASR and text-to-image); a task registered
    without one answers `pipeline(task)` with a ValueError asking for `model=` (transformers unpacks the default)."""
    from tokcom.registration import NoEmbeddedDefault

    with pytest.raises(ValueError, match="token-comm-x.*no embedded default.*model="):
        model, revision = NoEmbeddedDefault("token-comm-x")


@pytest.mark.slow
def test_the_embedded_default_serves_asr_and_text_to_image_without_model():
    """`pipeline("token-comm-asr")` and `pipeline("token-comm-text-to-image")` load the installed `unitocom-tiny`;
    a held-out espeak-ng utterance is transcribed close to its text, and a prompt gives a 32x32 image."""
    import jiwer
    import soundfile

    from tokcom.training.data.spoken import SAMPLING_RATE, SpeechCache, speakers

    asr = pipeline("token-comm-asr")
    assert asr.model.name_or_path.endswith("unitocom-tiny")
    texts = ["there is a small red rubber cube", "how many blue spheres are there"]
    voices = speakers(2, 77)
    waves = [soundfile.read(SpeechCache(None).flac(t, v), dtype="float32")[0] for t, v in zip(texts, voices)]
    outs = asr([{"array": w, "sampling_rate": SAMPLING_RATE} for w in waves], snr_db=20.0, seed=0)
    assert jiwer.wer(texts, [o["text"] for o in outs]) < 0.5, [o["text"] for o in outs]
    image = pipeline("token-comm-text-to-image")("a large red metal cube", seed=0)["image"]
    assert image.size == (32, 32)
