"""Training stages, recipes, exact resume, evaluation, and a real 2-process DDP run on CPU."""

import json

import pytest
import torch

from tokcom.modeling import TokComForAVQA
from tokcom.modeling.processing_tokcom import TokComProcessor
from tokcom.training.evaluate_tokcom import evaluate
from tokcom.training.recipe import load_recipe, validate_recipe
from tokcom.training.engine import parameter_digest, train

SMOKE_RECIPE = {
    "seed": 3,
    "num_threads": 1,
    "data": {"train_scenes": 96, "validation_scenes": 8, "test_scenes": 24, "questions_per_scene": 2},
    "channel": {"snr_db_range": [0.0, 20.0], "channel_types": ["awgn", "rayleigh"]},
    "stages": {
        "pretrain_vision": {"steps": 3, "batch_size": 4, "learning_rate": 0.003},
        "pretrain_audio": {"steps": 3, "batch_size": 4, "learning_rate": 0.003},
        "pretrain_text": {"steps": 3, "batch_size": 4, "learning_rate": 0.003},
        "align": {"steps": 3, "batch_size": 4, "learning_rate": 0.003, "checkpoint_every": 2},
        "task": {"steps": 4, "batch_size": 4, "learning_rate": 0.003, "random_token_lengths": True, "checkpoint_every": 2},
    },
}


@pytest.fixture(scope="module")
def smoke_model(tmp_path_factory):
    output = tmp_path_factory.mktemp("smoke")
    final = train(SMOKE_RECIPE, output)
    return output, final


def test_all_stages_write_a_hub_style_checkpoint(smoke_model):
    output, final = smoke_model
    names = {p.name for p in final.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "processor_config.json", "tokcom_recipe.json"} <= names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pkl"))]
    log = json.loads((output / "training_log.json").read_text())
    assert [s["stage"] for s in log["stages"]] == ["pretrain_vision", "pretrain_audio", "pretrain_text", "align", "task"]
    assert all(s["losses"] and all(torch.isfinite(torch.tensor(x["loss"])) for x in s["losses"]) for s in log["stages"])
    model = TokComForAVQA.from_pretrained(final)
    processor = TokComProcessor.from_pretrained(final)
    assert len(processor.tokenizer) <= model.config.text_config.vocab_size


def test_alignment_and_task_stages_freeze_what_the_paper_freezes(smoke_model, tmp_path):
    _, start = smoke_model
    before = TokComForAVQA.from_pretrained(start).state_dict()
    recipe = json.loads(json.dumps(SMOKE_RECIPE))
    after = TokComForAVQA.from_pretrained(train(recipe, tmp_path, stages=["align", "task"], init_model=str(start))).state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed, "training changed nothing"
    assert any(name.startswith("tokcom.receivers") for name in changed)
    assert any("lora_" in name for name in changed)
    # encoders (train_encoders is off) and the LLM's base weights stay frozen; only LoRA moves inside the LLM
    frozen = [n for n in changed if n.startswith(("tokcom.vision_encoder", "tokcom.audio_encoder"))]
    frozen += [n for n in changed if n.startswith("language_model") and "lora_" not in n]
    assert not frozen, frozen


def test_task_stage_transceiver_learning_rate(smoke_model, tmp_path):
    from tokcom.training.stages_tokcom import trainable_parameters

    _, start = smoke_model
    model = TokComForAVQA.from_pretrained(start)
    task = {"steps": 2, "batch_size": 4, "learning_rate": 0.003}
    names = trainable_parameters(model, "task", {**task, "transceiver_learning_rate": 0.0})
    assert names and all("lora_" in n for n in names)  # 0 freezes F_m and G_m
    assert any(n.startswith("tokcom.receivers") for n in trainable_parameters(model, "task", task))
    # a positive rate trains them in their own optimizer group: they move, less than at the main rate
    recipe = json.loads(json.dumps(SMOKE_RECIPE))
    recipe["stages"] = {"task": {**task, "transceiver_learning_rate": 1e-6}}
    before = model.state_dict()
    after = TokComForAVQA.from_pretrained(train(recipe, tmp_path, stages=["task"], init_model=str(start))).state_dict()
    moved = {n: (after[n] - before[n]).abs().max().item() for n in before if n.startswith("tokcom.receivers.visual.fc")}
    assert moved and 0 < max(moved.values()) < 1e-4


def test_full_length_fraction_sends_that_share_of_batches_at_the_maximum_lengths(smoke_model):
    import numpy as np

    from tokcom.training.stages_tokcom import TokComStages

    _, final = smoke_model
    model = TokComForAVQA.from_pretrained(final)
    runner = TokComStages(SMOKE_RECIPE, model, None, None, "/tmp/unused")
    maximum = {"visual": model.config.max_visual_tokens, "audio": model.config.max_audio_tokens}

    def draws(stage_recipe, n=400):
        rng = np.random.default_rng(0)
        return [runner._token_lengths(rng, stage_recipe) for _ in range(n)]

    assert all(d == maximum for d in draws({"random_token_lengths": True, "full_length_fraction": 1.0}))
    uniform = draws({"random_token_lengths": True})
    assert sum(d == maximum for d in uniform) < 10  # 1/(64*32) by chance
    half = draws({"random_token_lengths": True, "full_length_fraction": 0.5})
    assert 160 < sum(d == maximum for d in half) < 240
    assert len({d["audio"] for d in half}) > 10  # the rest stay uniform over [1, max]
    # the fraction only shapes random lengths; without them a stage keeps its fixed lengths
    assert draws({"num_visual_tokens": 7, "full_length_fraction": 1.0}, 3) == [{"visual": 7, "audio": maximum["audio"]}] * 3
    with pytest.raises(ValueError, match="stages.task.full_length_fraction"):
        validate_recipe({"stages": {"task": {"steps": 1, "batch_size": 1, "learning_rate": 1.0, "full_length_fraction": 1.5}}})


def test_resume_after_a_stop_reproduces_the_uninterrupted_run(smoke_model, tmp_path):
    _, start = smoke_model
    recipe = json.loads(json.dumps(SMOKE_RECIPE))
    uninterrupted = train(recipe, tmp_path / "a", stages=["align", "task"], init_model=str(start))
    assert train(recipe, tmp_path / "b", stages=["align", "task"], init_model=str(start), max_steps=5) is None
    assert not (tmp_path / "b" / "model").exists()
    resumed = train(recipe, tmp_path / "b", stages=["align", "task"], resume=True, init_model=str(start))
    a, b = TokComForAVQA.from_pretrained(uninterrupted), TokComForAVQA.from_pretrained(resumed)
    assert parameter_digest(a) == parameter_digest(b)
    # resuming a finished run keeps its trained model (not `init_model`, which only seeds a fresh run)
    as_tuples = {**recipe, "channel": {k: tuple(v) if isinstance(v, list) else v for k, v in recipe["channel"].items()}}
    again = train(as_tuples, tmp_path / "b", stages=["align", "task"], resume=True, init_model=str(start))
    assert parameter_digest(TokComForAVQA.from_pretrained(again)) == parameter_digest(a)
    assert parameter_digest(a) != parameter_digest(TokComForAVQA.from_pretrained(start))
    changed = {**recipe, "training_seed": 99}
    with pytest.raises(ValueError, match="`recipe` differs"):
        train(changed, tmp_path / "b", stages=["align", "task"], resume=True, init_model=str(start))
    with pytest.raises(ValueError, match="`init_model`"):
        train(recipe, tmp_path / "b", stages=["align", "task"], resume=True, init_model=str(uninterrupted))


def test_evaluate_reports_accuracy_per_type_and_the_question_only_baseline(smoke_model):
    _, final = smoke_model
    report = evaluate(final, snr_db=[0.0, 20.0], num_samples=16, progress=False)
    assert [r["snr_db"] for r in report["results"]] == [0.0, 20.0]
    for row in report["results"]:
        assert 0.0 <= row["accuracy"] <= 1.0 and row["per_type"] and row["loss"] > 0
        assert sum(t["count"] for t in row["per_type"].values()) == 16
    assert 0.0 <= report["question_only_baseline"]["accuracy"] <= 1.0
    with pytest.raises(ValueError, match="snr_db"):
        evaluate(final, snr_db=[float("nan")])
    with pytest.raises(ValueError, match="num_samples"):
        evaluate(final, snr_db=[0.0], num_samples=0)
    with pytest.raises(FileNotFoundError):
        evaluate(final / "missing", snr_db=[0.0])


def test_recipes_validate():
    assert load_recipe("tokcom_avqa_tiny")["stages"]["task"]["steps"] > 0
    with pytest.raises(FileNotFoundError):
        load_recipe("no_such_recipe")
    with pytest.raises(ValueError, match="stages.task.learning_rate"):
        validate_recipe({"stages": {"task": {"steps": 1, "batch_size": 2}}})
    with pytest.raises(ValueError, match="unknown"):
        validate_recipe({"stages": {"warmup": {"steps": 1, "batch_size": 2, "learning_rate": 0.1}}})
    with pytest.raises(ValueError, match="stages.task.transceiver_learning_rate"):
        validate_recipe({"stages": {"task": {"steps": 1, "batch_size": 1, "learning_rate": 1.0, "transceiver_learning_rate": -1}}})
    with pytest.raises(ValueError, match="data.caption_style"):
        validate_recipe({"stages": {}, "data": {"caption_style": "poetry"}})
    with pytest.raises(ValueError, match="snr_db_range"):
        validate_recipe({"stages": {}, "channel": {"snr_db_range": [10, 0]}})
    with pytest.raises(ValueError, match="max_steps"):
        train(SMOKE_RECIPE, "/tmp/never", max_steps=-1)


@pytest.mark.slow
def test_two_cpu_processes_really_train_distributed_and_stay_identical(tmp_path, launch_two_processes):
    recipe = json.loads(json.dumps(SMOKE_RECIPE))
    recipe["stages"] = {k: v for k, v in recipe["stages"].items() if k in ("pretrain_audio", "align", "task")}
    log = launch_two_processes(recipe, tmp_path, "--stages", "pretrain_audio", "align", "task")
    assert log["num_processes"] == 2
    assert all(stage["num_processes"] == 2 for stage in log["stages"])
    assert len(log["rank_parameter_digests"]) == 2
    assert log["rank_parameter_digests"][0] == log["rank_parameter_digests"][1]


def test_model_card_is_generated_from_the_evaluation(smoke_model):
    from huggingface_hub import ModelCard

    from tokcom.training.model_card import write_model_card

    output, final = smoke_model
    report = evaluate(final, snr_db=[0.0, 20.0], num_samples=8, progress=False)
    log = json.loads((output / "training_log.json").read_text())
    path = write_model_card(final, report, "tokcom evaluate ...", log)
    card = ModelCard.load(path)
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "visual-question-answering"
    values = [r.metric_value for r in card.data.eval_results]
    assert values == [round(r["accuracy"], 4) for r in report["results"]]
    assert f"{report['results'][1]['accuracy']:.3f}" in card.text


def test_performance_model_fit_is_written_into_the_checkpoint(smoke_model, tmp_path):
    import shutil

    from tokcom.modeling import TokComConfig
    from tokcom.training.evaluate_tokcom import fit_performance_models

    _, final = smoke_model
    copy = tmp_path / "model"
    shutil.copytree(final, copy)
    fit = fit_performance_models(copy, token_lengths={"visual": [1, 4, 16, 64], "audio": [1, 4, 32]}, num_samples=8)
    assert [r["tokens"] for r in fit["measurements"]["visual"]] == [1, 4, 16, 64]
    assert all(r["loss"] > 0 for r in fit["measurements"]["audio"])
    written = TokComConfig.from_pretrained(copy).performance_model
    assert written == fit["performance_model"]
    assert all(set(phi) == {"alpha", "beta", "gamma"} and min(phi.values()) >= 0 for phi in written.values())


def test_text_ceiling_matches_unbatched_greedy_reading_of_the_caption(smoke_model):
    from tokcom.training.evaluate_tokcom import model_recipe, text_ceiling
    from tokcom.training.synthetic_corpus import build_synthetic_corpus

    output, _ = smoke_model
    snapshot = output / "stages" / "pretrain_text"
    report = text_ceiling(snapshot, num_samples=12, batch_size=5)  # batches of unequal caption/question lengths
    assert report["num_samples"] == 12 and sum(t["count"] for t in report["per_type"].values()) == 12
    # independent check: one question at a time, no padding, greedy decoding of the answer's length
    model = TokComForAVQA.from_pretrained(snapshot).eval()
    processor = TokComProcessor.from_pretrained(snapshot)
    corpus, _ = build_synthetic_corpus(model_recipe(snapshot), split="test", processor=processor)
    correct = 0
    with torch.no_grad():
        for index in range(12):
            scene = corpus.scene_index[index]
            caption = corpus.caption_ids[scene][corpus.caption_mask[scene].bool()]
            question = corpus.question_ids[index][corpus.question_mask[index].bool()]
            labels = corpus.labels[index][corpus.labels[index] >= 0]
            ids = torch.cat([caption, question]).unsqueeze(0)
            predicted = []
            for _ in range(len(labels)):
                predicted.append(int(model.language_model(input_ids=ids).logits[0, -1].argmax()))
                ids = torch.cat([ids, torch.tensor([[predicted[-1]]])], dim=1)
            correct += predicted == labels.tolist()
    assert report["accuracy"] == pytest.approx(correct / 12)
    with pytest.raises(ValueError, match="num_samples"):
        text_ceiling(snapshot, num_samples=0)
    with pytest.raises(FileNotFoundError, match="config.json"):
        text_ceiling(snapshot / "missing")


def test_modal_captions_stand_where_the_media_tokens_stand_and_are_their_alignment_targets(tmp_path):
    from tokcom.training.data.synthetic_avqa import describe_audio_slots, describe_visual_slots
    from tokcom.training.evaluate_tokcom import text_ceiling
    from tokcom.training.synthetic_corpus import build_synthetic_corpus
    from tokcom.training.stages_tokcom import TokComStages

    recipe = json.loads(json.dumps(SMOKE_RECIPE))
    recipe["data"]["caption_style"] = "modal"
    recipe["model"] = {"receiver_position_embeddings": True, "receiver_token_period": {"visual": 12, "audio": 24}}
    recipe["stages"]["align"]["random_token_lengths"] = True
    final = train(recipe, tmp_path, stages=("pretrain_text", "align"))
    # every snapshot carries the recipe (its caption style decides what the text ceiling reads)
    assert json.loads((tmp_path / "stages" / "pretrain_text" / "tokcom_recipe.json").read_text()) == recipe
    model = TokComForAVQA.from_pretrained(final)
    assert model.receivers["visual"].position_embeddings is not None
    processor = TokComProcessor.from_pretrained(final)
    corpus, _ = build_synthetic_corpus(recipe, split="train", processor=processor)
    runner = TokComStages(recipe, model, processor, corpus, tmp_path)

    def words(ids):
        return processor.tokenizer.convert_ids_to_tokens(ids.tolist())

    def layout(scene):
        return [[int(x) for x in corpus.scene_targets[key][scene]] for key in ("instruments", "intervals", "gain_levels")]

    for step in range(3):
        align = runner.batch("align", step, recipe["stages"]["align"], rank=0, world=1)
        text = runner.batch("pretrain_text", step, recipe["stages"]["pretrain_text"], rank=0, world=1)
        assert text["caption_mask"].all() and text["caption_ids"].shape[1] == 12 + 24  # what the receiver combines to
        for modality in ("visual", "audio"):
            assert align[f"{modality}_target_ids"].shape == (4, align["links"][modality].num_tokens)
    # word i of a modality's frame is word i (mod length) of that sensor's description of the scene
    targets = corpus.modal_captions(torch.arange(4), {"visual": 30, "audio": 5})
    for scene in range(4):
        assert words(targets["visual"][scene]) == (describe_visual_slots(*layout(scene)).split(" ") * 3)[:30]
        assert words(targets["audio"][scene]) == describe_audio_slots(*layout(scene)).split(" ")[:5]
    # the text stage reads them in the prompt's order (visual, audio), then the question
    batch = corpus.text_stage_batch(processor, torch.arange(3), {"visual": 30, "audio": 5})
    scenes = corpus.scene_index[:3]
    torch.testing.assert_close(batch["caption_ids"], torch.cat(list(corpus.modal_captions(scenes, {"visual": 30, "audio": 5}).values()), 1))
    # alignment text: the scene's caption, then a question about it (the text link must rebuild both, eq. 9)
    questions = torch.tensor([0, 5])
    align = corpus.caption_batch(processor, corpus.scene_index[questions], questions=questions)
    for row, question in enumerate(questions):
        real = align["input_ids"][row][align["attention_mask"][row].bool()]
        scene = corpus.scene_index[question]
        caption = corpus.caption_ids[scene][corpus.caption_mask[scene].bool()]
        asked = corpus.question_ids[question][corpus.question_mask[question].bool()]
        assert real.tolist() == caption.tolist() + asked.tolist()
    with pytest.raises(ValueError, match="num_tokens"):
        corpus.text_stage_batch(processor, torch.arange(2))
    report = text_ceiling(tmp_path / "stages" / "pretrain_text", num_samples=8)
    assert report["num_samples"] == 8 and 0.0 <= report["accuracy"] <= 1.0


def test_audio_timing_probe_measures_the_encoder_and_refuses_a_folder_without_checkpoints(smoke_model, tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "audio_timing_probe.py"
    spec = importlib.util.spec_from_file_location("audio_timing_probe", path)
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    _, final = smoke_model
    report = probe.encoder_probe(final, train_scenes=8, test_scenes=4, steps=3)
    for split in ("train", "test"):
        assert 0.0 <= report[split]["timing_accuracy"] <= 1.0
    with pytest.raises(SystemExit, match="--runs"):
        probe.main(["--runs", str(tmp_path), "--output", str(tmp_path / "never.json")])
    assert not (tmp_path / "never.json").exists()
