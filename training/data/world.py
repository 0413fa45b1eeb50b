"""Machinery every synthetic world shares: seeds and splits, Arrow columns, dataset building.

The generators (`synthetic_avqa`, `shapes_world`, `sentiment`, `spoken`) and the real-format loaders
(`music_avqa`, `real_datasets`) build their `datasets.Dataset`s through these helpers, so that

* every random draw comes from a `numpy.random.SeedSequence` derived from the user's `seed`
  (`child_seeds`, `split_seeds`), never from global state;
* train / validation / test splits get disjoint child seeds (`SPLIT_NAMES`);
* a dataset's fingerprint hashes the recipe that generated it, not its (large) table (`build_dataset`).

>>> import datasets, numpy as np
>>> from tokcom.training.data.world import build_dataset, child_seeds, split_seeds
>>> [int(np.random.default_rng(s).integers(100)) for s in child_seeds(0, 2)] == \\
...     [int(np.random.default_rng(s).integers(100)) for s in child_seeds(0, 2)]
True
>>> sorted(split_seeds(0))
['test', 'train', 'validation']
>>> ds = build_dataset({"x": [1, 2]}, datasets.Features({"x": datasets.Value("int64")}), recipe=("demo", 0))
>>> list(ds["x"])
[1, 2]
"""

from __future__ import annotations

import hashlib
import io
import re

import datasets
import numpy as np
import pyarrow as pa

__all__ = [
    "SPLIT_NAMES",
    "TEMPLATE_PLACEHOLDER",
    "array_column",
    "build_dataset",
    "check_count",
    "child_seeds",
    "encode_png",
    "media_columns",
    "rows_to_dataset",
    "seed_key",
    "seed_sequence",
    "split_seeds",
    "take_rows",
]

SPLIT_NAMES = ("train", "validation", "test")
TEMPLATE_PLACEHOLDER = re.compile(r"<[^<>]+>")  # "<Object>" slots of MUSIC-AVQA question templates


def seed_sequence(seed) -> np.random.SeedSequence:
    """`seed` (a non-negative int or a SeedSequence) as a SeedSequence.

    >>> seed_sequence(3).entropy
    3
    """
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative int or a numpy SeedSequence, got {seed!r}.")
    return np.random.SeedSequence(int(seed))


def seed_key(seed) -> tuple:
    """A hashable key naming `seed` exactly (entropy and spawn key), for fingerprints and caches.

    >>> seed_key(0) == seed_key(np.random.SeedSequence(0))
    True
    """
    parent = seed_sequence(seed)
    return (parent.entropy, tuple(parent.spawn_key))


def child_seeds(seed, count: int) -> list[np.random.SeedSequence]:
    """Child seed sequences of `seed`, like `SeedSequence.spawn` but without mutating `seed`, so the
    same parent always yields the same children.

    >>> a, b = child_seeds(0, 2)
    >>> a.spawn_key, b.spawn_key
    ((0,), (1,))
    """
    parent = seed_sequence(seed)
    return [np.random.SeedSequence(parent.entropy, spawn_key=(*parent.spawn_key, i)) for i in range(count)]


def split_seeds(seed) -> dict[str, np.random.SeedSequence]:
    """One child seed per split of `SPLIT_NAMES` (the same children `child_seeds(seed, 3)` gives).

    >>> list(split_seeds(0))
    ['train', 'validation', 'test']
    """
    return dict(zip(SPLIT_NAMES, child_seeds(seed, len(SPLIT_NAMES))))


def check_count(name: str, value, minimum: int = 0) -> int:
    """`value` as an int >= `minimum`, else a ValueError naming the argument `name`.

    >>> check_count("num_images", 3)
    3
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}, got {value!r}.")
    return int(value)


def take_rows(array: np.ndarray, index: np.ndarray) -> np.ndarray:
    """`array[index]` along axis 0, through a 2-D view (numpy's N-D uint8 take is ~10x slower).

    >>> take_rows(np.arange(6).reshape(3, 2), np.array([2, 0])).tolist()
    [[4, 5], [0, 1]]
    """
    flat = array.reshape(len(array), int(np.prod(array.shape[1:])))
    return flat[index].reshape(len(index), *array.shape[1:])


def array_column(array: np.ndarray) -> pa.Array:
    """(rows, *shape) array -> one Arrow column of nested fixed-size lists (no Python loop).

    >>> array_column(np.zeros((2, 3, 4), np.uint8)).type
    FixedSizeListType(fixed_size_list<item: fixed_size_list<item: uint8>[4]>[3])
    """
    column = pa.array(np.ascontiguousarray(array).reshape(-1))
    for size in reversed(array.shape[1:]):
        column = pa.FixedSizeListArray.from_arrays(column, size)
    return column


def media_columns(video: np.ndarray, audio: np.ndarray, sampling_rate: int) -> dict:
    """(R, T, H, W, 3) uint8 video and (R, samples) float32 audio -> the `video`, `audio` and
    `sampling_rate` Arrow columns of the AVQA schemas.

    >>> sorted(media_columns(np.zeros((1, 2, 4, 4, 3), np.uint8), np.zeros((1, 8), np.float32), 16000))
    ['audio', 'sampling_rate', 'video']
    """
    rates = pa.array(np.full(len(audio), sampling_rate, np.int32))
    video = array_column(np.asarray(video, np.uint8))
    return {"video": video, "audio": array_column(np.asarray(audio, np.float32)), "sampling_rate": rates}


def build_dataset(columns: dict, features: datasets.Features, recipe: tuple, split=None) -> datasets.Dataset:
    """A Dataset from `columns` (name -> list or Arrow array, one per feature) cast to `features`. The
    fingerprint hashes the generating `recipe` instead of the whole table (hashing ~100 MB of media
    took seconds), so the same recipe always gives the same fingerprint.

    >>> f = datasets.Features({"label": datasets.ClassLabel(names=["neg", "pos"])})
    >>> build_dataset({"label": [1, 0]}, f, recipe=("demo",), split="train").split
    NamedSplit('train')
    """
    missing = [name for name in features if name not in columns]
    if missing:
        raise ValueError(f"`columns` lacks the feature columns {missing}.")
    table = pa.Table.from_pydict({name: columns[name] for name in features})
    table = datasets.table.table_cast(table, features.arrow_schema)
    fingerprint = hashlib.sha256(repr(recipe).encode()).hexdigest()[:16]
    info = datasets.DatasetInfo(features=features)
    if isinstance(split, str):
        split = datasets.NamedSplit(split)
    return datasets.Dataset(table, info=info, split=split, fingerprint=fingerprint)


def rows_to_dataset(rows: list[dict], features: datasets.Features, recipe: tuple, split=None) -> datasets.Dataset:
    """`build_dataset` from a list of row dicts (each with every feature's key); values are encoded by
    `features` (e.g. an `Image` feature takes PIL images, arrays or {"bytes", "path"} dicts).

    >>> f = datasets.Features({"text": datasets.Value("string")})
    >>> rows_to_dataset([{"text": "a"}], f, recipe=("demo",))[0]
    {'text': 'a'}
    """
    encoded = [features.encode_example({name: row[name] for name in features}) for row in rows]
    columns = {name: [row[name] for row in encoded] for name in features}
    return build_dataset(columns, features, recipe, split)


def encode_png(image: np.ndarray) -> dict:
    """(H, W, 3) uint8 array -> {"bytes": PNG, "path": None}, the stored form of a `datasets.Image`, so one
    encoding can be shared by every row that shows the same image.

    >>> encode_png(np.zeros((4, 4, 3), np.uint8))["bytes"][:4]
    b'\\x89PNG'
    """
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format="PNG", compress_level=1)
    return {"bytes": buffer.getvalue(), "path": None}
