"""TaiChi's training and evaluation data: shapes-world images with CLEVR-style questions and COCO-style captions,
and SST-2-style sentences, as tensors and lists ready for batching (built once per run, deterministic by seed).

>>> corpus = TaiChiCorpus.build({"train_scenes": 4, "questions_per_scene": 2, "sentiment_sentences": 6}, "train")
>>> corpus.images.shape, len(corpus.questions), len(corpus.captions), len(corpus.sentences)
((4, 64, 64, 3), 8, 4, 6)
>>> tuple(corpus.cell_targets(corpus.coarse_side, [0]).shape)   # (scenes, cells, attributes)
(1, 16, 4)
>>> cells = corpus.scene_words([0])[0]                           # one cell per coarse grid cell
>>> len(cells), sorted({len(words) for words in cells})           # ["empty"] or [size, color, material, shape]
(16, [1, 4])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tokcom.training.data.shapes_questions import QUESTION_FAMILIES
from tokcom.training.data.shapes_render import COLORS, MATERIALS, SHAPES, SIZES, ShapesWorldConfig
from tokcom.training.data.world import split_seeds

SPLIT_SIZE_KEYS = {"train": "train_scenes", "validation": "validation_scenes", "test": "test_scenes"}
DATA_DEFAULTS = {"train_scenes": 4000, "validation_scenes": 200, "test_scenes": 500, "questions_per_scene": 10,
                 "max_objects": 3, "image_size": 64, "sentiment_sentences": 4000}  # fmt: skip
ATTRIBUTES = ("shape", "color", "size", "material")  # per-cell targets: 0 = no object, else 1 + attribute index
SENTIMENT_ANSWERS = ("negative", "positive")  # SST-2 label 0, 1
EMPTY_CELL = "empty"  # the scene word of a grid cell without an object


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
        """Per grid cell of a `side x side` grid over each picked image, the attributes of the object placed there:
        `(len(picks), side*side, 4)` int64 (0 = empty, else 1 + index in SHAPES / COLORS / SIZES / MATERIALS).

        Objects are placed front to back, each in the cell under its centre; one whose cell a nearer object already
        holds goes to the nearest free cell (so every object has a cell: on the 4 x 4 grid 12% of 3-object scenes
        would lose one to a shared cell). Computed once per grid side for the whole split, then indexed."""
        cache = self.__dict__.setdefault("_cell_cache", {})
        if side not in cache:
            cache[side] = self._place_objects(side)
        return cache[side][torch.as_tensor(np.asarray(picks, dtype=np.int64))]

    def _place_objects(self, side: int) -> torch.Tensor:
        """`cell_targets` of every image of the split: `(scenes, side*side, 4)` int64."""
        scenes, image_size = self.scenes, self.images.shape[1]
        out = np.zeros((len(self.images), side * side, len(ATTRIBUTES)), np.int64)
        centres = (np.arange(side) + 0.5) * image_size / side
        cell_x, cell_y = np.meshgrid(centres, centres)  # (side, side) each; raster order after ravel
        for index in range(len(self.images)):
            count = int(scenes.num_objects[index])
            for k in np.argsort(scenes.pixel_coords[index, :count, 2], kind="stable"):  # near to far
                column, line, _ = scenes.pixel_coords[index, k]
                distance = (cell_x.ravel() - column) ** 2 + (cell_y.ravel() - line) ** 2
                distance[out[index, :, 0] > 0] = np.inf
                out[index, int(np.argmin(distance))] = [1 + int(getattr(scenes, name)[index, k]) for name in ATTRIBUTES]
        return torch.from_numpy(out)

    def scene_words(self, picks, side: int | None = None) -> list[list[list[str]]]:
        """Each picked image as its exact grid description: per cell of the `side x side` grid (default the coarse
        one: one cell per visual token), raster order, the words of the object placed there
        (`[size, color, material, shape]`) or `["empty"]`. The LLM's text pretraining reads each cell as the sum of
        its words' embeddings where the visual tokens will go, and the projector's alignment pulls each visual
        token to that sum (`stages_taichi`)."""
        order = [ATTRIBUTES.index(name) for name in SCENE_WORD_ORDER]
        out = []
        for scene in self.cell_targets(side or self.coarse_side, picks).tolist():
            out.append([[ATTRIBUTE_VALUES[SCENE_WORD_ORDER[j]][cell[i] - 1] for j, i in enumerate(order)] if cell[0]
                        else [EMPTY_CELL] for cell in scene])  # fmt: skip
        return out

    def scene_word_ids(self, picks, tokenizer) -> torch.LongTensor:
        """`scene_words` as token ids: `(len(picks), cells, 4)` int64, -1 padded (vectorized: one id table per
        attribute, looked up in the cached cell targets)."""
        targets = self.cell_targets(self.coarse_side, picks)  # (n, cells, 4) in ATTRIBUTES order, 0 = empty
        empty_id = tokenizer.convert_tokens_to_ids(EMPTY_CELL)
        ids = torch.full(targets.shape, -1, dtype=torch.long)
        for j, name in enumerate(SCENE_WORD_ORDER):
            table = torch.tensor([-1] + tokenizer.convert_tokens_to_ids(list(ATTRIBUTE_VALUES[name])), dtype=torch.long)
            ids[..., j] = table[targets[..., ATTRIBUTES.index(name)]]
        ids[..., 0] = ids[..., 0].masked_fill(targets[..., 0] == 0, empty_id)
        return ids

    def texts(self) -> list[str]:
        """Every string of the split (for the word-level tokenizer's vocabulary), the scene words included."""
        words = [q["question"] for q in self.questions] + [q["answer"] for q in self.questions]
        words += [c for group in self.captions for c in group] + self.sentences + list(SENTIMENT_ANSWERS)
        return words + [" ".join((EMPTY_CELL, *SHAPES, *COLORS, *SIZES, *MATERIALS))]


SCENE_WORD_ORDER = ("size", "color", "material", "shape")  # as the captions and questions say them
ATTRIBUTE_VALUES = {"shape": SHAPES, "color": COLORS, "size": SIZES, "material": MATERIALS}


__all__ = ["ATTRIBUTES", "DATA_DEFAULTS", "EMPTY_CELL", "SCENE_WORD_ORDER", "SENTIMENT_ANSWERS", "TaiChiCorpus"]
