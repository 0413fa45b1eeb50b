"""The "token-comm-vqa" pipeline: loading, both link modes, the transmission report, file inputs, batching, errors.

The checkpoint is the tiny preset with random weights: answers are arbitrary, the tests check the mechanics (what
is sent, over which link, and that the pipeline answers exactly as a direct `model.answer` call would).
"""

import json
import math
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import wavfile
from scipy.signal import resample_poly
from transformers import pipeline

import tokcom
from tokcom import defaults
from tokcom.modeling import TokComConfig, TokComForAVQA
from tokcom.modeling.channel import dbm_to_w, received_snr_db, shannon_rate_bps
from tokcom.modeling.configuration_tokcom import TINY_TEXT_CONFIG
from tokcom.modeling.processing_tokcom import TokComProcessor
from tokcom.pipelines import TEXT_LINK_DEFAULTS, TokenCommVQAPipeline, allocate
from tokcom.training.data.synthetic_avqa import generate_scenes
from tokcom.training.synthetic_corpus import build_processor

PHI = {"visual": {"alpha": 4.0, "beta": 1.0, "gamma": 1.1}, "audio": {"alpha": 2.0, "beta": 1.0, "gamma": 1.3}}
QUESTIONS = ("how many instruments are sounding?", "is the drum playing?", "where is the piano?")
LINK_FIELDS = {"tokens", "bandwidth_hz", "power_w", "snr_db", "latency_s"}


def small_network(**overrides) -> dict:
    """An uplink tight enough (1 MHz, q of Qwen2.5-1.5B) that the allocator picks lengths below the maxima."""
    network = {
        "bandwidth_hz": 1e6,
        "power_dbm": 23.0,
        "weight": 0.6,
        "bits_per_token": 1536 * 16,
        "devices": [{"name": "visual", "distance_km": 0.35}, {"name": "audio", "distance_km": 0.45}],
    }
    network.update(overrides)
    return network


@pytest.fixture(scope="module")
def scenes():
    return generate_scenes(3, seed=7)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, scenes):
    path = tmp_path_factory.mktemp("tokcom-avqa-random")
    processor = build_processor(scenes.audio, scenes.sampling_rate)
    # the LLM's vocabulary is exactly the tokenizer's, so that every generated id decodes to a word
    text_config = {**TINY_TEXT_CONFIG, "vocab_size": len(processor.tokenizer)}
    config = TokComConfig.tiny(text_config=text_config, performance_model=PHI)
    assert config.text_config.vocab_size >= len(processor.tokenizer)
    torch.manual_seed(0)
    TokComForAVQA(config).save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def vqa(checkpoint):
    return pipeline("token-comm-vqa", model=str(checkpoint), device="cpu")


def clip(scenes, index=0, question=QUESTIONS[0]) -> dict:
    return {
        "video": scenes.video[index],
        "audio": {"array": scenes.audio[index], "sampling_rate": scenes.sampling_rate},
        "question": question,
    }


def direct_answer(vqa, item, snr_db, num_visual_tokens, num_audio_tokens, seed, channel_type=None):
    """What `model.answer` gives for one input, called by hand (the reference for the pipeline)."""
    batch = vqa.processor(
        text=[item["question"]], videos=[item["video"]], audio=[item["audio"]["array"]],
        sampling_rate=item["audio"]["sampling_rate"],
    )  # fmt: skip
    out = vqa.model.answer(
        **batch, snr_db=snr_db, num_visual_tokens=num_visual_tokens, num_audio_tokens=num_audio_tokens,
        generator=torch.Generator().manual_seed(seed), channel_type=channel_type,
    )  # fmt: skip
    return vqa.processor.batch_decode(out.sequences)[0], float(out.scores[0])


def question_tokens(vqa, question) -> int:
    return len(vqa.processor.tokenizer(question)["input_ids"])


# ---------------------------------------------------------------------------------------------- loading


def test_registered_task_builds_the_pipeline(vqa, checkpoint):
    assert isinstance(vqa, TokenCommVQAPipeline)
    assert isinstance(vqa.model, TokComForAVQA) and isinstance(vqa.processor, TokComProcessor)
    assert vqa.model.name_or_path == str(checkpoint)
    assert vqa.tokenizer is vqa.processor.tokenizer


def test_model_object_with_processor_or_tokenizer(vqa, checkpoint, scenes):
    model = TokComForAVQA.from_pretrained(checkpoint)
    with_processor = pipeline("token-comm-vqa", model=model, processor=vqa.processor, device="cpu")
    # a tokenizer alone: the rest of the processor comes from the model's folder
    with_tokenizer = pipeline("token-comm-vqa", model=model, tokenizer=vqa.processor.tokenizer, device="cpu")
    assert with_tokenizer.processor.tokenizer is vqa.processor.tokenizer
    reference = vqa(clip(scenes), snr_db=5.0, seed=1)
    assert with_processor(clip(scenes), snr_db=5.0, seed=1) == reference
    assert with_tokenizer(clip(scenes), snr_db=5.0, seed=1) == reference
    # a model built in memory has no folder to load a processor from
    with pytest.raises(ValueError, match="processor="):
        pipeline("token-comm-vqa", model=TokComForAVQA(TokComConfig.tiny()), device="cpu")


def test_default_model_when_installed():
    if not (defaults.CHECKPOINTS_DIR / defaults.DEFAULT_AVQA_MODEL / "config.json").is_file():
        pytest.skip(
            f"embedded default not installed: {defaults.CHECKPOINTS_DIR / defaults.DEFAULT_AVQA_MODEL}/config.json "
            "is missing (the trained checkpoint lands there)"
        )
    vqa = pipeline("token-comm-vqa", device="cpu")
    assert vqa.model.name_or_path == str(defaults.default_model_path())


def test_default_model_is_looked_up_at_pipeline_time(monkeypatch, tmp_path, checkpoint, scenes):
    # no checkpoint: default_model_path's FileNotFoundError, not a Hub lookup
    monkeypatch.setattr(defaults, "CHECKPOINTS_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="tokcom-avqa-tiny"):
        pipeline("token-comm-vqa", device="cpu")
    # installed after `import tokcom`: found
    shutil.copytree(checkpoint, tmp_path / defaults.DEFAULT_AVQA_MODEL)
    vqa = pipeline("token-comm-vqa", device="cpu")
    assert vqa.model.name_or_path == str(tmp_path / defaults.DEFAULT_AVQA_MODEL)
    assert vqa(clip(scenes), snr_db=10.0)["answer"] is not None


def test_save_pretrained_writes_custom_pipeline_and_processor(vqa, tmp_path, scenes):
    vqa.save_pretrained(tmp_path)
    custom = json.loads((tmp_path / "config.json").read_text())["custom_pipelines"]
    assert custom["token-comm-vqa"]["impl"] == "token_comm_vqa.TokenCommVQAPipeline"
    assert custom["token-comm-vqa"]["pt"] == ["AutoModel"] and "default" not in custom["token-comm-vqa"]
    assert (tmp_path / "processor_config.json").is_file()
    # a folder with `custom_pipelines` needs trust_remote_code or an explicit class, even for a registered task
    with pytest.raises(ValueError, match="trust_remote_code"):
        pipeline("token-comm-vqa", model=str(tmp_path), device="cpu")
    reloaded = pipeline("token-comm-vqa", model=str(tmp_path), device="cpu", pipeline_class=TokenCommVQAPipeline)
    assert reloaded(clip(scenes), snr_db=5.0, seed=0) == vqa(clip(scenes), snr_db=5.0, seed=0)


# ---------------------------------------------------------------------------------------------- snr mode


def test_snr_mode_report_and_model_call(vqa, scenes):
    item = clip(scenes)
    out = vqa(item, snr_db=3.0, num_visual_tokens=16, num_audio_tokens=8, seed=11)
    assert set(out) == {"answer", "score", "transmission"}
    assert isinstance(out["answer"], str) and isinstance(out["score"], float) and 0.0 <= out["score"] <= 1.0
    report = out["transmission"]
    assert set(report) == {"visual", "audio", "text", "latency_s", "channel_uses", "method"}
    n_text = question_tokens(vqa, item["question"])
    for link, tokens in (("visual", 16), ("audio", 8), ("text", n_text)):
        assert set(report[link]) == LINK_FIELDS
        assert report[link]["tokens"] == tokens and report[link]["snr_db"] == 3.0
        assert report[link]["bandwidth_hz"] is None and report[link]["power_w"] is None
        assert report[link]["latency_s"] is None
    assert report["latency_s"] is None and report["method"] is None
    assert report["channel_uses"] == (16 + 8 + n_text) * 128 // 2  # d_T = 128 reals -> 64 complex symbols
    json.dumps(out)  # plain Python values
    assert (out["answer"], out["score"]) == direct_answer(vqa, item, 3.0, 16, 8, seed=11)


def test_snr_mode_defaults_and_per_link_snr(vqa, scenes):
    out = vqa(clip(scenes), seed=0)  # no mode: the config's SNR, maximum lengths
    default_snr = vqa.model.config.channel_config.snr_db
    assert [out["transmission"][link]["snr_db"] for link in ("visual", "audio", "text")] == [default_snr] * 3
    assert (out["transmission"]["visual"]["tokens"], out["transmission"]["audio"]["tokens"]) == (64, 32)
    snrs = {"visual": -2.0, "audio": 4.0, "text": 12.0}
    out = vqa(clip(scenes), snr_db=snrs, channel_type="rayleigh", seed=2)
    assert {link: out["transmission"][link]["snr_db"] for link in snrs} == snrs
    assert (out["answer"], out["score"]) == direct_answer(vqa, clip(scenes), snrs, 64, 32, 2, "rayleigh")


# ---------------------------------------------------------------------------------------------- network mode


def test_network_mode_sends_the_allocation(vqa, scenes):
    item = clip(scenes)
    network = small_network()
    out = vqa(item, network=network, seed=5)
    report = out["transmission"]
    # the allocator's solution for the same problem, phi and S^max from the config
    problem = {**network, "devices": [
        {**network["devices"][0], "tokens_max": 64, "phi": PHI["visual"]},
        {**network["devices"][1], "tokens_max": 32, "phi": PHI["audio"]},
    ]}  # fmt: skip
    expected = {d["name"]: d for d in allocate(problem, "proposed")["devices"]}
    assert expected["visual"]["tokens"] < 64 and expected["audio"]["tokens"] < 32  # an interior allocation
    for link, distance_km in (("visual", 0.35), ("audio", 0.45)):
        assert set(report[link]) == LINK_FIELDS
        for key in LINK_FIELDS:
            assert report[link][key] == expected[link][key]
        assert isinstance(report[link]["tokens"], int)
        snr = received_snr_db(report[link]["power_w"], report[link]["bandwidth_hz"], distance_km=distance_km)
        assert report[link]["snr_db"] == pytest.approx(snr, rel=1e-12)
    # the text link: Sec. V defaults, 0.4 km, latency = question tokens * q / rate
    n_text = question_tokens(vqa, item["question"])
    text = report["text"]
    power_w = dbm_to_w(TEXT_LINK_DEFAULTS["power_dbm"])
    assert text["tokens"] == n_text
    assert text["bandwidth_hz"] == TEXT_LINK_DEFAULTS["bandwidth_hz"] and text["power_w"] == pytest.approx(power_w)
    assert text["snr_db"] == pytest.approx(received_snr_db(power_w, 0.5e6, distance_km=0.4))
    rate = shannon_rate_bps(power_w, 0.5e6, 10 ** (-(128.1 + 37.6 * math.log10(0.4)) / 10))
    assert text["latency_s"] == pytest.approx(n_text * 1536 * 16 / rate)
    assert report["latency_s"] == max(report[link]["latency_s"] for link in ("visual", "audio", "text"))
    assert report["method"] == "proposed"
    assert report["channel_uses"] == (expected["visual"]["tokens"] + expected["audio"]["tokens"] + n_text) * 64
    # what the model actually used: a direct call with the allocated lengths and SNRs gives the same answer
    snrs = {link: report[link]["snr_db"] for link in ("visual", "audio", "text")}
    reference = direct_answer(vqa, item, snrs, expected["visual"]["tokens"], expected["audio"]["tokens"], seed=5)
    assert (out["answer"], out["score"]) == reference


def test_network_text_link_override_method_and_default_q(vqa, scenes):
    network = small_network(text={"bandwidth_hz": 1e6, "power_w": 0.01, "gain_db": -100.0})
    network.pop("bits_per_token")  # defaults to the config's q = 16 bit * d_T
    out = vqa(clip(scenes), network=network, method="era")
    text = out["transmission"]["text"]
    assert (text["bandwidth_hz"], text["power_w"]) == (1e6, 0.01)
    assert text["snr_db"] == pytest.approx(received_snr_db(0.01, 1e6, gain_db=-100.0))
    q = vqa.model.config.bits_per_token
    assert text["latency_s"] == pytest.approx(text["tokens"] * q / shannon_rate_bps(0.01, 1e6, 1e-10))
    assert out["transmission"]["method"] == "era"
    assert (out["transmission"]["visual"]["tokens"], out["transmission"]["audio"]["tokens"]) == (32, 16)  # half


def test_network_needs_a_fitted_performance_model(vqa, checkpoint):
    model = TokComForAVQA.from_pretrained(checkpoint)
    model.config.performance_model = None
    bare = pipeline("token-comm-vqa", model=model, processor=vqa.processor, device="cpu")
    with pytest.raises(ValueError, match="fit-performance-model"):
        bare(clip(generate_scenes(1, seed=0)), network=small_network())


# ---------------------------------------------------------------------------------------------- inputs


def test_frame_folder_and_wav_file(vqa, scenes, tmp_path):
    item = clip(scenes, 1)
    frames = tmp_path / "frames"
    frames.mkdir()
    for index, frame in enumerate(item["video"]):
        Image.fromarray(frame).save(frames / f"frame_{index:03d}.png")
    # 44.1 kHz stereo int16 version of the 16 kHz clip
    wave_44k = resample_poly(item["audio"]["array"].astype(np.float64), 441, 160)
    pcm = np.clip(np.round(wave_44k * 32767), -32768, 32767).astype(np.int16)
    wav = tmp_path / "clip.wav"
    wavfile.write(wav, 44100, np.stack([pcm, pcm], axis=1))

    reference = vqa(item, snr_db=10.0, seed=4)
    from_folder = vqa({**item, "video": str(frames)}, snr_db=10.0, seed=4)
    assert from_folder == reference  # PNG is lossless: the same frames
    as_top_level = vqa({**item, "audio": item["audio"]["array"], "sampling_rate": 16000}, snr_db=10.0, seed=4)
    assert as_top_level == reference
    for audio in (str(wav), wav, {"path": str(wav)}):
        from_wav = vqa({"video": frames, "audio": audio, "question": item["question"]}, snr_db=10.0, seed=4)
        assert from_wav["transmission"] == reference["transmission"]
        assert isinstance(from_wav["answer"], str) and 0.0 <= from_wav["score"] <= 1.0
        # resampled twice and quantized to 16 bit: nearly the same features, so nearly the same answer
        assert from_wav["score"] == pytest.approx(reference["score"], rel=0.05)


def test_batching_matches_unbatched_and_lists_return_lists(vqa, scenes):
    items = [clip(scenes, index, question) for index, question in enumerate(QUESTIONS)]
    single = vqa(items[0], channel_type="none")
    assert isinstance(single, dict)
    one_by_one = vqa(items, channel_type="none")
    batched = vqa(items, batch_size=2, channel_type="none")  # batches of 2 and 1, questions of different lengths
    assert isinstance(one_by_one, list) and len(one_by_one) == len(batched) == 3
    assert one_by_one[0] == single
    for a, b in zip(one_by_one, batched):
        assert a["answer"] == b["answer"] and a["transmission"] == b["transmission"]
        assert b["score"] == pytest.approx(a["score"], rel=1e-4)
    assert len({out["transmission"]["text"]["tokens"] for out in batched}) > 1


def _without(mapping, key):
    return {k: v for k, v in mapping.items() if k != key}


BAD_INPUTS = [
    ("missing question", lambda c: _without(c, "question"), "question"),
    ("empty question", lambda c: {**c, "question": "  "}, "question"),
    ("missing video", lambda c: _without(c, "video"), "video"),
    ("empty video", lambda c: {**c, "video": np.zeros((0, 32, 32, 3), np.uint8)}, "video"),
    ("float video", lambda c: {**c, "video": c["video"].astype(np.float32)}, "video"),
    ("grey video", lambda c: {**c, "video": c["video"][..., 0]}, "video"),
    ("wrong rate", lambda c: {**c, "audio": {**c["audio"], "sampling_rate": 44100}}, "sampling_rate"),
    ("missing rate", lambda c: {**c, "audio": c["audio"]["array"]}, "sampling_rate"),
    ("rates disagree", lambda c: {**c, "sampling_rate": 8000}, "sampling_rate"),
    ("stereo array", lambda c: {**c, "audio": {**c["audio"], "array": np.zeros((2, 100), np.float32)}}, "audio"),
    ("empty audio", lambda c: {**c, "audio": {**c["audio"], "array": np.zeros(0, np.float32)}}, "audio"),
    ("nan audio", lambda c: {**c, "audio": {**c["audio"], "array": np.full(100, np.nan, np.float32)}}, "audio"),
    ("audio dict key", lambda c: {**c, "audio": {**c["audio"], "rate": 16000}}, "rate"),
    ("not a wav", lambda c: {**c, "audio": "clip.mp3"}, "wav"),
    ("unknown key", lambda c: {**c, "subtitles": "hi"}, "subtitles"),
    ("not a dict", lambda c: "how many instruments?", "dict"),
]


@pytest.mark.parametrize("name, make, field", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_bad_inputs_name_the_field(vqa, scenes, name, make, field):
    with pytest.raises(ValueError, match=field):
        vqa(make(clip(scenes)))


def test_missing_files(vqa, scenes, tmp_path):
    with pytest.raises(FileNotFoundError, match="video"):
        vqa({**clip(scenes), "video": str(tmp_path / "nowhere")})
    with pytest.raises(FileNotFoundError, match="audio"):
        vqa({**clip(scenes), "audio": str(tmp_path / "nothing.wav")})
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="video"):
        vqa({**clip(scenes), "video": str(tmp_path / "empty")})


BAD_PARAMETERS = [
    ("both modes", {"snr_db": 10.0, "network": small_network()}, "snr_db"),
    ("nan snr", {"snr_db": float("nan")}, "snr_db"),
    ("snr link", {"snr_db": {"radio": 3.0}}, "snr_db"),
    ("tokens low", {"num_visual_tokens": 0}, "num_visual_tokens"),
    ("tokens high", {"num_audio_tokens": 33}, "num_audio_tokens"),
    ("tokens with network", {"network": small_network(), "num_visual_tokens": 8}, "num_visual_tokens"),
    ("method alone", {"method": "era"}, "method"),
    ("unknown method", {"network": small_network(), "method": "greedy"}, "method"),
    ("channel type", {"channel_type": "fading"}, "channel_type"),
    ("seed", {"seed": -1}, "seed"),
    ("unknown argument", {"temperature": 0.7}, "temperature"),
    ("network type", {"network": [1, 2]}, "network"),
    ("device name", {"network": small_network(devices=[{"name": "cam", "distance_km": 0.3}])}, "name"),
    ("one device", {"network": small_network(devices=[{"name": "visual", "distance_km": 0.3}])}, "devices"),
    ("phi given", {"network": small_network(devices=[{"name": "visual", "distance_km": 0.3, "phi": PHI["visual"]},
                                                     {"name": "audio", "distance_km": 0.3}])}, "phi"),
    ("missing weight", {"network": _without(small_network(), "weight")}, "weight"),
    ("negative bandwidth", {"network": small_network(bandwidth_hz=-1.0)}, "bandwidth_hz"),
    ("no gain", {"network": small_network(devices=[{"name": "visual"}, {"name": "audio", "distance_km": 0.3}])},
     "distance_km"),
    ("text key", {"network": small_network(text={"snr_db": 3.0})}, "network.text"),
    ("text power", {"network": small_network(text={"power_w": 0.0})}, "network.text.power_w"),
    ("text gains", {"network": small_network(text={"gain": 1e-9, "distance_km": 0.2})}, "network.text"),
]


@pytest.mark.parametrize("name, kwargs, field", BAD_PARAMETERS, ids=[case[0] for case in BAD_PARAMETERS])
def test_bad_parameters_name_the_field(vqa, scenes, name, kwargs, field):
    with pytest.raises(ValueError, match=field):
        vqa(clip(scenes), **kwargs)


def test_construction_parameters_apply_to_every_call(checkpoint, scenes):
    vqa = pipeline("token-comm-vqa", model=str(checkpoint), device="cpu", snr_db=7.0, num_visual_tokens=8, seed=3)
    out = vqa(clip(scenes))
    assert out["transmission"]["visual"]["snr_db"] == 7.0 and out["transmission"]["visual"]["tokens"] == 8
    # a call's link parameters replace the construction's as a group
    out = vqa(clip(scenes), network=small_network())
    assert out["transmission"]["method"] == "proposed" and out["transmission"]["visual"]["tokens"] != 8
    with pytest.raises(ValueError, match="temperature"):
        pipeline("token-comm-vqa", model=str(checkpoint), device="cpu", temperature=1.0)
    assert tokcom.pipelines.TokenCommVQAPipeline is TokenCommVQAPipeline
