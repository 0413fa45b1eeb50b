"""TaiChi's contribution to the training engine: its stages, what each trains, its batches and objectives.

| stage            | objective               | trains                                         | paper |
|------------------|-------------------------|------------------------------------------------|-------|
| pretrain_vision  | `VisionPretraining`     | V_l (CLIP) + V_h (ResNet / ConvNeXt) + per-cell heads | (our unimodal pretraining: "frozen" must mean something) |
| pretrain_text    | `ResponseLoss`          | the LLM (both halves); images as scene words   | (our unimodal pretraining) |
| pretrain         | `ResponseLoss` (+ word alignment) | BAN + KAN only                       | Sec. V-A-1 |
| sft              | `ResponseLoss`          | BAN + KAN + LoRA (`train_llm: "full"`: the LLM) | Sec. V-A-2, multitask instructions |
| separate_coding  | `ChannelReconstruction` | the channel coder alone (VLM frozen): Z^ ~ Z    | the paper's "without joint coding" |
| joint_coding     | `ResponseLoss`          | BAN + KAN + channel coder + LoRA; SNR per sample, AWGN/Rayleigh | Sec. V-B, eq. (17) |

The LLM's text pretraining reads each image as its exact grid description where the visual tokens will go: per
coarse cell the sum of its scene words' embeddings (`TaiChiCorpus.scene_words`: "small gray metal cube" or "empty");
a stage's `word_alignment` weight then pulls each full-grid visual token to its cell's sum (`word_alignment_loss`,
shared with TokCom's stage 1), so the frozen LLM reads the image as it read the words. Both are our additions
standing in for the paper's general-purpose pretrained LLM and its caption-alignment data.

Stages before the coding ones send over an ideal link (`channel_type="none"`: Z arrives as sent). The default
recipe runs `separate_coding` as the coder's warm start before `joint_coding`; the comparison recipe
(`taichi_tiny_separate.json`) stops after `separate_coding`. Each step trains one task, drawn by the stage's
`tasks` weights. Batches come from `numpy.random.default_rng([seed, stage index, step])` (exact resume).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tokcom.modeling import Link, TaiChiConfig, TaiChiForConditionalGeneration
from tokcom.modeling.configuration_taichi import LINKS, TASKS
from tokcom.modeling.decoding import answer_labels
from tokcom.modeling.processing_taichi import DEFAULT_INSTRUCTIONS, TaiChiProcessor
from tokcom.training.engine import FamilyStages
from tokcom.training.objectives import word_alignment_loss, word_embeddings
from tokcom.training.taichi_corpus import ATTRIBUTES, DATA_DEFAULTS, SENTIMENT_ANSWERS, TaiChiCorpus

STAGES = ("pretrain_vision", "pretrain_text", "pretrain", "sft", "separate_coding", "joint_coding")
IDEAL_STAGES = ("pretrain_text", "pretrain", "sft")
IMAGE_ONLY_STAGES = ("pretrain",)  # it trains BAN + KAN only: a text-only task would have nothing to train
DEFAULT_TASKS = {"pretrain": {"vqa": 1.0, "caption": 1.0}}  # stage -> task weights when the recipe gives none
LLM = ("token_encoder.", "token_decoder.", "lm_head")
FUSION = ("ban.", "projector.")
ATTRIBUTE_CLASSES = (3, 8, 2, 2)  # SHAPES, COLORS, SIZES, MATERIALS (+1 for "empty" in each head)
WORD_TEMPERATURE = 0.1  # tau of the word-alignment cross-entropy


class ResponseLoss(nn.Module):
    """Cross-entropy on the response only (eqs. 16-17): `model(**batch).loss`.

    A batch's `scene_word_ids` `(batch, cells, 4)` (each coarse cell's words, -1 padded): without images they are
    the image (the LLM's text pretraining: each cell's word-embedding sum in place of its visual token); with
    images and `word_alignment > 0`, that weight times the token-level alignment of the full-grid visual tokens to
    those sums is added (`word_alignment_loss`: the LLM reads the image as it read the words)."""

    def __init__(self, model: TaiChiForConditionalGeneration, word_alignment: float = 0.0):
        super().__init__()
        self.model = model
        self.word_alignment = float(word_alignment)

    def forward(self, scene_word_ids: torch.LongTensor | None = None, **batch) -> torch.Tensor:
        model, alignment = self.model, None
        if scene_word_ids is not None and "pixel_values" not in batch:  # the image as its scene description
            batch["visual_embeds"] = word_embeddings(model.embed_text, scene_word_ids)
        elif scene_word_ids is not None and self.word_alignment > 0:
            cells = scene_word_ids.shape[1]
            tokens = model.visual_tokens(batch["pixel_values"], batch.get("pixel_values_lr"), cells)
            embeddings = model.get_input_embeddings().weight * model.config.text_embedding_multiplier
            alignment = word_alignment_loss(tokens, scene_word_ids, embeddings, WORD_TEMPERATURE)
            if "links" in batch and model.resolve_links(batch["links"])["visual"].num_tokens == cells:
                # the prompt sends the full grid too: reuse these tokens instead of running the image side twice
                batch["visual_embeds"] = tokens
                del batch["pixel_values"]
                batch.pop("pixel_values_lr", None)
        loss = model(**batch).loss
        return loss if alignment is None else loss + self.word_alignment * alignment


class VisionPretraining(nn.Module):
    """Unimodal pretraining of V_l and V_h with linear heads on the coarse (LR) and the fine (HR) tokens: per grid
    cell, is an object there (the shape head's "empty" class, over all cells), and what are the attributes of the
    front-most one (each head over the occupied cells only).

    Scoring the attributes on occupied cells only matters: with "empty" in every attribute's cross-entropy over all
    cells (`attributes_on="all_cells"`, the objective before session 12), 2-3 occupied cells of 64 weigh little and
    the fine tokens of the old ConvNeXt read colour, size and material at 0.81 after 1200 steps, against 0.98 this way
    (the shape head keeps "empty" so that occupancy is still learned; `benchmarks/taichi_tower_variants.py`)."""

    def __init__(self, model: TaiChiForConditionalGeneration, attributes_on: str = "occupied"):
        super().__init__()
        if attributes_on not in ("occupied", "all_cells"):
            raise ValueError(f"`attributes_on` must be 'occupied' or 'all_cells', got {attributes_on!r}.")
        self.model = model
        self.attributes_on = attributes_on
        config = model.config
        widths = {"coarse": config.vision_lr_config.hidden_size}
        if model.vision_hr is not None:
            widths["fine"] = config.vision_hr_config.hidden_sizes[config.hr_feature_stage]
        self.heads = nn.ModuleDict({  # "head*": the engine trains an objective's heads with the stage
            grid: nn.ModuleList(nn.Linear(width, count + 1) for count in ATTRIBUTE_CLASSES)
            for grid, width in widths.items()
        })  # fmt: skip

    def forward(self, pixel_values, pixel_values_lr, coarse_targets, fine_targets=None) -> torch.Tensor:
        """Targets `(batch, cells, 4)` int64 (`TaiChiCorpus.cell_targets`: 0 = empty, else 1 + index)."""
        coarse, fine = self.model.tokenize_image(pixel_values, pixel_values_lr)
        losses = []
        for grid, tokens, targets in (("coarse", coarse, coarse_targets), ("fine", fine, fine_targets)):
            if grid not in self.heads:
                continue
            occupied = targets[..., 0] > 0  # (batch, cells)
            if self.attributes_on == "all_cells":
                occupied = torch.ones_like(occupied)
            for column, head in enumerate(self.heads[grid]):
                logits = head(tokens)  # (batch, cells, classes + 1)
                if column == 0 and self.attributes_on == "occupied":  # occupancy, through the shape head's "empty"
                    losses.append(F.cross_entropy(logits.flatten(0, 1), targets[..., 0].flatten()))
                if occupied.any():
                    losses.append(F.cross_entropy(logits[occupied], targets[..., column][occupied]))
        return torch.stack(losses).mean()


class ChannelReconstruction(nn.Module):
    """The coder alone (`coding="separate"`): C_gamma^-1(H C_beta(Z) + n) should reproduce Z, the frozen token
    encoder's output; normalized MSE over the sent positions."""

    def __init__(self, model: TaiChiForConditionalGeneration):
        super().__init__()
        self.model = model

    def forward(self, links, generator=None, labels=None, **inputs) -> torch.Tensor:
        links = self.model.resolve_links(links)
        with torch.no_grad():
            sent, _, _, link_index, _ = self.model.prompt_states(links=links, **inputs)
        received = self.model.transmit(sent, link_index, links, generator)
        real = link_index >= 0
        return (received - sent).pow(2).sum(-1)[real].mean() / sent.pow(2).sum(-1)[real].mean().clamp_min(1e-8)


OBJECTIVES = {"pretrain_vision": VisionPretraining, "separate_coding": ChannelReconstruction}


def trainable_parameters(model: TaiChiForConditionalGeneration, stage: str, stage_recipe: dict) -> list[str]:
    """Names of the parameters a stage updates (everything else is frozen for that stage)."""
    names = []
    for name, _ in model.named_parameters():
        lora = "lora_" in name
        if stage == "pretrain_vision":
            keep = name.startswith(("vision_lr.", "vision_hr."))
        elif stage == "pretrain_text":
            keep = name.startswith(LLM) and not lora
        elif stage == "pretrain":  # Sec. V-A-1: only BAN and KAN
            keep = name.startswith(FUSION)
        elif stage == "sft":
            full = stage_recipe.get("train_llm", "lora") == "full"
            keep = name.startswith(FUSION) or lora or (full and name.startswith(LLM))
        elif stage == "separate_coding":
            keep = name.startswith("channel_coder.")
        else:  # joint coding: BAN, KAN and the coder fully, the LLM through LoRA
            keep = name.startswith((*FUSION, "channel_coder.")) or lora
        if keep:
            names.append(name)
    return names


class TaiChiStages(FamilyStages):
    """TaiChi's stages on the shapes world and the sentiment sentences (`TaiChiCorpus`).

    >>> TaiChiStages.stages[:3]
    ('pretrain_vision', 'pretrain_text', 'pretrain')
    """

    stages = STAGES
    stage_keys = ("tasks", "train_llm", "num_visual_tokens", "random_token_lengths", "word_alignment")
    data_keys = tuple(DATA_DEFAULTS)
    find_unused_parameters = True  # a sentiment step reaches neither the image side nor BAN/KAN

    @classmethod
    def model_keys(cls) -> tuple[str, ...]:
        import dataclasses

        return tuple(field.name for field in dataclasses.fields(TaiChiConfig))

    @classmethod
    def setup(cls, recipe: dict, start_from: str | Path | None, output_dir: Path) -> TaiChiStages:
        from tokcom.training.tokenization import build_word_tokenizer

        corpus = TaiChiCorpus.build({**recipe.get("data", {}), "seed": recipe.get("seed", 0)}, "train")
        if start_from:
            model = TaiChiForConditionalGeneration.from_pretrained(start_from)
            processor = TaiChiProcessor.from_pretrained(start_from)
        else:
            config = TaiChiConfig.tiny(**recipe.get("model", {}))
            texts = [template.replace("{text}", "") for template in DEFAULT_INSTRUCTIONS.values()] + corpus.texts()
            tokenizer = build_word_tokenizer(texts, max_vocab_size=config.text_config.vocab_size)
            processor = TaiChiProcessor(tokenizer, config.hr_image_size, config.lr_image_size)
            model = TaiChiForConditionalGeneration(config)
        return cls(recipe, model, processor, corpus, output_dir)

    def objective(self, stage: str) -> nn.Module:
        if stage in OBJECTIVES:
            return OBJECTIVES[stage](self.model)
        return ResponseLoss(self.model, self.recipe["stages"].get(stage, {}).get("word_alignment", 0.0))

    def trainable_parameters(self, stage: str, stage_recipe: dict) -> list[str]:
        return trainable_parameters(self.model, stage, stage_recipe)

    # ------------------------------------------------------------------ batches

    def batch(self, stage: str, step: int, stage_recipe: dict, rank: int, world: int) -> dict:
        """The batch of `step` for `rank`: a slice of one global batch drawn from a per-step generator."""
        rng = self.step_rng(stage, step)
        per_rank = int(stage_recipe["batch_size"])
        total = per_rank * world
        mine = slice(rank * per_rank, (rank + 1) * per_rank)
        corpus, processor = self.data, self.processor
        if stage == "pretrain_vision":
            picks = rng.choice(len(corpus.images), total)[mine]
            high, low = processor.image_tensors(torch.from_numpy(corpus.images[picks]))
            batch = {"pixel_values": high, "pixel_values_lr": low,
                     "coarse_targets": corpus.cell_targets(corpus.coarse_side, picks)}  # fmt: skip
            if self.model.vision_hr is not None:
                batch["fine_targets"] = corpus.cell_targets(corpus.fine_side, picks)
            return batch
        weights = stage_recipe.get("tasks") or DEFAULT_TASKS.get(stage, dict.fromkeys(TASKS, 1.0))
        task = self.draw_task(rng, weights)
        word_targets = float(stage_recipe.get("word_alignment", 0.0)) > 0
        batch = self.task_batch(task, rng, total, images_as="words" if stage == "pretrain_text" else "pixels",
                                word_targets=word_targets)  # fmt: skip
        batch = {key: value[mine] for key, value in batch.items()}
        batch["links"] = self._links(stage, stage_recipe, rng, total, rank, per_rank)
        batch["generator"] = torch.Generator().manual_seed(int(rng.integers(2**31)) + rank)
        return batch

    def task_batch(self, task: str, rng: np.random.Generator, size: int, images_as: str = "pixels",
                   word_targets: bool = False) -> dict:  # fmt: skip
        """`size` random examples of `task` as model inputs with `labels`. An image task's image comes as
        `pixel_values` (`images_as="pixels"`) or, for the LLM's text pretraining, as its scene words
        (`"words"`: `scene_word_ids`, one cell per visual token); `word_targets` adds `scene_word_ids` to pixels."""
        corpus, processor = self.data, self.processor
        images = None
        if task == "sentiment":
            picks = rng.choice(len(corpus.sentences), size)
            text = [corpus.sentences[i] for i in picks]
            answers = [SENTIMENT_ANSWERS[corpus.sentiment_labels[i]] for i in picks]
        elif task == "vqa":
            picks = rng.choice(len(corpus.questions), size)
            rows = [corpus.questions[i] for i in picks]
            text, answers = [row["question"] for row in rows], [row["answer"] for row in rows]
            images = [row["image_index"] for row in rows]
        else:  # caption: one of the image's captions
            images = rng.choice(len(corpus.images), size).tolist()
            text = None
            answers = [corpus.captions[i][int(rng.integers(len(corpus.captions[i])))] for i in images]
        prompts = processor.prompts(task) * size if text is None else processor.prompts(task, text)
        encoded = processor.tokenizer(prompts, padding=True, return_tensors="pt")
        batch = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
                 "labels": answer_labels(processor.tokenizer, answers)}  # fmt: skip
        if images is None:
            return batch
        if images_as == "pixels":
            batch["pixel_values"], batch["pixel_values_lr"] = processor.image_tensors(torch.from_numpy(corpus.images[images]))
        if images_as == "words" or word_targets:
            batch["scene_word_ids"] = corpus.scene_word_ids(images, processor.tokenizer)
        return batch

    def _links(self, stage, stage_recipe, rng, total, rank, per_rank) -> dict[str, Link]:
        """Ideal links before the coding stages; then an SNR per sample and a channel type per batch."""
        maximum = self.model.config.max_visual_tokens
        if stage_recipe.get("random_token_lengths", False):
            budget = int(rng.integers(1, maximum + 1))
        else:
            budget = int(stage_recipe.get("num_visual_tokens") or maximum)
        if stage in IDEAL_STAGES:
            return {"visual": Link(snr_db=float("inf"), num_tokens=budget, channel_type="none"),
                    "text": Link(snr_db=float("inf"), channel_type="none")}  # fmt: skip
        snr = self.draw_snr_db(rng, LINKS, total)
        channel_type = self.draw_channel_type(rng)
        return {
            link: Link(snr_db=snr[link][rank * per_rank : (rank + 1) * per_rank], channel_type=channel_type,
                       num_tokens=budget if link == "visual" else None)
            for link in LINKS
        }  # fmt: skip

    def save_checkpoint(self, folder: Path) -> None:
        self.model.save_pretrained(folder)
        self.processor.save_pretrained(folder)

    @staticmethod
    def validate_stage(stage: str, settings: dict) -> None:
        tasks = settings.get("tasks")
        FamilyStages.check_task_weights(stage, tasks, TASKS)
        if stage in IMAGE_ONLY_STAGES and tasks is not None and any(w > 0 for t, w in tasks.items() if t == "sentiment"):
            raise ValueError(f"Recipe field `stages.{stage}.tasks` cannot weight 'sentiment' (text only): the stage "
                             "trains only BAN and KAN, which a sentence never reaches.")
        weight = settings.get("word_alignment", 0.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < float("inf"):
            raise ValueError(f"Recipe field `stages.{stage}.word_alignment` must be a number >= 0, got {weight!r}.")
        if weight and stage not in ("pretrain", "sft", "joint_coding"):
            raise ValueError(f"Recipe field `stages.{stage}.word_alignment` applies to the stages that send images "
                             f"through BAN and KAN (pretrain, sft, joint_coding), not {stage!r}.")
        if settings.get("train_llm", "lora") not in ("lora", "full"):
            raise ValueError(f"Recipe field `stages.{stage}.train_llm` must be 'lora' or 'full', got {settings['train_llm']!r}.")

    @staticmethod
    def validate_data(data: dict) -> None:
        for key in ("train_scenes", "validation_scenes", "test_scenes", "questions_per_scene", "sentiment_sentences"):
            if key in data and (not isinstance(data[key], int) or data[key] < 1):
                raise ValueError(f"Recipe field `data.{key}` must be an integer >= 1, got {data[key]!r}.")
        if "max_objects" in data and data["max_objects"] not in range(1, 7):
            raise ValueError(f"Recipe field `data.max_objects` must be in [1, 6], got {data['max_objects']!r}.")


__all__ = ["OBJECTIVES", "STAGES", "ChannelReconstruction", "ResponseLoss", "TaiChiStages", "VisionPretraining",
           "trainable_parameters"]  # fmt: skip
