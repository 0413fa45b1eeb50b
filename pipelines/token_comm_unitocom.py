"""UniToCom's pipelines (`unitocom-genib.txt`, Fig. 1): image question answering (`"token-comm-vqa"` with a UniToCom
model), text-to-image (`"token-comm-text-to-image"`) and speech recognition (`"token-comm-asr"`) with
[`UniToComModel`]. In each, the device is the user that holds the data and the base station runs the latent MLLM:

| task | device (sends) | crosses the channel | base station generates |
|------|----------------|---------------------|------------------------|
| `token-comm-vqa` | the image and the question | the image's S_v continuous tokens (tokenizer F_v, adaptive coding-modulation T, fading channel, R: the `image` link) and the question's text ids (`text` link) | the answer text (LM head, eq. 15) |
| `token-comm-text-to-image` | the caption | the caption's text ids (`text` link) | S_v image tokens by next-token diffusion (eq. 17), decoded by the de-tokenizer F_v^{-1} into the image (eq. 3) |
| `token-comm-asr` | the speech | the audio tokens (F_a, T, channel, R: the `audio` link), `num_audio_windows` windows of S_a tokens | the transcript (LM head) |

The text link is an ideal digital link (as in [`UniToComModel`]: a text link over the channel is not modelled yet):
its ids arrive as sent, so `snr_db` does not change a generated image; its tokens are reported, but not counted in
`channel_uses`. The generated image stays at the base station (no downlink is simulated).

Parameters beyond the shared ones ([`TokenCommPipeline`]): `num_image_tokens` (VQA) / `num_audio_tokens` (ASR, per
window) send only the first tokens of each S_m (the base station puts 0, the sigma-GenIB prior mean, in place of
those not sent; the learned coder still codes all S_m, so channel noise is drawn for all of them);
`num_symbols_per_token` (the adaptive link's channel uses per token, among the tokenizer's
`link_symbols_per_token_choices`; default the largest); `num_inference_steps` (text-to-image solver steps per
token). `network` goes to the allocator like the other families', and needs a fitted `performance_model` in the
config, which UniToCom checkpoints do not have yet (a clear `ValueError` says so).

Example (a tiny untrained model, built in memory; answers, transcripts and images are noise until a trained default
exists):

>>> import numpy as np
>>> import tokcom  # registers the tasks
>>> from transformers import pipeline
>>> from tokcom.modeling import UniToComConfig, UniToComModel
>>> from tokcom.modeling.processing_unitocom import UniToComProcessor
>>> from tokcom.training.tokenization import build_word_tokenizer
>>> config = UniToComConfig.tiny(image_tokenizer_config={"num_tokens": 4}, audio_tokenizer_config={"num_tokens": 2})
>>> model = UniToComModel(config).eval()
>>> processor = UniToComProcessor.from_model_config(config, build_word_tokenizer(["is there a red cube"]),
...                                                 num_audio_windows=1)
>>> vqa = pipeline("token-comm-vqa", model=model, processor=processor)
>>> out = vqa({"image": np.zeros((32, 32, 3), np.uint8), "question": "is there a red cube"}, snr_db=10.0, seed=0,
...           max_new_tokens=2)
>>> sorted(out), out["transmission"]["image"]["tokens"], out["transmission"]["text"]["tokens"]
(['answer', 'score', 'transmission'], 4, 5)
>>> out["transmission"]["channel_uses"]       # 4 image tokens x 8 channel uses (the largest choice)
32
>>> draw = pipeline("token-comm-text-to-image", model=model, processor=processor)
>>> draw("a red cube", seed=0, num_inference_steps=2)["image"].size
(32, 32)
>>> asr = pipeline("token-comm-asr", model=model, processor=processor)
>>> asr({"array": np.zeros(8000, np.float32), "sampling_rate": 16000}, seed=0, max_new_tokens=2)["transmission"]["audio"]["tokens"]
2
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from huggingface_hub.errors import HFValidationError

from tokcom.modeling.processing_unitocom import UniToComProcessor

from .link_planner import LinkPlan
from .token_comm_base import FamilyProcessorPipeline, check_integer, check_prompt_tokens

BITS_PER_TOKEN_ELEMENT = 16  # q = 16 bits x token_dim per continuous token (eq. 14 of the TokCom letter; `network`)
TASK_LINKS = {"vqa": ("image", "text"), "text_to_image": ("text",), "asr": ("audio",)}


@dataclass(frozen=True)
class UniToComLinks:
    """What the link planner reads for one UniToCom task (`tokcom.pipelines.link_planner`): its links in prompt order,
    the continuous links' token maxima S_m, the default channel, q and the fitted performance model (if any)."""

    link_names: tuple
    max_tokens_per_link: dict
    channel_config: object
    bits_per_token: int
    performance_model: dict | None = None


def resolve_unitocom_processor(model, processor, tokenizer) -> UniToComProcessor:
    """The given processor (object or folder), or the one in the model's folder (`name_or_path`; a training checkpoint
    without `processor_config.json` gets the model config's settings); checked against the model's config
    (`UniToComProcessor.check_model_config`)."""
    if isinstance(tokenizer, UniToComProcessor) and processor is None:
        processor, tokenizer = tokenizer, None
    if tokenizer is not None:
        raise ValueError("Pass UniToCom's tokenizer inside `processor=` (a UniToComProcessor), not as `tokenizer=`.")
    model_config = None
    if processor is None:
        processor, model_config = getattr(model, "name_or_path", None) or "", model.config
        if not processor:  # a model built in memory has no folder
            raise ValueError("The model has no folder (`name_or_path`) to load a UniToComProcessor from; pass `processor=`.")
    if isinstance(processor, (str, os.PathLike)):
        try:  # a damaged file there raises the processor's own ValueError naming it
            processor = UniToComProcessor.from_pretrained(processor, model_config=model_config)
        except (OSError, HFValidationError) as error:  # no such folder (a local path is no valid repo id either)
            raise ValueError(f"No UniToComProcessor found in {str(processor)!r}; pass `processor=`.") from error
    if not isinstance(processor, UniToComProcessor):
        raise ValueError(f"`processor` must be a UniToComProcessor, got {type(processor).__name__}.")
    processor.check_model_config(model.config)
    return processor


class UniToComPipeline(FamilyProcessorPipeline):
    """One UniToCom task (`unitocom_task`) as a pipeline; see the module docstring and the subclasses."""

    unitocom_task = ""
    input_keys: tuple[str, ...] = ()
    continuous = None  # the task's continuous uplink: "image", "audio" or None

    model_type = "unitocom"
    model_class_name = "UniToComModel"
    resolve_processor = staticmethod(resolve_unitocom_processor)

    # ------------------------------------------------------------------ parameters

    def link_config(self) -> UniToComLinks:
        config = self.model.config
        names = TASK_LINKS[self.unitocom_task]
        maxima = {name: self.model.tokenizer(name).config.num_tokens for name in names if name != "text"}
        bits = BITS_PER_TOKEN_ELEMENT * config.image_tokenizer_config.token_dim
        return UniToComLinks(names, maxima, config.channel_config, bits, getattr(config, "performance_model", None))

    def check_family_parameters(self, values: dict) -> tuple[dict, dict]:
        forward, postprocess = {}, {}
        if "num_symbols_per_token" in values:
            choices = self.model.tokenizer(self.continuous).config.link_symbols_per_token_choices
            k = values["num_symbols_per_token"]
            if isinstance(k, bool) or k not in choices:
                raise ValueError(f"`num_symbols_per_token` must be one of {choices} (the {self.continuous} link's "
                                 f"rates), got {k!r}.")  # fmt: skip
            forward["num_symbols_per_token"] = postprocess["num_symbols_per_token"] = int(k)
        if "num_inference_steps" in values:
            forward["num_inference_steps"] = check_integer(values["num_inference_steps"], "num_inference_steps", 1,
                                                           self.model.config.num_train_timesteps)  # fmt: skip
        return forward, postprocess

    # ------------------------------------------------------------------ inputs

    def read_input(self, inputs) -> dict:
        """One input, checked and bounded by the processor: `{"image": uint8 (H, W, 3)}`, `{"text": str}`,
        `{"audio": float32 (samples,)}`."""
        if isinstance(inputs, dict) and self.continuous == "audio" and "audio" not in inputs:
            inputs = {"audio": inputs}  # a speech dict ({"array", "sampling_rate"} / {"path"}) is the audio itself
        inputs = self.input_fields(inputs, self.input_keys, optional=("sampling_rate",))
        item = {}
        for key in self.input_keys:
            if key == "sampling_rate":
                continue
            if key == "image":
                item["image"] = self.processor.read_image(inputs["image"], name="image")
            elif key == "audio":
                item["audio"] = self.processor.read_audio(inputs["audio"], inputs.get("sampling_rate"), name="audio")
            else:
                item["text"] = self.processor.check_text(inputs[key], key)
        return item

    def featurize(self, items: list) -> dict:
        processor, config = self.processor, self.model.config
        texts = [item["text"] for item in items] if "text" in items[0] else None
        batch = processor(
            task=self.unitocom_task, text=texts, images=[item["image"] for item in items] if self.continuous == "image" else None,
            audio=[item["audio"] for item in items] if self.continuous == "audio" else None,
            sampling_rate=processor.sampling_rate if self.continuous == "audio" else None,
        )  # fmt: skip
        if texts is not None:  # what fits in the positions beside the image tokens (and the answer)
            used = processor.num_image_tokens + (config.max_new_tokens if self.unitocom_task == "vqa" else 0)
            limit = max(1, config.text_config.max_position_embeddings - used)
            check_prompt_tokens(processor.tokenizer, texts, batch["input_ids"], batch["attention_mask"], limit,
                                self.input_keys[-1], counted=batch["text_tokens"])  # fmt: skip
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
                  "text_tokens": batch["text_tokens"]}  # fmt: skip
        for key in ("pixel_values", "input_features"):
            if key in batch:
                inputs[key] = batch[key].to(self.dtype)
        return inputs

    # ------------------------------------------------------------------ the link

    def receive(self, inputs: torch.Tensor, links: dict, channel_type, num_symbols_per_token, generator) -> torch.Tensor:
        """The continuous tokens the base station reads `(batch, tokens, token_dim)` (`UniToComModel.receive` with
        this call's link: its SNR and token budget)."""
        link = links[self.continuous]
        return self.model.receive(self.continuous, inputs, link.snr_db, channel_type, link.num_tokens,
                                  num_symbols_per_token, generator)  # fmt: skip

    def report(self, model_outputs, plan: LinkPlan, num_symbols_per_token=None) -> dict:
        """The transmission report: per link, the slowest link's latency, and `channel_uses` = tokens sent on the
        continuous link x its channel uses per token (the ideal text link is not counted)."""
        counts = {"text": int(model_outputs["text_tokens"].reshape(-1)[0])} if "text" in plan.records else {}
        if self.continuous is not None:
            k = num_symbols_per_token or max(self.model.tokenizer(self.continuous).config.link_symbols_per_token_choices)
            per_input = plan.records[self.continuous]["tokens"] * (
                self.processor.num_audio_windows if self.continuous == "audio" else 1)  # fmt: skip
            counts[self.continuous] = per_input
        report = plan.report(counts, 0)
        report["channel_uses"] = counts[self.continuous] * k if self.continuous is not None else 0
        return report


class UniToComUnderstandingPipeline(UniToComPipeline):
    """The tasks whose media cross the link and whose output is text (VQA, ASR): received tokens -> `generate_text`
    (greedy, eq. 15) -> `{output_key, "score", "transmission"}`."""

    output_key = ""
    family_parameters = ("num_symbols_per_token",)

    def _forward(self, model_inputs, links=None, channel_type=None, seed=None, max_new_tokens=None,
                 num_symbols_per_token=None) -> dict:  # fmt: skip
        media = model_inputs["pixel_values" if self.continuous == "image" else "input_features"]
        tokens = self.receive(media, links, channel_type, num_symbols_per_token, self.generator(seed))
        out = self.model.generate_text(model_inputs["input_ids"], model_inputs["attention_mask"],
                                       max_new_tokens=max_new_tokens, return_dict_in_generate=True,
                                       **{f"{self.continuous}_tokens": tokens})  # fmt: skip
        return {"sequences": out.sequences, "scores": out.sequence_scores, "text_tokens": model_inputs["text_tokens"]}

    def postprocess(self, model_outputs, plan: LinkPlan, num_symbols_per_token=None) -> dict:
        return {self.output_key: self.processor.batch_decode(model_outputs["sequences"])[0],
                "score": float(model_outputs["scores"].reshape(-1)[0]),
                "transmission": self.report(model_outputs, plan, num_symbols_per_token)}  # fmt: skip


class UniToComVQAPipeline(UniToComUnderstandingPipeline):
    """`pipeline("token-comm-vqa", model=UNITOCOM)`: input `{"image": path | PIL | uint8 (H, W, 3), "question": str}`;
    output `{"answer", "score" (probability of the greedy answer), "transmission"}`. Links: `image`, `text`."""

    task_name = "token-comm-vqa"
    unitocom_task = "vqa"
    input_keys = ("image", "question")
    continuous = "image"
    output_key = "answer"


class TokenCommASRPipeline(UniToComUnderstandingPipeline):
    """`pipeline("token-comm-asr")`: input speech (a `.wav` path, `{"array", "sampling_rate"}` / `{"path"}`, or
    `{"audio": array, "sampling_rate": rate}`; arrays at the audio tokenizer's rate, at most
    `processor.max_audio_samples`); output `{"text" (the transcript), "score", "transmission"}`. Link: `audio`
    (`num_audio_tokens` per window)."""

    task_name = "token-comm-asr"
    unitocom_task = "asr"
    input_keys = ("audio", "sampling_rate")
    continuous = "audio"
    output_key = "text"


class TokenCommTextToImagePipeline(UniToComPipeline):
    """`pipeline("token-comm-text-to-image")`: input a caption or `{"text": caption}`; output `{"image" (a PIL RGB
    image of the image tokenizer's size), "transmission"}`. Link: `text` (ideal). `seed` seeds the diffusion
    sampler; `num_inference_steps` (default `config.num_inference_steps`) sets its solver steps per token."""

    task_name = "token-comm-text-to-image"
    unitocom_task = "text_to_image"
    input_keys = ("text",)
    family_parameters = ("num_inference_steps",)

    def _forward(self, model_inputs, links=None, channel_type=None, seed=None, max_new_tokens=None,
                 num_inference_steps=None) -> dict:  # fmt: skip
        if max_new_tokens is not None:
            raise ValueError("`max_new_tokens` is for text answers; text-to-image generates S_v image tokens "
                             "(set `num_inference_steps` for the diffusion sampler).")  # fmt: skip
        images = self.model.generate_image(model_inputs["input_ids"], model_inputs["attention_mask"],
                                           num_inference_steps=num_inference_steps, generator=self.generator(seed))  # fmt: skip
        return {"images": images, "text_tokens": model_inputs["text_tokens"]}

    def postprocess(self, model_outputs, plan: LinkPlan) -> dict:
        return {"image": self.processor.postprocess_images(model_outputs["images"])[0],
                "transmission": self.report(model_outputs, plan)}  # fmt: skip


__all__ = ["TASK_LINKS", "TokenCommASRPipeline", "TokenCommTextToImagePipeline", "UniToComLinks", "UniToComPipeline",
           "UniToComUnderstandingPipeline", "UniToComVQAPipeline", "resolve_unitocom_processor"]  # fmt: skip
