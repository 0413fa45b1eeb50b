"""TaiChi on the training and evaluation engines: every stage runs and trains what the paper trains, exact resume,
the three tasks' evaluation with their baselines, recipe checks, and a real 2-process DDP stage."""

from __future__ import annotations

import json

import pytest
import torch

from tokcom.modeling import TaiChiForConditionalGeneration
from tokcom.training.engine import parameter_digest, train
from tokcom.training.evaluation import evaluate_checkpoint
from tokcom.training.recipe import load_recipe, validate_recipe
from tokcom.training.stages_taichi import TaiChiStages, trainable_parameters

STAGE = {"steps": 2, "batch_size": 4, "learning_rate": 0.003}
SMOKE_RECIPE = {
    "family": "taichi",
    "seed": 1,
    "num_threads": 1,
    "data": {"train_scenes": 16, "validation_scenes": 4, "test_scenes": 8, "questions_per_scene": 2,
             "sentiment_sentences": 16},
    "channel": {"snr_db_range": [0.0, 20.0], "channel_types": ["awgn", "rayleigh"]},
    "stages": {
        "pretrain_vision": STAGE,
        "pretrain_text": STAGE,
        "pretrain": {**STAGE, "word_alignment": 1.0},
        "sft": {**STAGE, "steps": 3, "random_token_lengths": True, "train_llm": "full"},
        "separate_coding": STAGE,
        "joint_coding": {**STAGE, "steps": 4, "random_token_lengths": True, "checkpoint_every": 2,
                         "tasks": {"vqa": 1.0, "caption": 1.0, "sentiment": 1.0}},
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def smoke_model(tmp_path_factory):
    output = tmp_path_factory.mktemp("taichi_smoke")
    return output, train(json.loads(json.dumps(SMOKE_RECIPE)), output)


def test_all_stages_write_a_hub_checkpoint_and_change_only_what_they_train(smoke_model):
    output, final = smoke_model
    assert {p.name for p in final.iterdir()} >= {"config.json", "model.safetensors", "tokenizer.json",
                                                "processor_config.json", "tokcom_recipe.json"}  # fmt: skip
    states = {stage: TaiChiForConditionalGeneration.from_pretrained(output / "stages" / stage).state_dict()
              for stage in SMOKE_RECIPE["stages"]}  # fmt: skip
    order = list(SMOKE_RECIPE["stages"])
    for before, stage in zip(order, order[1:]):
        changed = {name for name, value in states[stage].items() if not torch.equal(value, states[before][name])}
        trained = set(trainable_parameters(TaiChiForConditionalGeneration.from_pretrained(final), stage,
                                           SMOKE_RECIPE["stages"][stage]))  # fmt: skip
        assert changed, stage
        assert changed <= trained | {"lm_head.weight"}, (stage, sorted(changed - trained)[:3])
    prefixes = {
        "pretrain": ("ban.", "projector."),
        "separate_coding": ("channel_coder.",),
    }
    model = TaiChiForConditionalGeneration.from_pretrained(final)
    for stage, allowed in prefixes.items():
        assert all(name.startswith(allowed) for name in trainable_parameters(model, stage, {})), stage
    joint = trainable_parameters(model, "joint_coding", {})
    assert any(name.startswith("channel_coder.") for name in joint) and any("lora_" in name for name in joint)
    assert not any(name.startswith(("token_encoder.layers", "token_decoder.layers")) and "lora_" not in name
                   for name in joint)  # fmt: skip
    log = json.loads((output / "training_log.json").read_text())
    assert [stage["stage"] for stage in log["stages"]] == order


def test_resume_after_a_stop_reproduces_the_uninterrupted_run(smoke_model, tmp_path):
    output, _ = smoke_model
    start = str(output / "stages" / "pretrain")
    recipe = json.loads(json.dumps(SMOKE_RECIPE))
    stages = ["sft", "joint_coding"]
    uninterrupted = train(recipe, tmp_path / "a", stages=stages, init_model=start)
    assert train(recipe, tmp_path / "b", stages=stages, init_model=start, max_steps=5) is None
    resumed = train(recipe, tmp_path / "b", stages=stages, resume=True, init_model=start)
    a = TaiChiForConditionalGeneration.from_pretrained(uninterrupted)
    assert parameter_digest(a) == parameter_digest(TaiChiForConditionalGeneration.from_pretrained(resumed))
    assert parameter_digest(a) != parameter_digest(TaiChiForConditionalGeneration.from_pretrained(start))


def test_evaluation_of_each_task_with_its_baselines(smoke_model):
    _, final = smoke_model
    vqa = evaluate_checkpoint(final, [-30.0, 20.0], ["awgn", "rayleigh"], task="vqa", num_samples=6, progress=False)
    assert vqa["task"] == "token-comm-vqa" and len(vqa["results"]) == 4
    assert all(0 <= row["accuracy"] <= 1 and row["per_type"] for row in vqa["results"])
    assert 0 <= vqa["question_only_baseline"]["overall"] <= 1
    caption = evaluate_checkpoint(final, [10.0], task="caption", num_samples=4, progress=False)
    row = caption["results"][0]
    assert caption["task"] == "token-comm-image-to-text" and 0 <= row["bleu4"] <= 1 and 0 <= row["attribute_recall"] <= 1
    assert 0 < caption["reference_attribute_recall"] <= 1
    sentiment = evaluate_checkpoint(final, [10.0], task="sentiment", num_samples=2, progress=False)
    assert sentiment["task"] == "token-comm-text-classification" and 0 <= sentiment["bag_of_words_baseline"] <= 1
    with pytest.raises(ValueError, match="task"):
        evaluate_checkpoint(final, [10.0], task="translate")
    with pytest.raises(ValueError, match="num_samples"):
        evaluate_checkpoint(final, [10.0], num_samples=0)


def test_recipes_validate():
    recipe = load_recipe("taichi_tiny")
    validate_recipe(recipe)
    assert recipe["family"] == "taichi" and list(recipe["stages"]) == list(TaiChiStages.stages)
    base = {"family": "taichi", "stages": {}}
    cases = [
        ({"stages": {"sft": {**STAGE, "tasks": {"translate": 1.0}}}}, "stages.sft.tasks"),
        ({"stages": {"sft": {**STAGE, "tasks": {"vqa": 0.0}}}}, "stages.sft.tasks"),
        ({"stages": {"pretrain": {**STAGE, "tasks": {"sentiment": 1.0}}}}, "stages.pretrain.tasks"),
        ({"stages": {"sft": {**STAGE, "train_llm": "half"}}}, "stages.sft.train_llm"),
        ({"stages": {"pretrain": {**STAGE, "word_alignment": -1.0}}}, "stages.pretrain.word_alignment"),
        ({"stages": {"pretrain_text": {**STAGE, "word_alignment": 1.0}}}, "stages.pretrain_text.word_alignment"),
        ({"stages": {"sft": {**STAGE, "lerning_rate": 0.1}}}, "learning_rate"),
        ({"data": {"max_objects": 9}}, "data.max_objects"),
        ({"data": {"train_scenes": 0}}, "data.train_scenes"),
        ({"model": {"num_transmitter_layer": 2}}, "num_transmitter_layers"),
    ]
    for change, message in cases:
        with pytest.raises(ValueError, match=message):
            validate_recipe({**base, **change})


def test_text_pretraining_reads_scene_words_where_the_visual_tokens_go(tmp_path):
    """pretrain_text sends each image as its 16 cells' scene words (every object placed in a cell), summed per cell
    in place of the visual tokens; an image stage with `word_alignment` carries them as the visual tokens' targets."""
    recipe = {**json.loads(json.dumps(SMOKE_RECIPE)), "data": {**SMOKE_RECIPE["data"], "max_objects": 3}}
    recipe["stages"]["pretrain_text"] = {**STAGE, "tasks": {"vqa": 1.0}}
    recipe["stages"]["pretrain"] = {**STAGE, "word_alignment": 0.5, "tasks": {"caption": 1.0}}
    family = TaiChiStages.setup(recipe, None, tmp_path)
    tokenizer, corpus, model = family.processor.tokenizer, family.data, family.model
    text = family.batch("pretrain_text", 0, recipe["stages"]["pretrain_text"], 0, 1)
    assert "pixel_values" not in text and tuple(text["scene_word_ids"].shape) == (4, 16, 4)
    first = tokenizer.convert_ids_to_tokens(text["input_ids"][0][text["attention_mask"][0].bool()])
    assert first[:2] == ["observe", "the"]  # the instruction follows the 16 visual slots
    ids = text["scene_word_ids"]
    empty = tokenizer.convert_tokens_to_ids("empty")
    assert int(ids[ids >= 0].min()) > 2  # no pad, unk or eos: every scene word is in the vocabulary
    assert ((ids[..., 0] == empty) == (ids[..., 1] < 0)).all()  # a cell is ["empty"] or its 4 attribute words
    counts = corpus.scenes.num_objects[: len(corpus.images)]
    placed = [sum(cell != ["empty"] for cell in scene) for scene in corpus.scene_words(range(len(corpus.images)))]
    assert placed == counts.tolist()  # objects sharing a cell are moved to the nearest free one, none is lost
    # the text batch's loss is the model's on the summed word embeddings in the visual slot
    embeds = model.embed_text(ids.clamp_min(0)).mul((ids >= 0).unsqueeze(-1)).sum(-2)
    inputs = {k: v for k, v in text.items() if k != "scene_word_ids"}
    expected = model(**inputs, visual_embeds=embeds).loss
    torch.testing.assert_close(family.objective("pretrain_text")(**text), expected)
    assert not torch.allclose(expected, model(**inputs).loss)  # the description matters
    image = family.batch("pretrain", 0, recipe["stages"]["pretrain"], 0, 1)
    assert tuple(image["scene_word_ids"].shape) == (4, 16, 4) and "pixel_values" in image
    loss = family.objective("pretrain")(**image)
    assert loss.dim() == 0 and torch.isfinite(loss)
    without_ids = {k: v for k, v in image.items() if k != "scene_word_ids"}
    assert loss > family.objective("sft")(**without_ids)
    # the full-grid tokens are computed once and serve both the prompt and the alignment: the same loss as running
    # the image side twice
    from tokcom.training.objectives import word_alignment_loss
    from tokcom.training.stages_taichi import WORD_TEMPERATURE

    tokens = model.visual_tokens(image["pixel_values"], image["pixel_values_lr"], 16)
    embeddings = model.get_input_embeddings().weight * model.config.text_embedding_multiplier
    alignment = word_alignment_loss(tokens, image["scene_word_ids"], embeddings, WORD_TEMPERATURE)
    torch.testing.assert_close(loss, model(**without_ids).loss + 0.5 * alignment)


@pytest.mark.slow
def test_two_cpu_processes_train_a_taichi_stage_and_stay_identical(smoke_model, tmp_path, launch_two_processes):
    output, _ = smoke_model
    recipe = json.loads(json.dumps(SMOKE_RECIPE))
    recipe["stages"] = {"joint_coding": recipe["stages"]["joint_coding"]}
    log = launch_two_processes(recipe, tmp_path, "--init-model", str(output / "stages" / "separate_coding"))
    assert log["num_processes"] == 2 and log["stages"][0]["num_processes"] == 2
    assert log["rank_parameter_digests"][0] == log["rank_parameter_digests"][1]


def test_text_snr_db_keeps_the_question_clean_while_the_visual_link_is_swept(smoke_model, monkeypatch):
    from tokcom.training.evaluate_taichi import TaiChiEvaluator

    _, final = smoke_model
    evaluator = TaiChiEvaluator.from_checkpoint(final, num_samples=2, task="vqa", text_snr_db=float("inf"))
    seen = []
    original = evaluator.model.generate

    def spy(*args, **kwargs):
        seen.append(kwargs["snr_db"])
        return original(*args, **kwargs)

    monkeypatch.setattr(evaluator.model, "generate", spy)
    evaluator.predict(-30.0, "awgn", seed=0, progress=False)
    assert seen == [{"visual": -30.0, "text": float("inf")}]
    assert evaluator.header()["text_snr_db"] == float("inf")
    same = TaiChiEvaluator.from_checkpoint(final, num_samples=2, task="vqa")
    assert same.header()["text_snr_db"] == "same as visual"
    for bad in (-400.0, "inf", True):
        with pytest.raises(ValueError, match="text_snr_db"):
            TaiChiEvaluator.from_checkpoint(final, num_samples=2, task="vqa", text_snr_db=bad)


def test_build_default_evaluates_every_task_and_writes_the_card(smoke_model, tmp_path):
    from huggingface_hub import ModelCard

    from tokcom.training.build_default_taichi import build_default

    output, final = smoke_model
    summary = build_default("taichi_tiny", output, tmp_path / "results", install=False, skip_training=True, num_samples=2)
    assert set(summary["tasks"]) == {"vqa", "caption", "sentiment"}
    assert len(summary["tasks"]["vqa"]["results"]) == 12  # 6 SNRs x AWGN, Rayleigh
    assert summary["without_joint_coding"]["vqa"]["results"][0]["snr_db"] == -30.0
    visual_only = summary["vqa_visual_link_only"]["vqa"]
    assert visual_only["text_snr_db"] == float("inf") and [r["snr_db"] for r in visual_only["results"][:3]] == [-30.0, -10.0, 20.0]
    saved = json.loads((tmp_path / "results" / "evaluation.json").read_text())
    assert saved["tasks"]["caption"]["results"][0]["bleu4"] == summary["tasks"]["caption"]["results"][0]["bleu4"]
    card = ModelCard.load(final / "README.md")
    assert card.data.pipeline_tag == "visual-question-answering" and "build_default_taichi" in card.text
    assert "SNR on the visual link only" in card.text and "without joint coding" in card.text
    task_types = {result.task_type for result in card.data.eval_results}
    assert task_types == {"visual-question-answering", "image-to-text", "text-classification"}
    # the fitted phi of the visual link is in the config: the pipeline's network mode (the allocator) now works
    fit = summary["performance_model_fit"]
    assert [row["tokens"] for row in fit["measurements"]] == [1, 2, 4, 9, 16]
    assert TaiChiForConditionalGeneration.from_pretrained(final).config.performance_model == fit["performance_model"]
    import numpy as np
    from transformers import pipeline

    vqa = pipeline("token-comm-vqa", model=str(final))
    network = {"bandwidth_hz": 1e6, "power_dbm": 20.0, "weight": 0.5, "devices": [{"name": "visual", "distance_km": 0.3}]}
    out = vqa({"image": np.zeros((64, 64, 3), np.uint8), "question": "is there a cube?"}, network=network, seed=0)
    report = out["transmission"]
    assert report["method"] == "proposed" and 1 <= report["visual"]["tokens"] <= 16 and report["latency_s"] > 0


def test_docstrings_of_the_taichi_training_side_run():
    import doctest

    import tokcom.modeling.decoding as decoding
    import tokcom.modeling.lora as lora
    import tokcom.space as space
    import tokcom.training.evaluate_taichi as evaluate_taichi
    import tokcom.training.stages_taichi as stages_taichi
    import tokcom.training.taichi_corpus as taichi_corpus

    for module in (decoding, lora, space, evaluate_taichi, stages_taichi, taichi_corpus):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__


def test_attribute_recall_reads_noun_phrases():
    from tokcom.training.evaluate_taichi import attribute_recall, caption_metrics

    objects = [{"size": "large", "color": "red", "material": "rubber", "shape": "cube"},
               {"size": "small", "color": "blue", "material": "metal", "shape": "sphere"}]  # fmt: skip
    assert attribute_recall("Two objects on a gray floor: a large red matte cube, a small blue shiny sphere.", objects) == 1.0
    assert attribute_recall("a large blue cube and a sphere", objects) == 0.5  # wrong colour for the cube
    assert attribute_recall("Simple 3D shapes: cubes, spheres.", objects) == 1.0  # states no attribute wrongly
    assert attribute_recall("a red cylinder", objects) == 0.0
    caption = "one object on a gray floor: a large red rubber cube."
    perfect = caption_metrics([caption], [{"captions": [caption, "a red cube"], "objects": objects[:1]}])
    assert perfect == {"bleu4": pytest.approx(1.0), "attribute_recall": 1.0}
    wrong = caption_metrics(["two objects: a small blue metal sphere."], [{"captions": [caption], "objects": objects[:1]}])
    assert wrong["bleu4"] < 0.3 and wrong["attribute_recall"] == 0.0
    with pytest.raises(ValueError, match="predictions"):
        caption_metrics([], [])
