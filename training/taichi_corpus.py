"""TaiChi's training and evaluation data: shapes-world images with CLEVR-style questions and COCO-style captions,
and SST-2-style sentences, as tensors and lists ready for batching (built once per run, deterministic by seed).

>>> corpus = TaiChiCorpus.build({"train_scenes": 4, "questions_per_scene": 2, "sentiment_sentences": 6}, "train")
>>> corpus.images.shape, len(corpus.questions), len(corpus.captions), len(corpus.sentences)
((4, 64, 64, 3), 8, 4, 6)
>>> tuple(corpus.cell_targets(corpus.coarse_side, [0]).shape)   # (scenes, cells, attributes)
(1, 16, 4)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tokcom.training.data.shapes_questions import QUESTION_FAMILIES
from tokcom.training.data.shapes_render import ShapesWorldConfig
from tokcom.training.data.world import split_seeds

SPLIT_SIZE_KEYS = {"train": "train_scenes", "validation": "validation_scenes", "test": "test_scenes"}
DATA_DEFAULTS = {"train_scenes": 4000, "validation_scenes": 200, "test_scenes": 500, "questions_per_scene": 10,
                 "max_objects": 3, "image_size": 64, "sentiment_sentences": 4000}  # fmt: skip
ATTRIBUTES = ("shape", "color", "size", "material")  # per-cell targets: 0 = no object, else 1 + attribute index
SENTIMENT_ANSWERS = ("negative", "positive")  # SST-2 label 0, 1


@dataclass
class TaiChiCorpus:
    """One split. images: uint8 `(scenes, H, H, 3)`; questions: dicts with image_index, question, answer, family;
    captions: 5 strings per image; sentences / sentiment_labels: the sentiment task; scenes: `ShapesScenes`."""

    images: np.ndarray
    questions: list
    captions: list
    sentences: list
    sentiment_labels: list
    scenes: object
    coarse_side: int = 4
    fine_side: int = 8

    @classmethod
    def build(cls, data: dict, split: str, coarse_side: int = 4, fine_side: int = 8) -> TaiChiCorpus:
        """The `split` ("train", "validation", "test") of the recipe's `data` section (`DATA_DEFAULTS` fill gaps)."""
        from tokcom.training.data.sentiment import generate_sst2
        from tokcom.training.data.shapes_world import generate_shapes_world

        data = {**DATA_DEFAULTS, **data}
        seeds = split_seeds(data.get("seed", 0))
        scene_seed, sentence_seed = seeds[split].spawn(2)
        size = int(data["image_size"])
        config = ShapesWorldConfig(image_size=size, low_res_size=size // 4, max_objects=int(data["max_objects"]))
        count = int(data[SPLIT_SIZE_KEYS[split]])
        world = generate_shapes_world(count, scene_seed, config, split, int(data["questions_per_scene"]))
        questions = [
            {"image_index": q["image_index"], "question": q["question"], "answer": q["answer"],
             "question_family_index": q["question_family_index"], "family": QUESTION_FAMILIES[q["question_family_index"]]}
            for q in world["questions"]["questions"]
        ]  # fmt: skip
        captions = [[] for _ in range(count)]
        for annotation in world["captions"]["annotations"]:
            captions[annotation["image_id"]].append(annotation["caption"])
        num_sentences = int(data["sentiment_sentences"])  # the training split's; held-out splits get 1/8 of it
        sentences = generate_sst2(num_sentences if split == "train" else max(num_sentences // 8, 2), sentence_seed)
        return cls(world["scenes"].images, questions, captions, list(sentences["sentence"]), list(sentences["label"]),
                   world["scenes"], coarse_side, fine_side)  # fmt: skip

    @property
    def graphs(self) -> list[dict]:
        """CLEVR scene graphs of the images (attribute recall and the answer checker read them)."""
        from tokcom.training.data.shapes_world import scene_graphs

        return scene_graphs(self.scenes)

    def cell_targets(self, side: int, picks) -> torch.Tensor:
        """Per grid cell of a `side x side` grid over each picked image, the front-most object's attributes:
        `(len(picks), side*side, 4)` int64 (0 = empty, else 1 + index in SHAPES / COLORS / SIZES / MATERIALS)."""
        scenes, image_size = self.scenes, self.images.shape[1]
        out = np.zeros((len(picks), side * side, len(ATTRIBUTES)), np.int64)
        for row, index in enumerate(picks):
            count = int(scenes.num_objects[index])
            order = np.argsort(-scenes.pixel_coords[index, :count, 2])  # far to near: the nearest is written last
            for k in order:
                column, line, _ = scenes.pixel_coords[index, k]
                cell = int(np.clip(line * side // image_size, 0, side - 1)) * side + int(
                    np.clip(column * side // image_size, 0, side - 1))  # fmt: skip
                out[row, cell] = [1 + int(getattr(scenes, name)[index, k]) for name in ATTRIBUTES]
        return torch.from_numpy(out)

    def texts(self) -> list[str]:
        """Every string of the split (for the word-level tokenizer's vocabulary)."""
        words = [q["question"] for q in self.questions] + [q["answer"] for q in self.questions]
        return words + [c for group in self.captions for c in group] + self.sentences + list(SENTIMENT_ANSWERS)


__all__ = ["ATTRIBUTES", "DATA_DEFAULTS", "SENTIMENT_ANSWERS", "TaiChiCorpus"]
