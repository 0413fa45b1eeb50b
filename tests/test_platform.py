"""The family-independent platform: links as objects, the model split and generate, legacy checkpoints, the link
planner on a config that is not TokCom's, the evaluation engine's sweep and schema, the training engine's
family lookup, and the computed remote-code closure."""

import json
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file, save_file

import tokcom  # noqa: F401
from tokcom.modeling import Link, TokComConfig, TokComForAVQA, TokComModel, resolve_links
from tokcom.modeling.channel import ChannelConfig

NAMES = ("visual", "audio", "text")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return TokComForAVQA(TokComConfig.tiny()).eval()


@pytest.fixture(scope="module")
def inputs():
    torch.manual_seed(1)
    return {
        "pixel_values_videos": torch.randn(2, 8, 3, 32, 32),
        "input_values": torch.randn(2, 98, 64),
        "input_ids": torch.randint(3, 200, (2, 5)),
        "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]),
    }


def test_resolve_links_accepts_every_form_and_names_bad_arguments():
    by_links = resolve_links(NAMES, links={"visual": Link(snr_db=3.0, num_tokens=4), "text": {"snr_db": 9.0}})
    by_arguments = resolve_links(NAMES, snr_db={"visual": 3.0, "text": 9.0}, num_visual_tokens=4)
    assert by_links == by_arguments
    assert resolve_links(NAMES, snr_db=5.0, channel_type="rayleigh")["audio"] == Link(5.0, None, "rayleigh")
    # a link's own channel type wins over the call's
    assert resolve_links(NAMES, links={"text": Link(channel_type="none")}, channel_type="awgn")["text"].channel_type == "none"
    for kwargs, match in [
        ({"links": {"video": Link()}}, "links"),
        ({"links": {"visual": Link()}, "snr_db": 3.0}, "not both"),
        ({"snr_db": {"video": 1.0}}, "snr_db"),
        ({"snr_db": float("nan")}, "snr_db"),
        ({"num_video_tokens": 3}, "num_<link>_tokens"),
        ({"num_visual_tokens": 0}, "num_visual_tokens"),
        ({"links": {"visual": {"snr": 3.0}}}, "links\\['visual'\\]"),
        ({"links": {"visual": 3.0}}, "links\\['visual'\\]"),
    ]:
        with pytest.raises(ValueError, match=match):
            resolve_links(NAMES, **kwargs)
    with pytest.raises(ValueError, match="channel_type"):
        Link(channel_type="rician")


def test_links_objects_and_the_older_arguments_give_the_same_model_output(model, inputs):
    links = {"visual": Link(snr_db=5.0, num_tokens=7), "audio": Link(snr_db=2.0, num_tokens=3), "text": Link(snr_db=9.0)}
    a = model(**inputs, links=links, generator=torch.Generator().manual_seed(0))
    b = model(**inputs, snr_db={"visual": 5.0, "audio": 2.0, "text": 9.0}, num_visual_tokens=7, num_audio_tokens=3,
              generator=torch.Generator().manual_seed(0))  # fmt: skip
    torch.testing.assert_close(a.logits, b.logits)
    assert a.visual_tokens.shape == (2, 7, 128) and a.audio_tokens.shape == (2, 3, 128)
    as_tuple = model(**inputs, links=links, generator=torch.Generator().manual_seed(0), return_dict=False)
    assert isinstance(as_tuple, tuple)
    torch.testing.assert_close(as_tuple[0], a.logits)  # no labels: logits come first


def test_the_base_model_builds_the_prompt_and_needs_the_llm_embeddings_for_text(model, inputs):
    media = {k: inputs[k] for k in ("pixel_values_videos", "input_values")}
    out = model.tokcom(**media, links={"visual": Link(num_tokens=5), "audio": Link(num_tokens=2)}, channel_type="none")
    assert out.prompt_embeds.shape == (2, 7, 128) and out.prompt_mask.all()
    standalone = TokComModel(TokComConfig.tiny())
    with pytest.raises(ValueError, match="set_text_embeddings"):
        standalone(input_ids=inputs["input_ids"])
    assert not [name for name, _ in standalone.named_parameters() if name.startswith("language_model")]


def test_answer_is_greedy_generate_and_generate_offers_sampling_and_beams(model, inputs):
    call = {**inputs, "snr_db": float("inf")}
    answer = model.answer(**call, max_new_tokens=3)
    greedy = model.generate(**call, max_new_tokens=3, do_sample=False)
    assert torch.equal(answer.sequences, greedy)
    assert answer.scores.shape == (2,) and ((answer.scores > 0) & (answer.scores <= 1)).all()
    # the score is the product of the chosen tokens' probabilities under teacher forcing
    labels = answer.sequences.clone()
    eos = model.config.text_config.eos_token_id
    for row in range(labels.shape[0]):
        hits = (labels[row] == eos).nonzero()
        if len(hits):
            labels[row, hits[0, 0] + 1 :] = -100
    logits = model(**call, labels=labels)
    start = logits.answer_start
    log_probs = logits.logits[:, start : start + labels.shape[1]].float().log_softmax(-1)
    picked = log_probs.gather(2, labels.clamp_min(0).unsqueeze(-1)).squeeze(-1) * (labels >= 0)
    torch.testing.assert_close(picked.sum(1).exp(), answer.scores, atol=1e-4, rtol=1e-4)
    beams = model.generate(**call, max_new_tokens=3, num_beams=2, do_sample=False)
    sampled = model.generate(**call, max_new_tokens=3, do_sample=True, top_k=5)
    assert beams.shape[0] == 2 and sampled.shape[0] == 2
    assert model.generation_config.max_new_tokens == model.config.answer_max_new_tokens


def test_checkpoints_from_before_the_split_load_unchanged(model, tmp_path):
    model.save_pretrained(tmp_path)
    weights = load_file(str(tmp_path / "model.safetensors"))
    assert any(key.startswith("tokcom.vision_encoder") for key in weights)
    legacy = {key.removeprefix("tokcom."): value for key, value in weights.items()}
    save_file(legacy, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    loaded = TokComForAVQA.from_pretrained(tmp_path)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_the_link_planner_serves_any_config_with_named_links():
    from tokcom.pipelines.link_planner import plan_links

    # a one-device family: an image link whose length is chosen per call, and a dedicated text link
    config = SimpleNamespace(
        link_names=("image", "text"), max_tokens_per_link={"image": 16}, bits_per_token=1024,
        channel_config=ChannelConfig(snr_db=12.0),
        performance_model={"image": {"alpha": 4.0, "beta": 1.0, "gamma": 1.0}},
    )  # fmt: skip
    plan = plan_links(config, num_tokens={"image": 6})
    assert plan.links == {"image": Link(snr_db=12.0, num_tokens=6), "text": Link(snr_db=12.0)}
    report = plan.report({"text": 4}, symbols_per_token=8)
    assert report["channel_uses"] == (6 + 4) * 8 and report["latency_s"] is None
    network = {"bandwidth_hz": 2e6, "power_dbm": 20.0, "weight": 0.5, "devices": [{"name": "image", "distance_km": 0.3}]}
    allocated = plan_links(config, network=network)
    assert 1 <= allocated.links["image"].num_tokens <= 16 and allocated.records["text"]["bandwidth_hz"] == 5e5
    report = allocated.report({"text": 4}, symbols_per_token=8)
    assert report["text"]["latency_s"] == pytest.approx(4 * 1024 / allocated.rates_bps["text"])
    assert report["latency_s"] == max(report["image"]["latency_s"], report["text"]["latency_s"])
    for kwargs, match in [
        ({"num_tokens": {"text": 3}}, "Token lengths"),
        ({"num_tokens": {"image": 17}}, "num_image_tokens"),
        ({"network": network, "snr_db": 3.0}, "not both"),
        ({"network": {**network, "devices": [{"name": "audio", "distance_km": 0.3}]}, "method": "proposed"}, "image"),
        ({"method": "proposed"}, "needs `network`"),
    ]:
        with pytest.raises(ValueError, match=match):
            plan_links(config, **kwargs)


class CoinEvaluator:
    """A real evaluator of the engine's protocol: predicts the reference above 0 dB and a wrong word below."""

    task = "toy"
    metrics = ("accuracy",)
    references = ["a", "b", "a", "b"]
    groups = ["x", "x", "y", "y"]

    def predict(self, snr_db, channel_type, seed, progress):
        right = snr_db > 0 and channel_type == "awgn"
        return {"predictions": list(self.references) if right else ["z"] * 4, "loss": 1.0, "mean_score": None}

    def header(self):
        return {"model": "toy", "num_samples": 4}

    def baselines(self):
        return {"question_only_baseline": {"accuracy": 0.5}}


def test_the_evaluation_sweep_covers_snr_and_channel_and_feeds_the_cards():
    from tokcom.training.evaluation import SCHEMA, channel_reports, model_index_results, sweep

    report = sweep(CoinEvaluator(), [-5.0, 10.0], ["awgn", "rayleigh"], progress=False)
    assert report["schema"] == SCHEMA and report["task"] == "toy" and report["channel_types"] == ["awgn", "rayleigh"]
    assert [(r["channel_type"], r["snr_db"], r["accuracy"]) for r in report["results"]] == [
        ("awgn", -5.0, 0.0), ("awgn", 10.0, 1.0), ("rayleigh", -5.0, 0.0), ("rayleigh", 10.0, 0.0),
    ]  # fmt: skip
    assert report["results"][1]["per_type"] == {"x": {"accuracy": 1.0, "count": 2}, "y": {"accuracy": 1.0, "count": 2}}
    assert "mean_score" not in report["results"][0] and report["question_only_baseline"]["accuracy"] == 0.5
    split = channel_reports(report)
    assert list(split) == ["awgn", "rayleigh"] and [r["snr_db"] for r in split["rayleigh"]["results"]] == [-5.0, 10.0]
    entries = model_index_results(report)
    assert [e["metric_name"] for e in entries][:2] == ["accuracy at -5 dB awgn", "accuracy at 10 dB awgn"]
    assert [e["metric_value"] for e in entries] == [0.0, 1.0, 0.0, 0.0]
    json.dumps(report)  # one JSON document
    for snr, channels, match in [([], ["awgn"], "snr_db"), ([float("nan")], ["awgn"], "snr_db"), ([0.0], ["rician"], "channel_type")]:
        with pytest.raises(ValueError, match=match):
            sweep(CoinEvaluator(), snr, channels, progress=False)


def test_the_training_engine_finds_a_family_by_the_recipes_name():
    from tokcom.training.engine import family_stages
    from tokcom.training.recipe import validate_recipe
    from tokcom.training.stages_tokcom import TokComStages

    assert family_stages({"stages": {}}) is TokComStages  # no family: TokCom, as before the engine
    assert family_stages({"family": "tokcom", "stages": {}}) is TokComStages
    with pytest.raises(ValueError, match="Unknown model family 'taichi-x'"):
        validate_recipe({"family": "taichi-x", "stages": {}})


def test_the_remote_code_is_the_import_closure_of_the_registered_classes():
    from tokcom.hub import AUTO_MAP, CUSTOM_PIPELINES, remote_code_files
    from tokcom.registry import FAMILIES

    files = remote_code_files(FAMILIES["tokcom"])
    # reached only through imports: links (model), link_planner and media_io (pipeline), link_budget (channel)
    assert {"links.py", "link_planner.py", "media_io.py", "link_budget.py", "allocation_solvers.py"} <= set(files)
    assert not {"hub.py", "engine.py", "digital_link.py", "__init__.py"} & set(files)
    assert AUTO_MAP == {"AutoConfig": "configuration_tokcom.TokComConfig", "AutoModel": "modeling_tokcom.TokComForAVQA"}
    assert CUSTOM_PIPELINES["token-comm-vqa"]["impl"] == "token_comm_vqa.TokenCommVQAPipeline"


SMOKE = {
    "seed": 3,
    "num_threads": 1,
    "data": {"train_scenes": 24, "validation_scenes": 4, "test_scenes": 4, "questions_per_scene": 2},
    "stages": {"task": {"steps": 6, "batch_size": 4, "learning_rate": 1e12, "random_token_lengths": True}},
}


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda r: r["stages"]["task"].update(lerning_rate=0.1), "stages.task.lerning_rate.*did you mean `learning_rate`"),
        (lambda r: r["stages"]["task"].update(chekpoint_every=2), "did you mean `checkpoint_every`"),
        (lambda r: r.update(channel={"channel_types": ["awgn", "rician"]}), "channel.channel_types"),
        (lambda r: r.update(model={"reciever_hidden_size": 8}), "did you mean `receiver_hidden_size`"),
        (lambda r: r["stages"]["task"].update(checkpoint_every=0), "stages.task.checkpoint_every"),
        (lambda r: r.update(num_threads=0), "num_threads"),
        (lambda r: r["stages"]["task"].update(learning_rate=float("inf")), "stages.task.learning_rate"),
        (lambda r: r.update(stages=5), "stages"),
    ],
)
def test_a_bad_recipe_is_refused_whole_before_anything_trains(tmp_path, change, match):
    from tokcom.training.engine import train

    recipe = json.loads(json.dumps(SMOKE))
    change(recipe)
    with pytest.raises(ValueError, match=match):
        train(recipe, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before the output folder is made


def test_a_diverged_run_stops_and_writes_no_final_model(tmp_path):
    from tokcom.training.engine import train

    with pytest.raises(FloatingPointError, match="learning_rate"):
        train(json.loads(json.dumps(SMOKE)), tmp_path)
    assert not (tmp_path / "model").exists()


def test_a_damaged_newest_checkpoint_resumes_from_the_previous_one_exactly(tmp_path):
    from tokcom.training.engine import parameter_digest, train

    recipe = json.loads(json.dumps(SMOKE))
    recipe["stages"]["task"].update(steps=110, learning_rate=0.003, checkpoint_every=40)
    whole = train(recipe, tmp_path / "whole")
    assert train(recipe, tmp_path / "cut", max_steps=100) is None
    state = tmp_path / "cut" / "state" / "task"
    assert sorted(p.name for p in state.iterdir()) == ["step-00000080", "step-00000100"]  # the newest two, complete
    with open(state / "step-00000100" / "optimizer.bin", "r+b") as handle:  # a kill during the write, in effect
        handle.truncate(100)
    with pytest.warns(UserWarning, match="step-00000100"):
        resumed = train(recipe, tmp_path / "cut", resume=True)
    a, b = TokComForAVQA.from_pretrained(whole), TokComForAVQA.from_pretrained(resumed)
    assert parameter_digest(a) == parameter_digest(b)
    logs = [json.loads((tmp_path / run / "training_log.json").read_text())["stages"][0]["losses"] for run in ("whole", "cut")]
    assert [row["step"] for row in logs[1]] == [50, 100, 110] and logs[0] == logs[1]  # losses from before the stop kept


def test_snr_below_the_floor_is_refused_everywhere_instead_of_answering_nan(model, inputs, tmp_path):
    """-400 dB overflowed float32 (10 ** 40) and answered '' with score NaN; every entry point now refuses it."""
    from tokcom.modeling.link_budget import MIN_SNR_DB
    from tokcom.pipelines.link_planner import plan_links
    from tokcom.training.evaluation import check_snr_list

    for call in (
        lambda: model(**inputs, snr_db=-400.0),
        lambda: model(**inputs, snr_db={"audio": -390.0}),
        lambda: model(**inputs, snr_db=torch.tensor([-400.0, 10.0])),
        lambda: model(**inputs, links={"visual": Link(snr_db=-1e9)}),
        lambda: ChannelConfig(snr_db=-400.0),
        lambda: plan_links(TokComConfig.tiny(), snr_db=-400.0),
        lambda: check_snr_list([0.0, -400.0]),
    ):
        with pytest.raises(ValueError, match=r"snr_db.*\[-100, inf\]"):
            call()
    assert MIN_SNR_DB == -100.0
    out = model.answer(**inputs, snr_db=MIN_SNR_DB)  # the floor itself works and gives numbers
    assert torch.isfinite(out.scores).all()


def test_one_upload_filter_for_models_and_spaces_keeps_secrets_and_pickles_out(tmp_path):
    """`tokcom publish --repo-type space --dry-run` listed `.env`, `.git/config` and a `pytorch_model.bin`."""
    from tokcom.hub import PublishError, publish_folder

    space = tmp_path / "space"
    (space / ".git").mkdir(parents=True)
    for name, text in (("app.py", "print()"), ("README.md", "---\nsdk: gradio\n---\n"), ("requirements.txt", "gradio"),
                       (".env", "HF_TOKEN=hf_secret"), (".git/config", "[core]"), ("model/config.json", "{}")):  # fmt: skip
        (space / name).parent.mkdir(parents=True, exist_ok=True)
        (space / name).write_text(text)
    plan = publish_folder(space, "someone/demo", dry_run=True, repo_type="space")
    assert [f["path"] for f in plan["files"]] == ["README.md", "app.py", "model/config.json", "requirements.txt"]
    for bad, match in (("model/pytorch_model.bin", "pickled"), ("hf_token.txt", "credentials"), ("deploy.pem", "credentials")):
        (space / bad).write_bytes(b"x")
        with pytest.raises(PublishError, match=match):
            publish_folder(space, "someone/demo", dry_run=True, repo_type="space")
        (space / bad).unlink()


def test_fitting_phi_never_writes_into_the_installed_package(tmp_path, capsys):
    """`tokcom evaluate --fit-performance-model` without `--model` rewrote the installed default's config.json."""
    import hashlib

    from tokcom.cli import main
    from tokcom.defaults import default_model_path
    from tokcom.training.evaluate_tokcom import fit_performance_models

    config = default_model_path() / "config.json"
    before = hashlib.sha256(config.read_bytes()).hexdigest()
    assert main(["evaluate", "--snr-db", "20", "--num-samples", "4", "--fit-performance-model"]) == 2
    assert "--fit-output" in capsys.readouterr().err
    with pytest.raises(ValueError, match="installed package"):
        fit_performance_models(default_model_path(), token_lengths={"visual": [64], "audio": [32]}, num_samples=4)
    out = tmp_path / "fitted"
    lengths = {"visual": [1, 8, 64], "audio": [1, 8, 32]}
    fit = fit_performance_models(default_model_path(), token_lengths=lengths, num_samples=8, output_dir=out)
    assert TokComConfig.from_pretrained(out).performance_model == fit["performance_model"]
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert hashlib.sha256(config.read_bytes()).hexdigest() == before


def test_oversized_inputs_are_refused_before_the_expensive_step(tmp_path):
    """A 13000x13000 PNG killed the Space; a 1 Hz WAV header peaked at 15.5 GiB; a 1,000,000-character question ran
    433 s. Each is now refused, before decoding or converting, with the argument and the limit named."""
    import numpy as np
    from PIL import Image
    from scipy.io import wavfile
    from transformers import pipeline

    from tokcom.modeling import media_io

    big = tmp_path / "frames"
    big.mkdir()
    Image.new("RGB", (13000, 13000)).save(big / "frame_0.png")  # small file, huge image
    with pytest.raises(ValueError, match=r"`video` frames are 13000x13000 pixels; at most"):
        media_io.load_frames(big)
    with pytest.raises(ValueError, match="at most 4096 are accepted"):
        media_io.check_frames(np.zeros((5000, 2, 2, 3), np.uint8))
    wavfile.write(tmp_path / "slow.wav", 1, np.zeros(40000, np.int16))  # the header says 1 Hz
    with pytest.raises(ValueError, match="sampling rate is 1 Hz"):
        media_io.read_wav(tmp_path / "slow.wav", sampling_rate=16000)
    wavfile.write(tmp_path / "long.wav", 8000, np.zeros(8000 * 700, np.int16))
    with pytest.raises(ValueError, match="lasts 700.0 s"):
        media_io.read_wav(tmp_path / "long.wav")
    assert media_io.read_wav(tmp_path / "long.wav", max_duration_s=1.0).waveform.shape == (8000,)  # cropped: fine

    vqa = pipeline("token-comm-vqa", device="cpu")
    clip = {"video": np.zeros((8, 32, 32, 3), np.uint8), "audio": {"array": np.zeros(16000, np.float32), "sampling_rate": 16000}}
    with pytest.raises(ValueError, match="`question` has 1,000,000 characters"):
        vqa({**clip, "question": "is " * 333333 + "x"})
    with pytest.raises(ValueError, match="`audio` lasts"):
        vqa({**clip, "audio": {"array": np.zeros(16000 * 601, np.float32), "sampling_rate": 16000}, "question": "is the drum playing?"})
    with pytest.raises(ValueError, match="pixels"):
        vqa({**clip, "video": np.zeros((1, 5000, 5000, 3), np.uint8), "question": "is the drum playing?"})
    # a large but allowed frame is resized one frame at a time and answered
    out = vqa({**clip, "video": np.zeros((2, 2000, 2000, 3), np.uint8), "question": "is the drum playing?"}, snr_db=10.0)
    assert out["answer"] and 0.0 < out["score"] <= 1.0


def test_pipeline_arguments_that_used_to_raise_tracebacks_name_the_argument():
    import numpy as np
    from transformers import pipeline

    vqa = pipeline("token-comm-vqa", device="cpu")
    clip = {"video": np.zeros((8, 32, 32, 3), np.uint8), "question": "is the drum playing?",
            "audio": {"array": np.zeros(16000, np.float32), "sampling_rate": 16000}}  # fmt: skip
    network = {"bandwidth_hz": 3e6, "power_dbm": 23.0, "weight": 0.6,
               "devices": [{"name": "visual", "distance_km": 0.35}, {"name": "audio", "distance_km": 0.45}]}  # fmt: skip
    for call, match in (
        (lambda: vqa([]), "`inputs` is an empty list"),  # was IndexError
        (lambda: vqa(clip, seed=2**70), r"`seed` must be an integer in \[0, "),  # was "Overflow when unpacking"
        (lambda: vqa(clip, network={**network, "text": {"power_dbm": -200}}), r"`network.text` gives the text link"),
        (lambda: vqa(clip, network={**network, "noise_dbm_per_hz": 300}), "noise_dbm_per_hz"),
        (lambda: vqa(clip, network={**network, "devices": [{"name": "visual", "distance_km": 1e6}, network["devices"][1]]}),
         r"network \(device 'visual'\)` gives the visual link"),
    ):
        with pytest.raises(ValueError, match=match):
            call()


def test_damaged_checkpoints_and_missing_folders_get_one_line_errors(tmp_path):
    import shutil

    from tokcom.cli import main
    from tokcom.defaults import default_model_path

    for size in (0, 7, 1_000_000):
        damaged = tmp_path / f"cut-{size}"
        shutil.copytree(default_model_path(), damaged)
        with open(damaged / "model.safetensors", "r+b") as handle:
            handle.truncate(size)
        with pytest.raises(ValueError, match=r"model.safetensors\) are damaged or truncated"):
            TokComForAVQA.from_pretrained(damaged)
    # `tokcom export --model /nonexistent` was looked up as a Hub repo id
    assert main(["export", "--model", "/nonexistent", "--output", str(tmp_path / "out")]) == 2
    assert main(["export", "--model", str(tmp_path / "cut-7"), "--output", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()
