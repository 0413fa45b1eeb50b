"""One registry of model families and pipeline tasks, read by `import tokcom` (Auto classes, pipeline tasks), the
Hub exporter (`auto_map`, `custom_pipelines`, which code files to ship), the training and evaluation engines, the
cards and the Space.

Pure data: classes are named by dotted path and imported only when used, so reading the registry imports neither
torch nor transformers.

>>> FAMILIES["tokcom"].model_class
'tokcom.modeling.modeling_tokcom.TokComForAVQA'
>>> TASKS["token-comm-vqa"].families
('tokcom', 'taichi', 'unitocom')
>>> family_for_model_type("tokcom").name
'tokcom'
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Family:
    """A model family: its config and model classes (dotted paths), the Auto classes it registers with, its
    processor, the pipeline tasks it serves and its embedded default checkpoint (a folder name in
    `tokcom/checkpoints`, or None)."""

    name: str
    model_type: str
    config_class: str
    model_class: str
    auto_classes: tuple[str, ...] = ("AutoModel",)
    processor_class: str | None = None
    tasks: tuple[str, ...] = ()
    default_checkpoint: str | None = None
    stages_module: str | None = None  # training stages (`tokcom.training.stages_<family>`)
    evaluator_class: str | None = None  # the evaluation engine's `Evaluator` for the family's held-out task
    space_samples: str | None = None  # writes the Space's sample inputs: `f(folder, num_scenes, seed) -> rows`
    paper: str | None = None  # file in ../shared/papers


@dataclass(frozen=True)
class Task:
    """A pipeline task: its class (dotted path), transformers' pipeline `type`, and the families that serve it."""

    name: str
    pipeline_class: str
    type: str
    families: tuple[str, ...] = field(default_factory=tuple)
    pipeline_tag: str | None = None  # the Hub's closest standard tag, for model cards


FAMILIES: dict[str, Family] = {
    "tokcom": Family(
        name="tokcom",
        model_type="tokcom",
        config_class="tokcom.modeling.configuration_tokcom.TokComConfig",
        model_class="tokcom.modeling.modeling_tokcom.TokComForAVQA",
        auto_classes=("AutoModel",),
        processor_class="tokcom.modeling.processing_tokcom.TokComProcessor",
        tasks=("token-comm-vqa",),
        default_checkpoint="tokcom-avqa-tiny",
        stages_module="tokcom.training.stages_tokcom",
        evaluator_class="tokcom.training.evaluate_tokcom.TokComAVQAEvaluator",
        space_samples="tokcom.space.write_samples",
        paper="tokcom-avqa-letter.txt",
    ),
    "taichi": Family(  # TaiChi: dual visual tokenizers, BAN, KAN projector, an LLM split across the link
        name="taichi",
        model_type="taichi",
        config_class="tokcom.modeling.configuration_taichi.TaiChiConfig",
        model_class="tokcom.modeling.modeling_taichi.TaiChiForConditionalGeneration",
        auto_classes=("AutoModel", "AutoModelForImageTextToText"),
        processor_class="tokcom.modeling.processing_taichi.TaiChiProcessor",
        tasks=("token-comm-vqa", "token-comm-image-to-text", "token-comm-text-classification"),
        default_checkpoint="taichi-tiny",  # built by `python -m tokcom.training.build_default_taichi --install`
        stages_module="tokcom.training.stages_taichi",
        evaluator_class="tokcom.training.evaluate_taichi.TaiChiEvaluator",
        space_samples="tokcom.space.write_taichi_samples",
        paper="taichi-vlm-tokencom.txt",
    ),
    "unitocom_tokenizer": Family(  # UniToCom's per-modality sigma-GenIB / VAE tokenizers with their adaptive link
        name="unitocom_tokenizer",
        model_type="unitocom_tokenizer",
        config_class="tokcom.modeling.configuration_unitocom.UniToComTokenizerConfig",
        model_class="tokcom.modeling.tokenization_unitocom.UniToComTokenizerModel",
        auto_classes=("AutoModel",),
        stages_module="tokcom.training.stages_unitocom_tokenizer",
        paper="unitocom-genib.txt",
    ),
    "unitocom": Family(  # UniToCom's latent MLLM (LM head + per-token diffusion head) with the tokenizers and links
        name="unitocom",
        model_type="unitocom",
        config_class="tokcom.modeling.configuration_unitocom.UniToComConfig",
        model_class="tokcom.modeling.modeling_unitocom.UniToComModel",
        default_checkpoint="unitocom-tiny",  # built by `python -m tokcom.training.build_default_unitocom --install`
        auto_classes=("AutoModel",),
        processor_class="tokcom.modeling.processing_unitocom.UniToComProcessor",
        tasks=("token-comm-vqa", "token-comm-text-to-image", "token-comm-asr"),
        stages_module="tokcom.training.stages_unitocom",
        evaluator_class="tokcom.training.evaluate_unitocom.UniToComEvaluator",
        space_samples="tokcom.space.write_unitocom_samples",
        paper="unitocom-genib.txt",
    ),
}

TASKS: dict[str, Task] = {
    "token-comm-vqa": Task(
        name="token-comm-vqa",
        pipeline_class="tokcom.pipelines.token_comm_vqa.TokenCommVQAPipeline",
        type="multimodal",
        families=("tokcom", "taichi", "unitocom"),  # TaiChi / UniToCom models get `TaiChiVQAPipeline` /
        # `UniToComVQAPipeline` (image + question)
        pipeline_tag="visual-question-answering",
    ),
    "token-comm-image-to-text": Task(
        name="token-comm-image-to-text",
        pipeline_class="tokcom.pipelines.token_comm_taichi.TokenCommImageToTextPipeline",
        type="image",
        families=("taichi",),
        pipeline_tag="image-to-text",
    ),
    "token-comm-text-classification": Task(
        name="token-comm-text-classification",
        pipeline_class="tokcom.pipelines.token_comm_taichi.TokenCommTextClassificationPipeline",
        type="text",
        families=("taichi",),
        pipeline_tag="text-classification",
    ),
    "token-comm-text-to-image": Task(
        name="token-comm-text-to-image",
        pipeline_class="tokcom.pipelines.token_comm_unitocom.TokenCommTextToImagePipeline",
        type="multimodal",
        families=("unitocom",),
        pipeline_tag="text-to-image",
    ),
    "token-comm-asr": Task(
        name="token-comm-asr",
        pipeline_class="tokcom.pipelines.token_comm_unitocom.TokenCommASRPipeline",
        type="audio",
        families=("unitocom",),
        pipeline_tag="automatic-speech-recognition",
    ),
}

# configs registered with AutoConfig that are not a family's top-level config
EXTRA_CONFIGS: dict[str, str] = {"tokcom_channel": "tokcom.modeling.channel.ChannelConfig"}


def import_object(dotted_path: str):
    """`"package.module.Name"` -> the object (imports the module).

    >>> import_object("tokcom.registry.Family").__name__
    'Family'
    """
    module_name, _, name = dotted_path.rpartition(".")
    return getattr(importlib.import_module(module_name), name)


def family_for_model_type(model_type: str) -> Family:
    """The family whose config has `model_type`; `ValueError` listing the known ones otherwise."""
    for family in FAMILIES.values():
        if family.model_type == model_type:
            return family
    known = sorted(family.model_type for family in FAMILIES.values())
    raise ValueError(f"No tokcom family has model_type {model_type!r}; known: {known}.")


def family(name: str) -> Family:
    """The family called `name` (e.g. the `family` field of a recipe); `ValueError` listing the known ones."""
    if name not in FAMILIES:
        raise ValueError(f"Unknown model family {name!r}; known: {sorted(FAMILIES)}.")
    return FAMILIES[name]


__all__ = ["EXTRA_CONFIGS", "FAMILIES", "Family", "TASKS", "Task", "family", "family_for_model_type", "import_object"]
