"""TaiChi's pipelines: token-comm-vqa (image + question), token-comm-image-to-text, token-comm-text-classification:
outputs and transmission reports, batching equal to one-by-one, loading from a folder, and bad inputs."""

from __future__ import annotations

import doctest
import warnings

import numpy as np
import pytest
import torch
from transformers import pipeline

import tokcom  # noqa: F401  (registers the tasks)
import tokcom.pipelines.token_comm_taichi as token_comm_taichi
from tokcom.modeling import TaiChiConfig, TaiChiForConditionalGeneration
from tokcom.modeling.processing_taichi import DEFAULT_INSTRUCTIONS, TaiChiProcessor
from tokcom.pipelines.token_comm_base import UnknownWordsWarning
from tokcom.pipelines.token_comm_taichi import TaiChiVQAPipeline
from tokcom.training.tokenization import build_word_tokenizer

WORDS = ["is there a red cube", "how many spheres are there", "yes no two", "a good film", "a dull plot",
         "positive negative"]  # fmt: skip


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("taichi")
    torch.manual_seed(0)
    TaiChiForConditionalGeneration(TaiChiConfig.tiny()).save_pretrained(folder)
    TaiChiProcessor(build_word_tokenizer([*DEFAULT_INSTRUCTIONS.values(), *WORDS])).save_pretrained(folder)
    return folder


def _image(seed):
    return np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)


def test_docstring_runs():
    assert doctest.testmod(token_comm_taichi).failed == 0


def test_three_tasks_answer_with_their_transmission_reports(saved):
    vqa = pipeline("token-comm-vqa", model=str(saved))
    assert isinstance(vqa, TaiChiVQAPipeline)
    out = vqa({"image": _image(0), "question": "is there a red cube?"}, snr_db=5.0, num_visual_tokens=4, seed=0)
    assert set(out) == {"answer", "score", "transmission"} and 0 <= out["score"] <= 1
    report = out["transmission"]
    assert report["visual"]["tokens"] == 4 and report["visual"]["snr_db"] == 5.0
    prompt = vqa.processor(task="vqa", images=[_image(0)], text=["is there a red cube?"])["attention_mask"].sum()
    assert report["text"]["tokens"] == int(prompt)
    assert report["channel_uses"] == (4 + int(prompt)) * vqa.model.config.channel_symbols_per_token
    caption = pipeline("token-comm-image-to-text", model=str(saved))(_image(1), snr_db=10.0, seed=0)
    assert isinstance(caption["generated_text"], str) and caption["transmission"]["visual"]["tokens"] == 16
    classify = pipeline("token-comm-text-classification", model=str(saved))
    label = classify("a good film", snr_db={"visual": 0.0, "text": 12.0}, channel_type="rayleigh", seed=0)
    assert set(label) == {"label", "score", "transmission"}
    assert label["transmission"]["visual"]["tokens"] == 0 and label["transmission"]["text"]["snr_db"] == 12.0


def test_batching_gives_the_one_by_one_answers(saved):
    vqa = pipeline("token-comm-vqa", model=str(saved))
    inputs = [{"image": _image(k), "question": q} for k, q in enumerate(["is there a red cube?", "how many spheres are there?",
                                                                        "is there a cube?", "how many are there?"])]  # fmt: skip
    one = [vqa(x, snr_db=float("inf")) for x in inputs]
    batched = vqa(inputs, snr_db=float("inf"), batch_size=4)
    assert [o["answer"] for o in one] == [b["answer"] for b in batched]
    np.testing.assert_allclose([o["score"] for o in one], [b["score"] for b in batched], rtol=1e-3, atol=1e-5)
    assert [o["transmission"]["text"]["tokens"] for o in one] == [b["transmission"]["text"]["tokens"] for b in batched]


def test_text_classification_scores_only_the_label_words(saved):
    """The classifier answers one of the label words, never free text (an untrained model generates any word): the
    argmax of the first answer token's distribution restricted to them, `score` its probability among them, the same
    in a batch as one at a time."""
    from tokcom.training.taichi_corpus import SENTIMENT_ANSWERS

    classify = pipeline("token-comm-text-classification", model=str(saved))
    sentences = ["a good film", "a dull plot", "a good plot", "a dull film"]
    one = [classify(s, snr_db=float("inf")) for s in sentences]
    batched = classify(sentences, snr_db=float("inf"), batch_size=4)
    for out in one + batched:
        assert set(out) == {"label", "score", "transmission"}
        assert out["label"] in SENTIMENT_ANSWERS and 0.5 <= out["score"] <= 1
    assert [o["label"] for o in one] == [b["label"] for b in batched]
    np.testing.assert_allclose([o["score"] for o in one], [b["score"] for b in batched], rtol=1e-4, atol=1e-6)
    # by hand: the first answer token's logits over the link, softmax over the label words' ids
    tokenizer = classify.processor.tokenizer
    ids = tokenizer.convert_tokens_to_ids(list(SENTIMENT_ANSWERS))
    batch = classify.processor(task="sentiment", text=[sentences[0]])
    noisy = classify("a good film", snr_db=3.0, seed=5)
    for snr_db, seed, out in ((float("inf"), None, one[0]), (3.0, 5, noisy)):
        logits = classify.model.generate(**batch, snr_db=snr_db, task="sentiment", max_new_tokens=1,
                                         generator=None if seed is None else torch.Generator().manual_seed(seed),
                                         return_dict_in_generate=True).scores[0][0, ids]  # fmt: skip
        probs = logits.softmax(-1)
        assert out["label"] == SENTIMENT_ANSWERS[int(probs.argmax())]
        assert out["score"] == pytest.approx(float(probs.max()), rel=1e-5)
    assert token_comm_taichi.SENTIMENT_LABELS == SENTIMENT_ANSWERS  # the pipeline's copy of the trained answers
    # a vocabulary without the label words is refused at construction
    instructions = [DEFAULT_INSTRUCTIONS["vqa"], DEFAULT_INSTRUCTIONS["caption"], "a good film"]
    assert not any("negative" in text for text in instructions)
    with pytest.raises(ValueError, match="label word 'negative' is not one token"):
        pipeline("token-comm-text-classification", model=TaiChiForConditionalGeneration(TaiChiConfig.tiny()),
                 processor=TaiChiProcessor(build_word_tokenizer(instructions)))  # fmt: skip


def test_bad_inputs_get_one_clear_message(saved):
    vqa = pipeline("token-comm-vqa", model=str(saved))
    good = {"image": _image(0), "question": "is there a red cube?"}
    cases = [
        ({"image": _image(0)}, {}, "question"),
        ({**good, "audio": 1}, {}, "Unknown input key"),
        ([], {}, "empty list"),
        ({**good, "question": "cube " * 300}, {}, "characters"),
        ({**good, "question": "   "}, {}, "question"),
        ({**good, "image": np.zeros((5000, 5000, 3), np.uint8)}, {}, "image"),
        (good, {"num_visual_tokens": 17}, "num_visual_tokens"),
        (good, {"snr_db": float("nan")}, "snr_db"),
        (good, {"channel_type": "fiber"}, "channel_type"),
        (good, {"num_audio_tokens": 3}, "Unknown argument"),
        (good, {"network": {"bandwidth_hz": 1e6, "power_dbm": 20, "weight": 0.5,
                            "devices": [{"name": "visual", "distance_km": 0.3}]}}, "performance_model"),
    ]  # fmt: skip
    for inputs, kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            vqa(inputs, **kwargs)
    with pytest.warns(UnknownWordsWarning, match="zebra"):
        vqa({**good, "question": "is there a zebra?"})
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownWordsWarning)
        vqa(good)
    with pytest.raises(ValueError, match="TaiChiForConditionalGeneration"):
        TaiChiVQAPipeline(model=torch.nn.Linear(1, 1))
    with pytest.raises(ValueError, match="TaiChiProcessor"):
        pipeline("token-comm-image-to-text", model=TaiChiForConditionalGeneration(TaiChiConfig.tiny()))


def test_embedded_default_serves_the_three_tasks():
    """The shipped `taichi-tiny` is the default of the TaiChi-only tasks and classifies held-out sentences (measured
    1.0 on 500 at 20 dB, `results/taichi_default/`); its VQA answers are of the question's answer type."""
    from tokcom import defaults
    from tokcom.training.evaluate_taichi import model_recipe
    from tokcom.training.taichi_corpus import SENTIMENT_ANSWERS, TaiChiCorpus

    folder = defaults.CHECKPOINTS_DIR / "taichi-tiny"
    assert (folder / "config.json").is_file(), f"the embedded TaiChi default is missing at {folder}"
    recipe = model_recipe(folder)
    data = {**recipe["data"], "train_scenes": 4, "test_scenes": 8, "sentiment_sentences": 160, "seed": recipe["seed"]}
    test = TaiChiCorpus.build(data, "test")  # the held-out split's generator (sizes cut for speed)
    classify = pipeline("token-comm-text-classification", device="cpu")
    assert classify.model.name_or_path == str(folder)
    out = classify(test.sentences[:20], snr_db=20.0, seed=0, batch_size=10)
    truth = [SENTIMENT_ANSWERS[y] for y in test.sentiment_labels[:20]]
    assert np.mean([o["label"] == t for o, t in zip(out, truth)]) >= 0.9
    caption = pipeline("token-comm-image-to-text", device="cpu")(test.images[0], snr_db=20.0, seed=0)
    assert isinstance(caption["generated_text"], str) and caption["generated_text"].strip()
    vqa = pipeline("token-comm-vqa", model=str(folder), device="cpu")
    rows = [q for q in test.questions if q["family"] in ("exist", "count", "query_shape")][:12]
    answers = vqa([{"image": test.images[q["image_index"]], "question": q["question"]} for q in rows], snr_db=20.0, seed=0)
    allowed = {"exist": {"yes", "no"}, "count": {str(n) for n in range(11)}, "query_shape": {"cube", "sphere", "cylinder"}}
    assert all(a["answer"] in allowed[q["family"]] for a, q in zip(answers, rows))
