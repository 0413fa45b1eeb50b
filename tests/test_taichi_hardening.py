"""Issue 17 for TaiChi's pipelines: `max_new_tokens` is bounded before decoding (a model that never emits eos
decoded for as long as asked, its cache growing)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import pipeline

import tokcom  # noqa: F401  (registers the tasks)
from tokcom.modeling import TaiChiConfig, TaiChiForConditionalGeneration
from tokcom.modeling.processing_taichi import DEFAULT_INSTRUCTIONS, TaiChiProcessor
from tokcom.training.tokenization import build_word_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("taichi")
    torch.manual_seed(0)
    TaiChiForConditionalGeneration(TaiChiConfig.tiny()).save_pretrained(folder)
    TaiChiProcessor(build_word_tokenizer([*DEFAULT_INSTRUCTIONS.values(), "a good film"])).save_pretrained(folder)
    return folder


def test_max_new_tokens_beyond_the_context_is_refused_before_decoding(saved):
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    caption = pipeline("token-comm-image-to-text", model=str(saved))
    sentiment = pipeline("token-comm-text-classification", model=str(saved))
    positions = caption.model.config.text_config.max_position_embeddings
    for pipe, inputs in ((caption, image), (sentiment, "a good film")):
        with pytest.raises(ValueError, match=rf"`max_new_tokens` must be an integer in \[1, {positions}\]"):
            pipe(inputs, max_new_tokens=positions + 1)
    assert "generated_text" in caption(image, max_new_tokens=2, seed=0)


def test_empty_inputs_are_refused_naming_the_argument(saved):
    processor = TaiChiProcessor.from_pretrained(saved)
    with pytest.raises(ValueError, match="`images` must hold at least one image"):
        processor(task="vqa", images=[], text=["is there a cube ?"])
    with pytest.raises(ValueError, match="needs `text`: at least one string"):
        processor(task="sentiment", text=[])


def test_large_images_are_resized_one_at_a_time_with_the_same_result(saved, monkeypatch):
    import tokcom.modeling.processing_taichi as processing_taichi

    processor = TaiChiProcessor.from_pretrained(saved)
    images = list(np.random.default_rng(1).integers(0, 256, (3, 48, 48, 3), dtype=np.uint8))
    batched = processor.process_images(images)
    calls = []
    original = processor.image_tensors
    monkeypatch.setattr(processor, "image_tensors", lambda x: calls.append(x.shape[0]) or original(x))
    monkeypatch.setattr(processing_taichi, "BATCHED_RESIZE_MAX_PIXELS", 48 * 48 - 1)
    one_by_one = processor.process_images(images)
    assert calls == [1, 1, 1]  # never the whole batch as one float tensor
    for a, b in zip(batched, one_by_one):
        torch.testing.assert_close(a, b)
