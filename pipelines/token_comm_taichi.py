"""TaiChi's pipelines: image question answering (`"token-comm-vqa"` with a TaiChi model), captioning
(`"token-comm-image-to-text"`) and sentence classification (`"token-comm-text-classification"`), each sending the
instruction, the user's text and (for the image tasks) the visual tokens through TaiChi's split VLM and its link.

>>> import numpy as np
>>> import tokcom  # registers the tasks
>>> from transformers import pipeline
>>> from tokcom.modeling import TaiChiConfig, TaiChiForConditionalGeneration
>>> from tokcom.modeling.processing_taichi import DEFAULT_INSTRUCTIONS, TaiChiProcessor
>>> from tokcom.training.tokenization import build_word_tokenizer
>>> tokenizer = build_word_tokenizer([*DEFAULT_INSTRUCTIONS.values(), "is there a red cube", "yes no", "positive"])
>>> model = TaiChiForConditionalGeneration(TaiChiConfig.tiny()).eval()
>>> vqa = pipeline("token-comm-vqa", model=model, processor=TaiChiProcessor(tokenizer))
>>> out = vqa({"image": np.zeros((64, 64, 3), np.uint8), "question": "is there a red cube?"}, snr_db=10.0, seed=0)
>>> sorted(out), sorted(out["transmission"])
(['answer', 'score', 'transmission'], ['channel_uses', 'latency_s', 'method', 'text', 'visual'])
>>> out["transmission"]["visual"]["tokens"]
16
"""

from __future__ import annotations

import os

import torch

from tokcom.modeling.media_io import load_image
from tokcom.modeling.processing_taichi import TaiChiProcessor

from .link_planner import LinkPlan
from .token_comm_base import FamilyProcessorPipeline, check_prompt_tokens, check_text

IMAGE_INPUT_KEYS = ("image",)
# the sentiment answers TaiChi is trained on, in label order: `tokcom.training.taichi_corpus.SENTIMENT_ANSWERS`
# (SST-2 label 0, 1), repeated here so that the pipelines do not import the training code
SENTIMENT_LABELS = ("negative", "positive")


def resolve_taichi_processor(model, processor, tokenizer) -> TaiChiProcessor:
    """The given processor (object or path), or `TaiChiProcessor.from_pretrained(model.name_or_path)`."""
    if isinstance(tokenizer, TaiChiProcessor) and processor is None:
        processor, tokenizer = tokenizer, None
    if tokenizer is not None:
        raise ValueError("Pass TaiChi's tokenizer inside `processor=` (a TaiChiProcessor), not as `tokenizer=`.")
    if processor is None:
        source = getattr(model, "name_or_path", None) or ""
        missing = ValueError(f"No TaiChiProcessor found at the model's `name_or_path` ({source!r}); pass `processor=`.")
        if not source:  # a model built in memory has no folder
            raise missing
        try:  # a damaged file there raises the processor's own ValueError naming it
            processor = TaiChiProcessor.from_pretrained(source)
        except OSError as error:
            raise missing from error
    elif isinstance(processor, (str, os.PathLike)):
        processor = TaiChiProcessor.from_pretrained(processor)
    if not isinstance(processor, TaiChiProcessor):
        raise ValueError(f"`processor` must be a TaiChiProcessor, got {type(processor).__name__}.")
    if len(processor.tokenizer) > model.config.text_config.vocab_size:
        raise ValueError(
            f"The tokenizer has {len(processor.tokenizer)} tokens but the model's vocabulary only "
            f"{model.config.text_config.vocab_size}: they do not belong together."
        )
    return processor


class TaiChiPipeline(FamilyProcessorPipeline):
    """One TaiChi task (`taichi_task`) as a pipeline; see the subclasses for inputs and outputs. Link parameters:
    `snr_db` (number, or `{"visual", "text"}`), `num_visual_tokens` (in `[1, max_visual_tokens]`, the pooled BAN
    grid may send fewer), `network` + `method` (the allocator, needs a fitted `performance_model`),
    `channel_type`, `seed`, `max_new_tokens` (default `config.max_new_tokens[task]`)."""

    taichi_task = ""
    input_keys: tuple[str, ...] = ()
    output_key = ""

    model_type = "taichi"
    model_class_name = "TaiChiForConditionalGeneration"
    resolve_processor = staticmethod(resolve_taichi_processor)

    def read_input(self, inputs) -> dict:
        """One input, checked: `{"image": uint8 (H, W, 3)}` and/or `{"text": str}`."""
        inputs = self.input_fields(inputs, self.input_keys)
        item = {}
        for key in self.input_keys:
            if key == "image":
                item["image"] = load_image(inputs["image"], name="image")
            else:
                item["text"] = check_text(inputs[key], key)
        return item

    def featurize(self, items: list) -> dict:
        texts = [item["text"] for item in items] if "text" in items[0] else None
        images = [item["image"] for item in items] if "image" in items[0] else None
        batch = self.processor(task=self.taichi_task, images=images, text=texts)
        config = self.model.config
        limit = config.text_config.max_position_embeddings - config.max_visual_tokens - config.max_new_tokens[self.taichi_task]
        field = self.input_keys[-1]
        counts = batch["attention_mask"].sum(dim=1)
        if texts is not None:
            check_prompt_tokens(self.processor.tokenizer, texts, batch["input_ids"], batch["attention_mask"],
                                max(1, limit), field)  # fmt: skip
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "prompt_tokens": counts}
        if images is not None:
            inputs["pixel_values"] = batch["pixel_values"].to(self.dtype)
            inputs["pixel_values_lr"] = batch["pixel_values_lr"].to(self.dtype)
        return inputs

    def _forward(self, model_inputs, links=None, channel_type=None, seed=None, max_new_tokens=None) -> dict:
        inputs = {k: v for k, v in model_inputs.items() if k != "prompt_tokens"}
        out = self.model.generate(**inputs, links=links, generator=self.generator(seed), channel_type=channel_type,
                                  task=self.taichi_task, max_new_tokens=max_new_tokens, return_dict_in_generate=True)  # fmt: skip
        batch = out.sequences.shape[0]
        return {"sequences": out.sequences, "scores": out.sequence_scores, "prompt_tokens": model_inputs["prompt_tokens"],
                "visual_tokens": torch.full((batch,), out.num_visual_tokens)}  # fmt: skip

    def postprocess(self, model_outputs, plan: LinkPlan) -> dict:
        tokens = {"text": int(model_outputs["prompt_tokens"].reshape(-1)[0]),
                  "visual": int(model_outputs["visual_tokens"].reshape(-1)[0])}  # fmt: skip
        return {
            self.output_key: self.processor.batch_decode(model_outputs["sequences"])[0],
            "score": float(model_outputs["scores"].reshape(-1)[0]),
            "transmission": plan.report(tokens, self.model.config.channel_symbols_per_token),
        }


class TaiChiVQAPipeline(TaiChiPipeline):
    """`pipeline("token-comm-vqa", model=TAICHI)`: input `{"image": path | PIL | uint8 (H, W, 3), "question": str}`;
    output `{"answer", "score" (probability of the greedy answer), "transmission"}`."""

    task_name = "token-comm-vqa"
    taichi_task = "vqa"
    input_keys = ("image", "question")
    output_key = "answer"


class TokenCommImageToTextPipeline(TaiChiPipeline):
    """`pipeline("token-comm-image-to-text")`: input an image (path, PIL, uint8 array) or `{"image": ...}`; output
    `{"generated_text", "score", "transmission"}` (transformers' image-to-text key)."""

    task_name = "token-comm-image-to-text"
    taichi_task = "caption"
    input_keys = IMAGE_INPUT_KEYS
    output_key = "generated_text"


class TokenCommTextClassificationPipeline(TaiChiPipeline):
    """`pipeline("token-comm-text-classification")`: input a sentence or `{"text": ...}`; the sentence alone crosses
    the text link; output `{"label", "score", "transmission"}`.

    A classifier, not free generation: the prompt crosses the link as in `generate` (same links, same noise draw for
    a given `seed`), the receiver's distribution over the first answer token is restricted to the label words
    (`SENTIMENT_LABELS`, each one token of the model's tokenizer), `label` is their argmax and `score` its softmax
    probability among them, in `(0, 1]`. `max_new_tokens` is checked but unused: one answer token decides.
    """

    task_name = "token-comm-text-classification"
    taichi_task = "sentiment"
    input_keys = ("text",)
    output_key = "label"
    labels = SENTIMENT_LABELS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.label_ids = label_token_ids(self.processor.tokenizer, self.labels)

    def _forward(self, model_inputs, links=None, channel_type=None, seed=None, max_new_tokens=None) -> dict:
        inputs = {k: v for k, v in model_inputs.items() if k != "prompt_tokens"}
        out = self.model.generate(**inputs, links=links, generator=self.generator(seed), channel_type=channel_type,
                                  task=self.taichi_task, max_new_tokens=1, return_dict_in_generate=True)  # fmt: skip
        first = out.scores[0]  # (batch, vocab) logits of the first answer token
        label_logits = first[:, torch.as_tensor(self.label_ids, device=first.device)].float()
        batch = label_logits.shape[0]
        return {"label_probs": label_logits.softmax(dim=-1), "prompt_tokens": model_inputs["prompt_tokens"],
                "visual_tokens": torch.full((batch,), out.num_visual_tokens)}  # fmt: skip

    def postprocess(self, model_outputs, plan: LinkPlan) -> dict:
        probs = model_outputs["label_probs"].reshape(-1, len(self.labels))[0]
        best = int(probs.argmax())
        tokens = {"text": int(model_outputs["prompt_tokens"].reshape(-1)[0]),
                  "visual": int(model_outputs["visual_tokens"].reshape(-1)[0])}  # fmt: skip
        return {
            "label": self.labels[best],
            "score": float(probs[best]),
            "transmission": plan.report(tokens, self.model.config.channel_symbols_per_token),
        }


def label_token_ids(tokenizer, labels) -> list[int]:
    """The one token id of each label word; `ValueError` naming a word that is not exactly one known token."""
    ids = []
    for label in labels:
        encoded = tokenizer(label, add_special_tokens=False)["input_ids"]
        if len(encoded) != 1 or encoded[0] == tokenizer.unk_token_id:
            raise ValueError(f"The label word {label!r} is not one token of the model's tokenizer (it encodes to "
                             f"{encoded}): the classifier scores each label as one answer token.")  # fmt: skip
        ids.append(encoded[0])
    return ids


__all__ = ["SENTIMENT_LABELS", "TaiChiPipeline", "TaiChiVQAPipeline", "TokenCommImageToTextPipeline",
           "TokenCommTextClassificationPipeline", "label_token_ids", "resolve_taichi_processor"]  # fmt: skip
