"""A shapes-world attribute reader: the judge of UniToCom's text-to-image outputs (attribute accuracy and FID).

Inception-v3 weights cannot be downloaded here, so FID uses this reader's penultimate features instead: a small
CNN trained on shapes-world scenes. Its FIDs measure distances in the shapes world only; they are not comparable
with published (Inception) FIDs.

| piece | what it does |
|---|---|
| `ShapesAttributeReader` | CNN on `(batch, 3, S, S)`, `S = config.image_size` (32, 64): "cube", "red cube", ... logits |
| `train_attribute_reader` | trains it on training-split scenes (scene-graph labels), tests it on the test split |
| `attribute_accuracy` | share of caption phrases ("a small red cube") the reader finds in the caption's image |
| `frechet_distance` | torchmetrics' `FrechetInceptionDistance` on the reader's `features` |
| `reader_baselines` | ceiling (own captions), floor (shuffled captions), FID noise floor (two halves of real images) |

Images are UniToCom's: shapes-world scenes rendered at twice the reader's side and block-averaged to it (64 px
to 32 px by default; `shapes_reader_data(..., image_size=)`), given as uint8 in [0, 255] or float in [0, 1],
channels first. A reader reads one side only (`ShapesReaderConfig.image_size`); readers saved before that field
existed read 32 px.

>>> reader = ShapesAttributeReader(ShapesReaderConfig(), generator=torch.Generator().manual_seed(0))
>>> images = torch.rand(4, 3, 32, 32)
>>> tuple(reader(images).shape), tuple(reader.features(images).shape)     # (batch, labels), (batch, features)
((4, 39), (4, 64))
>>> reader.labels[:4], reader.labels[-1]
(['cube', 'sphere', 'cylinder', 'large cube'], 'metal cylinder')
>>> big = ShapesAttributeReader(ShapesReaderConfig(image_size=64))   # 64-px images, a stem down to 32 px
>>> tuple(big(torch.rand(2, 3, 64, 64)).shape), tuple(big.feature_map(torch.rand(2, 3, 64, 64)).shape)
((2, 39), (2, 64, 8, 8))
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tokcom.training.data.shapes_render import COLORS, MATERIALS, SHAPES, SIZES
from tokcom.training.data.world import check_count
from tokcom.training.taichi_corpus import ATTRIBUTES, SPLIT_SIZE_KEYS, TaiChiCorpus

__all__ = [
    "ATTRIBUTE_VALUES",
    "CELL_CLASSES",
    "LABEL_GROUPS",
    "READER_LABELS",
    "ReaderFeatureExtractor",
    "ShapesAttributeReader",
    "ShapesReaderConfig",
    "attribute_accuracy",
    "check_image_size",
    "check_images",
    "frechet_distance",
    "label_accuracy",
    "reader_baselines",
    "scene_labels",
    "shapes_reader_data",
    "train_attribute_reader",
]

CONFIG_FILE = "reader_config.json"
WEIGHTS_FILE = "model.safetensors"
IMAGE_SIZE = 32  # default side of the reader's (UniToCom's) images [pixels]; a reader's own: config.image_size
ATTRIBUTE_VALUES = {"size": SIZES, "color": COLORS, "material": MATERIALS}  # the (value, shape) pair heads
# Label names: "cube" (shape present), then "<value> <shape>" per attribute: "large cube", "red cube", "metal cube".
LABEL_GROUPS = {"shape": list(SHAPES)}
LABEL_GROUPS.update({name: [f"{v} {s}" for v in values for s in SHAPES] for name, values in ATTRIBUTE_VALUES.items()})
READER_LABELS = [label for group in LABEL_GROUPS.values() for label in group]
CELL_SIDE = 4  # the cells of the reader's training targets: 4 x 4 cells of 8 x 8 pixels (TaiChi's coarse grid)
# Per cell, in TaiChiCorpus.cell_targets' order: the shape (class 0: empty cell), then the object's colour, size and
# material (their losses skip empty cells).
CELL_CLASSES = {name: len(values) + (name == "shape")
                for name, values in zip(ATTRIBUTES, (SHAPES, COLORS, SIZES, MATERIALS))}  # fmt: skip


@dataclasses.dataclass
class ShapesReaderConfig:
    """Sizes of the reader.

    Args:
        channels: output channels of the three convolution stages (at 32, 16 and 8 px).
        num_features: size of the penultimate features (FID's feature space), `d`.
        labels: label names, "cube" or "<value> <shape>" (default `READER_LABELS`).
        image_size: side of the images read [pixels], `32 * 2**k` (32, 64, 128, ...): the stage widths above are
            those at 32, 16 and 8 px whatever the side; larger images first pass a stem down to 32 px (see
            `ShapesAttributeReader`). Configs saved without it (older readers) read 32 px.
    """

    channels: tuple = (16, 32, 64)
    num_features: int = 64
    labels: list = dataclasses.field(default_factory=lambda: list(READER_LABELS))
    image_size: int = IMAGE_SIZE

    def __post_init__(self):
        self.channels = tuple(check_count("channels", c, 1) for c in self.channels)
        if len(self.channels) != 3:
            raise ValueError(f"`channels` must hold 3 stage widths, got {self.channels}.")
        check_count("num_features", self.num_features, 1)
        unknown = sorted(set(self.labels) - set(READER_LABELS))
        if unknown or not self.labels:
            raise ValueError(f"`labels` must be a non-empty subset of READER_LABELS; unknown: {unknown}.")
        self.image_size = check_image_size(self.image_size)


def check_image_size(image_size, name: str = "image_size") -> int:
    """`image_size` as an int `32 * 2**k` (32, 64, 128, ...), else a ValueError naming the argument `name`.

    >>> check_image_size(64)
    64
    """
    size = check_count(name, image_size, IMAGE_SIZE)
    if size % IMAGE_SIZE or (size // IMAGE_SIZE) & (size // IMAGE_SIZE - 1):
        raise ValueError(f"`{name}` must be a multiple of {IMAGE_SIZE} of the form {IMAGE_SIZE} * 2**k "
                         f"(32, 64, 128, ...), got {image_size!r}.")  # fmt: skip
    return size


def check_images(images, name: str = "images", image_size: int = IMAGE_SIZE) -> torch.Tensor:
    """`images` (uint8 in [0, 255] or float in [0, 1], `(batch, 3, image_size, image_size)`) as float32 in
    [0, 1], else a ValueError naming the argument `name` and the expected shape."""
    expected = f"(batch > 0, 3, {image_size}, {image_size})"
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"`{name}` must be a torch.Tensor {expected}, got {type(images).__name__}.")
    if images.dim() != 4 or tuple(images.shape[1:]) != (3, image_size, image_size) or not len(images):
        raise ValueError(f"`{name}` must have shape {expected}, got {tuple(images.shape)}.")
    if images.dtype == torch.uint8:
        return images.float() / 255
    if not images.is_floating_point():
        raise ValueError(f"`{name}` must be uint8 in [0, 255] or float in [0, 1], got dtype {images.dtype}.")
    low, high = float(images.min()), float(images.max())
    if not (0.0 <= low and high <= 1.0):  # also refuses NaN
        raise ValueError(f"`{name}` (float) must lie in [0, 1], got values in [{low:.3g}, {high:.3g}].")
    return images.float()


class ShapesAttributeReader(nn.Module):
    """Multi-label CNN reading which shapes, and which (size / colour / material, shape) pairs, an image shows.

    Three stages of two 3x3 convolutions (32, 16, 8 px; the first stage keeps full resolution, where metal's and
    small shapes' 2x2-pixel detail lives), a 1x1 convolution to `num_features` channels and ReLU give a map
    `(batch, num_features, 8, 8)`. Heads: the map max-pooled to 4 x 4 cells (8 x 8 pixels each) and a 1x1
    convolution, `cell_logits`, name the object of each cell (`CELL_CLASSES`: its shape or empty; its colour,
    size, material); the multi-label logits `(batch, labels)` follow from them (`label_probabilities`: "red cube"
    is present when some cell holds a cube that is red), so attributes stay bound to their objects. `features`
    `(batch, num_features)`, FID's feature space, is the map max-pooled over all cells (the layer the heads
    read). About 78 k parameters (0.3 MB in float32) with the defaults.

    Larger images (`config.image_size` = 64, 128, ...: `32 * 2**k`) first pass a stem down to 32 px, `k` times a
    3x3 convolution (stride 1, `channels[0]` outputs) + batch norm + ReLU at the current resolution and a 2x2 max
    pool (max, not average: a small object's or metal's few-pixel detail survives the halving); the first stage
    then reads `channels[0]` channels instead of RGB, the rest is unchanged (32-px trunk, 8 x 8 map, 4 x 4
    cells). At 32 px the stem is empty (`self.stem`, no parameters), so the 32-px reader and its parameter names
    are those of readers saved before `image_size` existed. At 64 px: 80 k parameters with the defaults (2.4 k
    more).

    Args:
        config: `ShapesReaderConfig`.
        generator: optional `torch.Generator` for the initial weights.
    """

    def __init__(self, config: ShapesReaderConfig | None = None, generator: torch.Generator | None = None):
        super().__init__()
        self.config = config = config or ShapesReaderConfig()
        stem, width = [], 3
        for _ in range((config.image_size // IMAGE_SIZE).bit_length() - 1):  # once per halving down to 32 px
            stem += [nn.Conv2d(width, config.channels[0], 3, padding=1), nn.BatchNorm2d(config.channels[0]),
                     nn.ReLU(), nn.MaxPool2d(2)]  # fmt: skip
            width = config.channels[0]
        self.stem = nn.Sequential(*stem)  # empty at 32 px: the trunk's names and weights as before `image_size`
        layers = []
        for stage, channels in enumerate(config.channels):
            if stage:
                layers.append(nn.MaxPool2d(2))
            for _ in range(2):
                layers += [nn.Conv2d(width, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU()]
                width = channels
        layers += [nn.Conv2d(width, config.num_features, 1), nn.ReLU()]
        self.trunk = nn.Sequential(*layers)
        self.cell_head = nn.Conv2d(config.num_features, sum(CELL_CLASSES.values()), 1)
        # Each label as (shape index, attribute or None, value index) for `label_probabilities`.
        self._label_parts = [_label_parts(label) for label in config.labels]
        if generator is not None:
            with torch.no_grad():
                for module in self.modules():
                    if isinstance(module, nn.Conv2d):
                        bound = (6 / module.weight[0].numel()) ** 0.5  # Kaiming-uniform, ReLU gain
                        module.weight.uniform_(-bound, bound, generator=generator)
                        module.bias.zero_()

    @property
    def labels(self) -> list[str]:
        return list(self.config.labels)

    @property
    def num_features(self) -> int:
        return self.config.num_features

    @property
    def image_size(self) -> int:
        """Side of the images this reader reads [pixels] (`config.image_size`)."""
        return self.config.image_size

    def check_images(self, images, name: str = "images") -> torch.Tensor:
        """`check_images` at this reader's side: `(batch, 3, image_size, image_size)` as float32 in [0, 1]."""
        return check_images(images, name, self.config.image_size)

    def feature_map(self, images) -> torch.Tensor:
        """The map `(batch, num_features, 8, 8)` of `images` `(batch, 3, S, S)` (`S = image_size`; uint8 or
        float in [0, 1])."""
        x = self.check_images(images).to(self.cell_head.weight.device)
        return self.trunk(self.stem(x - 0.5))

    def features(self, images) -> torch.Tensor:
        """Penultimate features `(batch, num_features)` (FID's feature space) of `images` `(batch, 3, S, S)`."""
        return self.feature_map(images).amax(dim=(2, 3))

    def forward(self, images) -> torch.Tensor:
        """Logits `(batch, labels)` of `images` `(batch, 3, S, S)`; sigmoid > 0.5 means "present"."""
        return torch.logit(self.label_probabilities(self.cell_logits(self.feature_map(images))), eps=1e-6)

    def cell_logits(self, feature_map: torch.Tensor) -> list[torch.Tensor]:
        """Per attribute of `CELL_CLASSES`, logits `(batch, classes, 4, 4)` of a `feature_map`
        `(batch, num_features, 8, 8)`."""
        cells = F.adaptive_max_pool2d(feature_map, CELL_SIDE)
        return list(self.cell_head(cells).split(list(CELL_CLASSES.values()), dim=1))

    def label_probabilities(self, cell_logits: list[torch.Tensor]) -> torch.Tensor:
        """Presence probabilities `(batch, labels)` from `cell_logits`: "cube" is the largest P(cube) over the
        cells, "red cube" the largest P(cube) * P(red) (a red object and a cube elsewhere do not make a red cube)."""
        shape = cell_logits[0].softmax(1)[:, 1:].flatten(2)  # (batch, shapes, cells), class 0 (empty) dropped
        columns = []
        for shape_index, attribute, value_index in self._label_parts:
            p = shape[:, shape_index]
            if attribute is not None:
                p = p * cell_logits[ATTRIBUTES.index(attribute)].softmax(1)[:, value_index].flatten(1)
            columns.append(p.amax(1))
        return torch.stack(columns, 1)

    @torch.no_grad()
    def predict(self, images, batch_size: int = 256) -> torch.Tensor:
        """Presence probabilities `(batch, labels)` in eval mode, `batch_size` images at a time."""
        self.check_images(images)
        was_training = self.training
        self.eval()
        probs = torch.cat([torch.sigmoid(self(images[i : i + batch_size])) for i in range(0, len(images), batch_size)])
        self.train(was_training)
        return probs

    def save_pretrained(self, folder) -> None:
        """Writes `model.safetensors` and `reader_config.json` into `folder`."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}, str(folder / WEIGHTS_FILE))
        (folder / CONFIG_FILE).write_text(json.dumps(dataclasses.asdict(self.config), indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, folder) -> ShapesAttributeReader:
        """The reader `save_pretrained(folder)` wrote, in eval mode (safetensors only)."""
        from safetensors.torch import load_file

        folder = Path(folder)
        missing = [name for name in (CONFIG_FILE, WEIGHTS_FILE) if not (folder / name).is_file()]
        if missing:
            raise ValueError(f"`folder` {folder} lacks {missing}; write it with `save_pretrained`.")
        reader = cls(ShapesReaderConfig(**json.loads((folder / CONFIG_FILE).read_text())))
        reader.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
        return reader.eval()


def _label_parts(label: str) -> tuple:
    """`"cube"` -> (0, None, None); `"red cube"` -> (0, "color", 1)."""
    *value, shape = label.split()
    if not value:
        return SHAPES.index(shape), None, None
    attribute = next(name for name, values in ATTRIBUTE_VALUES.items() if value[0] in values)
    return SHAPES.index(shape), attribute, ATTRIBUTE_VALUES[attribute].index(value[0])


def scene_labels(objects: list[dict], labels=READER_LABELS) -> torch.Tensor:
    """Multi-hot targets `(labels,)` of one scene from its scene-graph objects (dicts with size, color, material,
    shape).

    >>> target = scene_labels([{"size": "small", "color": "red", "material": "metal", "shape": "cube"}])
    >>> [READER_LABELS[i] for i in target.nonzero().flatten().tolist()]
    ['cube', 'small cube', 'red cube', 'metal cube']
    """
    present = set()
    for o in objects:
        present.add(o["shape"])
        present.update(f"{o[name]} {o['shape']}" for name in ATTRIBUTE_VALUES)
    return torch.tensor([label in present for label in labels], dtype=torch.float32)


def shapes_reader_data(num_scenes: int, split: str = "train", seed: int = 0, image_size: int = IMAGE_SIZE) -> dict:
    """UniToCom's images of `num_scenes` scenes of `split` with their captions and targets.

    Scenes as `UniToComCorpus.build` makes them (`TaiChiCorpus`, up to 3 objects, rendered at `2 * image_size`
    px and block-averaged to `image_size`: 64 to 32 px by default). Returns `{"images": uint8 (num_scenes, 3,
    image_size, image_size), "captions": 5 strings per scene, "labels": float multi-hot (num_scenes,
    len(READER_LABELS)), "cells": int64 (num_scenes, 4, 4, 4)}` (`cells`: `TaiChiCorpus.cell_targets` on the
    4 x 4 grid, 0 = empty else 1 + value index, `ATTRIBUTES` order). The scenes (captions, labels, cells) do not
    depend on `image_size`, only their pixels do.

    >>> data = shapes_reader_data(2, "test")
    >>> data["images"].shape, data["labels"].shape, data["cells"].shape, len(data["captions"][0])
    (torch.Size([2, 3, 32, 32]), torch.Size([2, 39]), torch.Size([2, 4, 4, 4]), 5)
    >>> shapes_reader_data(2, "test", image_size=64)["images"].shape
    torch.Size([2, 3, 64, 64])
    """
    check_count("num_scenes", num_scenes, 1)
    image_size = check_image_size(image_size)
    if split not in SPLIT_SIZE_KEYS:
        raise ValueError(f"`split` must be one of {list(SPLIT_SIZE_KEYS)}, got {split!r}.")
    data = {SPLIT_SIZE_KEYS[split]: num_scenes, "questions_per_scene": 1, "max_objects": 3,
            "image_size": 2 * image_size, "sentiment_sentences": 2, "seed": seed}  # as UniToComCorpus.build
    world = TaiChiCorpus.build(data, split)
    images = torch.from_numpy(np.ascontiguousarray(world.images.transpose(0, 3, 1, 2))).float()
    images = F.avg_pool2d(images, 2).round().to(torch.uint8)
    labels = torch.stack([scene_labels(graph["objects"]) for graph in world.graphs])
    cells = world.cell_targets(CELL_SIDE, range(num_scenes)).reshape(num_scenes, CELL_SIDE, CELL_SIDE, len(ATTRIBUTES))
    return {"images": images, "captions": world.captions, "labels": labels, "cells": cells}


def _caption_list(captions, count: int) -> list[list[str]]:
    """`captions` (one string or a list of strings per image) as lists of strings, checked against `count`."""
    if isinstance(captions, str) or len(captions) != count:
        raise ValueError(f"`captions` must hold one caption (or list of captions) per image: {count} images.")
    return [[c] if isinstance(c, str) else list(c) for c in captions]


def attribute_accuracy(reader: ShapesAttributeReader, images, captions) -> dict:
    """How many of the captions' noun phrases the reader finds in the images.

    Each caption's phrases come from `caption_phrases` ("a small shiny sphere" -> ({size: small, material:
    metal}, sphere)); a phrase is satisfied when the reader says its shape is present and every stated (value,
    shape) pair is present (probability > 0.5).

    Args:
        reader: a (trained) `ShapesAttributeReader`.
        images: `(batch, 3, S, S)` (`S = reader.image_size`), uint8 or float in [0, 1].
        captions: per image a caption or a list of captions (their phrases pooled).

    Returns:
        `{"attribute_accuracy": satisfied phrases / all phrases, "image_accuracy": share of images with every
        phrase satisfied, "num_phrases": all phrases}` (accuracies are NaN without phrases).

    >>> reader = ShapesAttributeReader()
    >>> with torch.no_grad():                          # a reader that sees a (large red rubber) cube everywhere
    ...     _ = reader.cell_head.weight.zero_(), reader.cell_head.bias.zero_()
    ...     reader.cell_head.bias[[1, 4 + 1, 12, 14]] = 9.0  # cube (after empty), red, large, rubber
    >>> attribute_accuracy(reader, torch.zeros(2, 3, 32, 32), ["a cube", "a blue cube and a sphere"])
    {'attribute_accuracy': 0.3333333333333333, 'image_accuracy': 0.5, 'num_phrases': 3}
    """
    from tokcom.training.evaluate_taichi import caption_phrases

    images = reader.check_images(images)
    captions = _caption_list(captions, len(images))
    present = (reader.predict(images) > 0.5).cpu().tolist()
    index = {label: i for i, label in enumerate(reader.labels)}
    phrase_hits, image_hits = [], []
    for row, texts in zip(present, captions):
        hits = []
        for stated, shape in (phrase for text in texts for phrase in caption_phrases(text)):
            needed = [shape] + [f"{value} {shape}" for value in stated.values()]
            missing = [label for label in needed if label not in index]
            if missing:
                raise ValueError(f"The reader has no label for {missing}; its labels: {reader.labels}.")
            hits.append(all(row[index[label]] for label in needed))
        phrase_hits += hits
        image_hits.append(all(hits))
    return {"attribute_accuracy": float(np.mean(phrase_hits)) if phrase_hits else float("nan"),
            "image_accuracy": float(np.mean(image_hits)) if phrase_hits else float("nan"),
            "num_phrases": len(phrase_hits)}  # fmt: skip


class ReaderFeatureExtractor(nn.Module):
    """The reader's `features` as torchmetrics' FID feature module.

    `FrechetInceptionDistance(feature=module)` reads `num_features` from the module (so it skips its
    `(1, 3, 299, 299)` probe) and, with `normalize=True`, passes images through unchanged. Accepted here: uint8
    in [0, 255] or float in [0, 1], `(batch, 3, H, W)`; other sides are resized to the reader's `image_size`
    (antialiased bilinear).
    The reader runs in eval mode whatever its mode outside.
    """

    def __init__(self, reader: ShapesAttributeReader):
        super().__init__()
        self.reader = reader
        self.num_features = reader.num_features

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Features `(batch, num_features)`, the reader in eval mode (batch-norm statistics fixed)."""
        side = self.reader.image_size
        if images.dim() == 4 and tuple(images.shape[-2:]) != (side, side):
            images = images.float() / 255 if images.dtype == torch.uint8 else images
            images = F.interpolate(images, size=(side, side), mode="bilinear", antialias=True).clamp(0, 1)
        was_training = self.reader.training
        features = self.reader.eval().features(images)
        self.reader.train(was_training)
        return features


def frechet_distance(reader: ShapesAttributeReader, real_images, fake_images, batch_size: int = 256) -> float:
    """FID between `real_images` and `fake_images` (each `(batch >= 2, 3, S, S)`, `S = reader.image_size`; uint8
    or float in [0, 1]) in the reader's feature space, with torchmetrics' `FrechetInceptionDistance`.

    Inception-v3 weights cannot be downloaded here, so the features are this reader's (trained on the shapes
    world), not Inception's: the numbers are not comparable with published FIDs, and only with FIDs of the same
    reader at the same sample size (FID is biased upwards at small sizes; see `reader_baselines`' noise floor).

    >>> reader = ShapesAttributeReader(generator=torch.Generator().manual_seed(0))
    >>> images = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    >>> abs(frechet_distance(reader, images, images)) < 1e-3
    True
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    real, fake = reader.check_images(real_images, "real_images"), reader.check_images(fake_images, "fake_images")
    if len(real) < 2 or len(fake) < 2:
        raise ValueError(f"FID needs >= 2 images per set, got {len(real)} `real_images` and {len(fake)} `fake_images`.")
    metric = FrechetInceptionDistance(feature=ReaderFeatureExtractor(reader), normalize=True,
                                      input_img_size=(3, reader.image_size, reader.image_size))  # fmt: skip
    for images, is_real in ((real, True), (fake, False)):
        for i in range(0, len(images), batch_size):
            metric.update(images[i : i + batch_size], real=is_real)
    return float(metric.compute())


def reader_baselines(reader: ShapesAttributeReader, images, captions, seed: int = 0) -> dict:
    """What the metrics give on real images, to read generated images' numbers against.

    Returns `{"real_own": attribute_accuracy(images, their captions)` (the reader's ceiling), `"shuffled":` the
    same with every image paired with another scene's captions (the floor), `"fid_real_halves":` FID between two
    disjoint random halves of `images` (FID's noise floor at half this sample size)`}`.

    Args:
        images: real images `(batch >= 4, 3, S, S)` (`S = reader.image_size`); captions: one caption or list
            per image.
        seed: seed of the shuffle and of the split into halves.

    >>> data = shapes_reader_data(8, "test")
    >>> base = reader_baselines(ShapesAttributeReader(), data["images"], data["captions"])
    >>> sorted(base), base["real_own"]["num_phrases"] == base["shuffled"]["num_phrases"]
    (['fid_real_halves', 'real_own', 'shuffled'], True)
    """
    images = reader.check_images(images)
    captions = _caption_list(captions, len(images))
    count = len(images)
    if count < 4:
        raise ValueError(f"`images` must hold >= 4 images for the baselines, got {count}.")
    generator = torch.Generator().manual_seed(check_count("seed", seed))
    order = torch.randperm(count, generator=generator).tolist()
    shift = int(torch.randint(1, count, (1,), generator=generator))  # order[i] gets order[i + shift]'s captions
    shuffled = [None] * count
    for i, image in enumerate(order):
        shuffled[image] = captions[order[(i + shift) % count]]
    half = torch.tensor(order[: count // 2]), torch.tensor(order[count // 2 : 2 * (count // 2)])
    return {"real_own": attribute_accuracy(reader, images, captions),
            "shuffled": attribute_accuracy(reader, images, shuffled),
            "fid_real_halves": frechet_distance(reader, images[half[0]], images[half[1]])}  # fmt: skip


def label_accuracy(reader: ShapesAttributeReader, images, labels: torch.Tensor) -> dict:
    """Per label group (shape, size, color, material): `accuracy` over all (image, label) pairs, `all_absent`
    (the accuracy of always answering "absent"), `recall` of present labels, `exact` (share of images with the
    whole group right). `images`: `(batch, 3, S, S)`, `S = reader.image_size`."""
    predicted = (reader.predict(images) > 0.5).float().cpu()
    report = {}
    for group, names in LABEL_GROUPS.items():
        columns = [reader.labels.index(name) for name in names if name in reader.labels]
        p, t = predicted[:, columns], labels[:, columns]
        report[group] = {"accuracy": float((p == t).float().mean()), "all_absent": float((t == 0).float().mean()),
                         "recall": float(p[t == 1].mean()), "exact": float((p == t).all(1).float().mean())}  # fmt: skip
    return report


def train_attribute_reader(num_scenes: int = 4000, steps: int = 1500, seed: int = 0, batch_size: int = 64,
                           test_scenes: int = 500, learning_rate: float = 1e-2,
                           config: ShapesReaderConfig | None = None, progress: bool = True,
                           image_size: int | None = None):  # fmt: skip
    """Trains a reader on `num_scenes` scenes of the training split (`shapes_reader_data`, labels from the scene
    graphs) and measures it on `test_scenes` scenes of the test split.

    The images' side is `config.image_size` when `config` is given (then `image_size` must be None or equal to
    it), else `image_size` (default 32) with the default config at that side.

    1. build both splits (scene seed `seed`); 2. `steps` AdamW steps on random batches (random horizontal flips:
    labels do not depend on left/right) of binary cross-entropy on the labels plus cross-entropy on the 4 x 4
    cells' objects (`TaiChiCorpus.cell_targets`; empty cells next to an object, which it may overlap, are left
    out of the shape loss), one-cycle learning rate; 3. held-out `label_accuracy` and `reader_baselines` (each
    scene's 5 captions pooled).

    Returns `(reader, report)`: the reader in eval mode, and `{"label_accuracy": per group, "baselines":
    reader_baselines(...), "train_seconds", "num_scenes", "steps", "seed"}`.

    Measured with the defaults (seed 0; about 3.5 min of one CPU thread, data and evaluation included): held-out
    phrase accuracy 0.74 on the scenes' own captions against 0.18 shuffled (whole images 0.47 against 0.01);
    per-label accuracy / recall of present labels: shape 0.85 / 0.85, size 0.89 / 0.82, colour 0.97 / 0.79,
    material 0.85 / 0.66 (answering "absent" everywhere: 0.49, 0.71, 0.92, 0.72). FID between two halves of the
    500 test images: 12.2; test against 500 validation images: 5.1; against uniform noise: 545.

    Measured at 64 px, `train_attribute_reader(image_size=64)` (otherwise the defaults, seed 0; 554 s of one niced
    CPU thread on 2 cores shared with another training job, about 2.8x the 32-px run; in a side-by-side
    micro-benchmark a 64-px step costs 1.7x a 32-px one, 0.24 against 0.14 s, and the 128-px rendering of the
    data about 3.3x): held-out phrase accuracy 0.75 on the scenes' own captions against 0.18 shuffled (whole
    images 0.52 against 0.01); per-label accuracy / recall: shape 0.85 / 0.84, size 0.90 / 0.79, colour 0.97 /
    0.75, material 0.88 / 0.73 (answering "absent": 0.49, 0.71, 0.92, 0.72). FID between two halves of the 500
    test images: 11.3; test against 500 validation images: 4.7; against uniform noise: 2223.

    >>> tiny = ShapesReaderConfig(channels=(4, 4, 4), num_features=8)
    >>> reader, report = train_attribute_reader(8, steps=2, test_scenes=4, config=tiny, progress=False)
    >>> sorted(report["label_accuracy"]), report["baselines"]["real_own"]["num_phrases"] > 0
    (['color', 'material', 'shape', 'size'], True)
    """
    for name, value, minimum in (("num_scenes", num_scenes, 1), ("steps", steps, 1), ("batch_size", batch_size, 1),
                                 ("test_scenes", test_scenes, 4), ("seed", seed, 0)):  # fmt: skip
        check_count(name, value, minimum)
    if config is None:
        config = ShapesReaderConfig(image_size=IMAGE_SIZE if image_size is None else image_size)
    elif image_size is not None and check_image_size(image_size) != config.image_size:
        raise ValueError(f"`image_size` {image_size} differs from `config.image_size` {config.image_size}; "
                         "give one of them.")  # fmt: skip
    side = config.image_size
    start = time.perf_counter()
    # 1. data: UniToCom's images at the reader's side, multi-hot labels and cell targets from the scene graphs
    train = shapes_reader_data(num_scenes, "train", seed, image_size=side)
    test = shapes_reader_data(test_scenes, "test", seed, image_size=side)
    generator = torch.Generator().manual_seed(seed)
    reader = ShapesAttributeReader(config, generator=generator)
    columns = [READER_LABELS.index(label) for label in reader.labels]
    # 2. training
    optimizer = torch.optim.AdamW(reader.parameters(), lr=learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=learning_rate, total_steps=steps, pct_start=0.15)
    reader.train()
    for step in range(steps):
        picks = torch.randint(0, num_scenes, (batch_size,), generator=generator)
        batch, cells = train["images"][picks].float() / 255, train["cells"][picks]
        flip = torch.rand(batch_size, generator=generator) < 0.5
        batch[flip], cells[flip] = batch[flip].flip(-1), cells[flip].flip(2)  # (batch, 3, y, x), (batch, y, x, 4)
        cell_logits = reader.cell_logits(reader.feature_map(batch))
        probabilities = reader.label_probabilities(cell_logits).clamp(1e-6, 1 - 1e-6)
        loss = F.binary_cross_entropy(probabilities, train["labels"][picks][:, columns])
        # Shape: empty or which (empty cells next to an object are skipped); the others: the objects' cells only.
        occupied = cells[..., 0] > 0
        near = F.max_pool2d(occupied[:, None].float(), 3, stride=1, padding=1)[:, 0] > 0
        targets = [cells[..., 0].masked_fill(near & ~occupied, -100)]
        targets += [(cells[..., k] - 1).masked_fill(~occupied, -100) for k in range(1, len(ATTRIBUTES))]
        for logits, target in zip(cell_logits, targets):
            loss = loss + F.cross_entropy(logits, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if progress and (step + 1) % max(steps // 10, 1) == 0:
            print(f"step {step + 1}/{steps}  loss {loss.item():.4f}  {time.perf_counter() - start:.0f} s", flush=True)
    reader.eval()
    train_seconds = time.perf_counter() - start
    # 3. held-out measurement on the test split
    report = {"label_accuracy": label_accuracy(reader, test["images"], test["labels"][:, columns]),
              "baselines": reader_baselines(reader, test["images"], test["captions"], seed),
              "train_seconds": train_seconds, "num_scenes": num_scenes, "steps": steps, "seed": seed}  # fmt: skip
    if progress:
        for group, row in report["label_accuracy"].items():
            print(f"held-out {group:8s} " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()))
        base = report["baselines"]
        print(f"held-out attribute accuracy: real-own {base['real_own']['attribute_accuracy']:.3f}  shuffled "
              f"{base['shuffled']['attribute_accuracy']:.3f}  FID(real halves) {base['fid_real_halves']:.3f}  "
              f"({train_seconds:.0f} s)")  # fmt: skip
    return reader, report
