"""TokCom AVQA's contribution to the training engine: its stages, what each trains, its batches and objectives.

| stage           | objective           | trains                                   | paper            |
|-----------------|---------------------|------------------------------------------|------------------|
| pretrain_vision | `VisionPretraining` | ViViT + a scene-layout head              | (our unimodal pretraining) |
| pretrain_audio  | `AudioPretraining`  | AST + a sound-layout head                | (our unimodal pretraining) |
| pretrain_text   | `TextPretraining`   | the LLM: caption + question -> answer    | (our unimodal pretraining) |
| align           | `Alignment`         | F_m, G_m                                 | Sec. III-A, eqs. (9)-(10) |
| task            | `TaskFineTuning`    | LoRA, F_m, G_m (+ encoders if set)       | Sec. III-B, eq. (12) |

The engine (`tokcom.training.engine`) runs the loop; every step's batch, SNRs and token lengths come from
`numpy.random.default_rng([seed, stage index, step])`, so a resumed run continues exactly and all ranks agree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tokcom.modeling import Link, TokComConfig, TokComForAVQA
from tokcom.modeling.configuration_tokcom import LINKS, MODALITIES
from tokcom.modeling.processing_tokcom import TokComProcessor
from tokcom.training.engine import FamilyStages
from tokcom.training.objectives import (
    Alignment,
    AudioPretraining,
    TaskFineTuning,
    TextPretraining,
    VisionPretraining,
)
from tokcom.training.synthetic_corpus import build_synthetic_corpus

STAGES = ("pretrain_vision", "pretrain_audio", "pretrain_text", "align", "task")
TRANSCEIVERS = tuple(f"tokcom.{name}" for name in ("visual_projector", "audio_projector", "receivers"))  # F_m, G_m
ENCODERS = ("tokcom.vision_encoder", "tokcom.audio_encoder")
OBJECTIVES = {
    "pretrain_vision": VisionPretraining,
    "pretrain_audio": AudioPretraining,
    "pretrain_text": TextPretraining,
    "align": Alignment,
    "task": TaskFineTuning,
}


def trainable_parameters(model: TokComForAVQA, stage: str, stage_recipe: dict) -> list[str]:
    """Names of the parameters a stage updates (everything else is frozen for that stage)."""
    names = []
    for name, _ in model.named_parameters():
        if stage == "pretrain_vision":
            keep = name.startswith(ENCODERS[0])
        elif stage == "pretrain_audio":
            keep = name.startswith(ENCODERS[1])
        elif stage == "pretrain_text":
            keep = name.startswith("language_model") and "lora_" not in name
        elif stage == "align":  # Sec. III-A: only F_m and G_m
            keep = name.startswith(TRANSCEIVERS)
        else:  # Sec. III-B: LoRA and all transceivers (encoders optional; transceivers frozen at learning rate 0)
            moving = float(stage_recipe.get("transceiver_learning_rate", 1.0)) > 0
            keep = (moving and name.startswith(TRANSCEIVERS)) or "lora_" in name
            if stage_recipe.get("train_encoders", False):
                keep = keep or name.startswith(ENCODERS)
        if keep:
            names.append(name)
    return names


class TokComStages(FamilyStages):
    """TokCom AVQA's stages on the synthetic audio-visual corpus (`AVQATensors`).

    >>> from tokcom.training.recipe import load_recipe
    >>> TokComStages.stages
    ('pretrain_vision', 'pretrain_audio', 'pretrain_text', 'align', 'task')
    """

    stages = STAGES
    stage_keys = ("transceiver_learning_rate", "full_length_fraction", "random_token_lengths", "train_encoders",
                  "num_visual_tokens", "num_audio_tokens")  # fmt: skip
    data_keys = ("train_scenes", "validation_scenes", "test_scenes", "questions_per_scene", "caption_style")

    @classmethod
    def model_keys(cls) -> tuple[str, ...]:
        import dataclasses

        return tuple(field.name for field in dataclasses.fields(TokComConfig))

    @classmethod
    def setup(cls, recipe: dict, start_from: str | Path | None, output_dir: Path) -> TokComStages:
        processor = TokComProcessor.from_pretrained(start_from) if start_from else None
        corpus, processor = build_synthetic_corpus(recipe, split="train", processor=processor)
        if start_from:
            model = TokComForAVQA.from_pretrained(start_from)
        else:
            config = TokComConfig.tiny(**recipe.get("model", {}))
            config.text_config.vocab_size = max(config.text_config.vocab_size, len(processor.tokenizer))
            model = TokComForAVQA(config)
        return cls(recipe, model, processor, corpus, output_dir)

    def objective(self, stage: str) -> torch.nn.Module:
        return OBJECTIVES[stage](self.model)

    def trainable_parameters(self, stage: str, stage_recipe: dict) -> list[str]:
        return trainable_parameters(self.model, stage, stage_recipe)

    def parameter_groups(self, stage: str, stage_recipe: dict) -> dict[str, tuple[tuple[str, ...], float]]:
        """F_m and G_m at their own learning rate in the task stage (`transceiver_learning_rate`)."""
        rate = stage_recipe.get("transceiver_learning_rate")
        return {} if rate is None else {"transceivers": (TRANSCEIVERS, float(rate))}

    def batch(self, stage: str, step: int, stage_recipe: dict, rank: int, world: int) -> dict:
        """The batch of `step` for `rank`: a slice of one global batch drawn from a per-step generator."""
        rng = self.step_rng(stage, step)
        per_rank = int(stage_recipe["batch_size"])
        total = per_rank * world
        corpus, processor = self.data, self.processor
        population = corpus.num_questions if stage in ("task", "pretrain_text", "align") else corpus.num_scenes
        picks = torch.from_numpy(rng.choice(population, total, replace=population < total))
        mine = picks[rank * per_rank : (rank + 1) * per_rank]
        config = self.model.config
        if stage in ("pretrain_vision", "pretrain_audio"):
            targets = {k: v[mine] for k, v in corpus.scene_targets.items()}
            maximum = config.max_tokens("visual" if stage == "pretrain_vision" else "audio")
            num_tokens = int(rng.integers(1, maximum + 1))
            if stage == "pretrain_vision":
                return {"pixel_values_videos": corpus.video_batch(processor, mine), "instruments": targets["instruments"],
                        "intervals": targets["intervals"], "num_tokens": num_tokens}  # fmt: skip
            return {"input_values": corpus.input_values[mine], **targets, "num_tokens": num_tokens}
        if stage == "pretrain_text":
            num_tokens = None
            if corpus.modal_caption_ids is not None:  # the caption stands exactly where the media tokens will
                lengths = self._token_lengths(rng, stage_recipe)
                num_tokens = {m: self.model.received_length(m, lengths[m]) for m in config.prompt_order if m != "text"}
            return corpus.text_stage_batch(processor, mine, num_tokens)
        # align / task: per-sample SNR per link, per-batch token lengths, a channel type per batch
        if stage == "align":  # each picked question's scene: media, caption, and the question (eq. 9 needs its words)
            batch = corpus.caption_batch(processor, corpus.scene_index[mine], questions=mine)
        else:
            batch = corpus.question_batch(processor, mine)
        snr = self.draw_snr_db(rng, LINKS, total)
        lengths = self._token_lengths(rng, stage_recipe)
        channel_type = self.draw_channel_type(rng)
        batch["links"] = {
            link: Link(
                snr_db=snr[link][rank * per_rank : (rank + 1) * per_rank],
                num_tokens=lengths.get(link),
                channel_type=channel_type,
            )
            for link in LINKS
        }
        batch["generator"] = torch.Generator().manual_seed(int(rng.integers(2**31)) + rank)
        if stage == "align" and corpus.modal_caption_ids is not None:  # token-level alignment targets
            targets = corpus.modal_captions(corpus.scene_index[mine], lengths)
            batch.update({f"{m}_target_ids": ids for m, ids in targets.items()})
        return batch

    def _token_lengths(self, rng: np.random.Generator, stage_recipe: dict) -> dict[str, int]:
        """`{"visual": s_v, "audio": s_a}` (drawn in that order): per batch with `random_token_lengths`, else the
        stage's `num_<modality>_tokens` (default: the maximum).

        With `random_token_lengths`, `full_length_fraction` f sends a share f of the batches at the maximum lengths
        (one coin per batch, drawn only when f is set) and draws the rest uniformly in [1, max]. Questions that need
        a whole description (e.g. which instrument sounds first) are answerable only from full-length batches.
        """
        config = self.model.config
        lengths = {}
        randomized = stage_recipe.get("random_token_lengths", False)
        fraction = stage_recipe.get("full_length_fraction")
        full = randomized and fraction is not None and rng.random() < float(fraction)
        for modality in MODALITIES:
            if full:
                lengths[modality] = config.max_tokens(modality)
            elif randomized:
                lengths[modality] = int(rng.integers(1, config.max_tokens(modality) + 1))
            else:
                lengths[modality] = stage_recipe.get(f"num_{modality}_tokens") or config.max_tokens(modality)
        return lengths

    def save_checkpoint(self, folder: Path) -> None:
        self.model.save_pretrained(folder)
        self.processor.save_pretrained(folder)

    @staticmethod
    def validate_stage(stage: str, settings: dict) -> None:
        """TokCom's own stage keys (the engine checks the common ones)."""
        if "transceiver_learning_rate" in settings and not float(settings["transceiver_learning_rate"]) >= 0:
            raise ValueError(
                f"Recipe field `stages.{stage}.transceiver_learning_rate` must be >= 0 (0 freezes F_m and G_m), "
                f"got {settings['transceiver_learning_rate']!r}."
            )
        if "full_length_fraction" in settings and not 0.0 <= float(settings["full_length_fraction"]) <= 1.0:
            raise ValueError(
                f"Recipe field `stages.{stage}.full_length_fraction` must be in [0, 1] (the share of batches sent at "
                f"the maximum token lengths), got {settings['full_length_fraction']!r}."
            )

    @staticmethod
    def validate_data(data: dict) -> None:
        for key in ("train_scenes", "validation_scenes", "test_scenes"):
            if key in data and int(data[key]) < 1:
                raise ValueError(f"Recipe field `data.{key}` must be >= 1, got {data[key]}.")
        if "caption_style" in data:
            from tokcom.training.data.synthetic_avqa import caption_writer  # lazy: it imports `datasets`

            caption_writer(data["caption_style"])


__all__ = ["ENCODERS", "STAGES", "TRANSCEIVERS", "TokComStages", "trainable_parameters"]
