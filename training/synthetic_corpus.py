"""The synthetic audio-visual world as training/evaluation tensors, plus the processor that fits it.

Splits use the same seeds as `generate_avqa_splits(num_train, num_validation, num_test, seed)`, so the
"test" corpus here holds exactly the scenes and questions of that Dataset's test split.
"""

from __future__ import annotations

import numpy as np
import torch

from tokcom.modeling.processing_tokcom import TokComProcessor, default_feature_extractor
from tokcom.training.avqa_tensors import AVQATensors
from tokcom.training.data.synthetic_avqa import (
    ANSWER_VOCAB,
    CAPTION_STYLES,
    INSTRUMENTS,
    MODAL_DESCRIBERS,
    POSITIONS,
    QUESTION_TEMPLATES,
    SyntheticAVQAConfig,
    caption_writer,
    generate_split,
)
from tokcom.training.tokenization import build_word_tokenizer

SPLITS = ("train", "validation", "test")


def world_vocabulary_texts(config: SyntheticAVQAConfig | None = None) -> list[str]:
    """Texts covering every word the synthetic world can say (templates, values, answers, captions)."""
    texts = [t["question_content"].replace("<", " ").replace(">", " ") for t in QUESTION_TEMPLATES]
    texts += list(ANSWER_VOCAB) + list(INSTRUMENTS) + list(POSITIONS) + ["first", "last", "object", "lr", "fl"]
    probe, _ = generate_split("train", 2000, 1, 1, seed=12345, config=config, questions_only=True)  # layouts only
    texts += [describe(*probe.layout(i)) for i in range(len(probe)) for describe in CAPTION_STYLES.values()]
    return texts


def build_processor(audio: np.ndarray, sampling_rate: int, config: SyntheticAVQAConfig | None = None) -> TokComProcessor:
    """A processor for the synthetic world: word tokenizer over its vocabulary, AST filterbanks normalized with
    the mean/std of `audio` (`(clips, samples)`), 8 frames of 32x32 video."""
    config = config or SyntheticAVQAConfig()
    probe = default_feature_extractor(mean=0.0, std=0.5)  # (x - 0) / (2 * 0.5): raw log-mel filterbanks
    raw = probe([np.asarray(a, np.float32) for a in audio[:512]], sampling_rate=sampling_rate, return_tensors="np")
    values = raw["input_values"]
    extractor = default_feature_extractor(mean=float(values.mean()), std=float(values.std()))
    tokenizer = build_word_tokenizer(world_vocabulary_texts(config))
    return TokComProcessor(extractor, tokenizer, num_frames=config.num_frames, frame_size=config.frame_size)


def build_synthetic_corpus(
    recipe: dict, split: str = "train", processor: TokComProcessor | None = None, num_scenes: int | None = None
) -> tuple[AVQATensors, TokComProcessor]:
    """Scenes, questions, captions and layout targets of `split` as `AVQATensors` (and the processor used).

    `recipe["data"]` gives `train_scenes`, `validation_scenes`, `test_scenes`, `questions_per_scene` and
    `caption_style` (`"free"`: VALOR-style sentences, the default; `"slots"`: fixed-slot descriptions;
    `"modal"`: a fixed-slot description per sensor, also kept per modality as `corpus.modal_caption_ids`);
    `recipe["seed"]` the world seed. `num_scenes` truncates the split (e.g. a quick evaluation).
    """
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS}, got {split!r}.")
    data = recipe.get("data", {})
    config = SyntheticAVQAConfig(questions_per_scene=int(data.get("questions_per_scene", 4)))
    counts = [int(data.get(f"{name}_scenes", default)) for name, default in zip(SPLITS, (12000, 500, 1000))]
    scenes, rows = generate_split(split, *counts, seed=int(recipe.get("seed", 0)), config=config)
    if num_scenes is not None:
        rows = [row for row in rows if row["scene_index"] < num_scenes]
        keep = slice(0, num_scenes)
        scenes = type(scenes)(
            scenes.instruments[keep], scenes.intervals[keep], scenes.gain_levels[keep],
            scenes.video[keep], scenes.audio[keep], scenes.sampling_rate,
        )  # fmt: skip
    describe = caption_writer(data.get("caption_style", "free"))
    if processor is None:
        processor = build_processor(scenes.audio, scenes.sampling_rate, config)
    captions = [describe(*scenes.layout(i)) for i in range(len(scenes))]
    corpus = AVQATensors.build(
        processor,
        scenes.video,
        scenes.audio,
        scenes.sampling_rate,
        rows,
        captions=captions,
        scene_targets={"instruments": scenes.instruments, "intervals": scenes.intervals, "gain_levels": scenes.gain_levels},
    )
    if data.get("caption_style", "free") == "modal":
        corpus.modal_caption_ids = {
            modality: _word_ids(processor, [describe_part(*scenes.layout(i)) for i in range(len(scenes))])
            for modality, describe_part in MODAL_DESCRIBERS.items()
        }
    return corpus, processor


def _word_ids(processor: TokComProcessor, texts: list[str]) -> torch.Tensor:
    """Fixed-slot texts -> `(len(texts), words)` ids; every text must have the same number of words."""
    ids = processor.tokenizer(texts, add_special_tokens=False)["input_ids"]
    if len({len(row) for row in ids}) != 1:
        raise ValueError("Per-modality captions must all have the same number of words.")
    return torch.tensor(ids, dtype=torch.long)


__all__ = ["SPLITS", "build_processor", "build_synthetic_corpus", "world_vocabulary_texts"]
