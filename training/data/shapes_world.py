"""The shapes world: CLEVR-schema scenes with scene graphs, CLEVR questions and COCO-format captions.

Everything mirrors a real dataset's files so the same code reads either:

* scene graphs in CLEVR's scenes format (`scene_graphs`): per image `image_index`, `image_filename`, `split`,
  `objects` (shape, color, size, material, `3d_coords`, `rotation`, `pixel_coords`) and `relationships`
  (`left` / `right` / `front` / `behind`: for object i, the indices of the objects that stand in that
  relation to it; left/right from the image columns, front/behind from camera depth);
* questions in CLEVR's questions format (`shapes_questions.generate_questions`);
* captions in COCO's captions format (`coco_captions`: `images`, `annotations`, five varied captions per image)
  and one canonical structured description per image (`describe_scene`, for text-to-image conditioning);
* `datasets.Dataset`s with the features of the real-data loaders (`clevr_features`, `coco_caption_features`),
  and `write_clevr`, which writes CLEVR's folder layout (images/, questions/, scenes/).

Images are the high-resolution view (default 128x128); `shapes_render.low_res_view` gives the low-resolution
one (default 32x32), in which material and the shape of small objects are not readable.

>>> ds = generate_clevr(2, seed=0, questions_per_image=2)
>>> ds.column_names[:5]
['image_index', 'image_filename', 'image', 'question_index', 'question']
>>> ds[0]["image"].size
(128, 128)
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import datasets
import numpy as np

from .shapes_questions import QUESTION_FAMILIES, RELATIONS, execute_program, generate_questions
from .shapes_render import ShapesScenes, ShapesWorldConfig, generate_shapes_scenes
from .world import SPLIT_NAMES, build_dataset, check_count, child_seeds, encode_png, seed_key, split_seeds

__all__ = [
    "CLEVR_SPLIT_NAMES",
    "clevr_features",
    "coco_caption_features",
    "coco_captions",
    "describe_scene",
    "generate_clevr",
    "generate_clevr_splits",
    "generate_shapes_captions",
    "generate_shapes_world",
    "scene_graph_accuracy",
    "scene_graphs",
    "write_clevr",
]

CLEVR_SPLIT_NAMES = {"train": "train", "validation": "val", "test": "test"}  # our split -> CLEVR's file names
_VERSION = 1  # bump when the world changes (part of dataset fingerprints)
_REL_EPS_PX = 0.02  # left/right need this fraction of the image width between object centres
_REL_EPS_DEPTH = 0.2  # front/behind need this depth difference [world units]


def clevr_features() -> datasets.Features:
    """Row schema of CLEVR questions (one row per question), shared with `real_datasets.load_clevr`. `program` and
    `scene` are JSON strings ("" when unknown, e.g. CLEVR's test split).

    >>> list(clevr_features())[-3:]
    ['split', 'program', 'scene']
    """
    return datasets.Features({
        "image_index": datasets.Value("int64"), "image_filename": datasets.Value("string"), "image": datasets.Image(),
        "question_index": datasets.Value("int64"), "question": datasets.Value("string"),
        "answer": datasets.Value("string"), "question_family_index": datasets.Value("int64"),
        "split": datasets.Value("string"), "program": datasets.Value("string"), "scene": datasets.Value("string"),
    })  # fmt: skip


def coco_caption_features() -> datasets.Features:
    """Row schema of captioned images (one row per image), shared with `real_datasets.load_coco_captions`;
    `description` is the canonical structured description ("" for real COCO).

    >>> list(coco_caption_features())
    ['image_id', 'file_name', 'image', 'captions', 'description']
    """
    return datasets.Features({
        "image_id": datasets.Value("int64"), "file_name": datasets.Value("string"), "image": datasets.Image(),
        "captions": datasets.List(datasets.Value("string")), "description": datasets.Value("string"),
    })  # fmt: skip


def _filename(split: str, index: int) -> str:
    return f"CLEVR_{CLEVR_SPLIT_NAMES.get(split, split)}_{index:06d}.png"


def scene_graphs(scenes: ShapesScenes, split: str = "train", image_index_start: int = 0) -> list[dict]:
    """CLEVR scene graphs of `scenes` (see the module docstring for the fields).

    >>> g = scene_graphs(generate_shapes_scenes(1, seed=0, render=False))[0]
    >>> sorted(g["relationships"]), g["image_filename"]
    (['behind', 'front', 'left', 'right'], 'CLEVR_train_000000.png')
    """
    width = scenes.config.image_size
    graphs = []
    for i in range(len(scenes)):
        objects = scenes.objects(i)
        px = scenes.pixel_coords[i, : len(objects), 0]
        depth = scenes.pixel_coords[i, : len(objects), 2]
        relate = {
            "left": lambda a, b: px[b] < px[a] - _REL_EPS_PX * width,
            "right": lambda a, b: px[b] > px[a] + _REL_EPS_PX * width,
            "front": lambda a, b: depth[b] < depth[a] - _REL_EPS_DEPTH,
            "behind": lambda a, b: depth[b] > depth[a] + _REL_EPS_DEPTH,
        }
        relationships = {
            rel: [[b for b in range(len(objects)) if b != a and relate[rel](a, b)] for a in range(len(objects))]
            for rel in RELATIONS
        }
        index = image_index_start + i
        graphs.append({"split": CLEVR_SPLIT_NAMES.get(split, split), "image_index": index,
                       "image_filename": _filename(split, index), "objects": objects,
                       "relationships": relationships})  # fmt: skip
    return graphs


def describe_scene(graph: dict, image_size: int = 128) -> str:
    """The canonical structured description of a scene graph: objects left to right, each as
    "size color material shape at (x, y)" with its centre in [0, 1] image coordinates.

    >>> describe_scene({"objects": [{"size": "large", "color": "red", "material": "metal", "shape": "cube",
    ...                 "pixel_coords": [64, 32, 7.0]}]}, image_size=128)
    '1 object: large red metal cube at (0.50, 0.25).'
    """
    objects = sorted(graph["objects"], key=lambda o: (o["pixel_coords"][0], o["pixel_coords"][1]))
    parts = [
        f"{o['size']} {o['color']} {o['material']} {o['shape']} at "
        f"({o['pixel_coords'][0] / image_size:.2f}, {o['pixel_coords'][1] / image_size:.2f})"
        for o in objects
    ]
    noun = "object" if len(objects) == 1 else "objects"
    return f"{len(objects)} {noun}: " + "; ".join(parts) + "."


_NUMBERS = ("no", "one", "two", "three", "four", "five", "six")
_MATERIAL_WORDS = {"metal": ("metal", "shiny", "metallic"), "rubber": ("rubber", "matte", "rubber")}


def _object_phrase(o: dict, rng, full: bool) -> str:
    words = [o["size"], o["color"], _MATERIAL_WORDS[o["material"]][int(rng.integers(3))], o["shape"]]
    if not full:  # a partial mention, like most real captions
        keep = sorted(rng.choice(3, size=int(rng.integers(1, 3)), replace=False).tolist())
        words = [words[k] for k in keep] + [o["shape"]]
    article = "an" if words[0][0] in "aeiou" else "a"
    return f"{article} {' '.join(words)}"


def _captions(graph: dict, rng, count: int) -> list[str]:
    objects = sorted(graph["objects"], key=lambda o: o["pixel_coords"][0])
    n = len(objects)
    things = "object" if n == 1 else "objects"
    templates = [
        lambda: f"{_NUMBERS[n].capitalize()} {things} on a gray floor: "
        + ", ".join(_object_phrase(o, rng, True) for o in objects) + ".",
        lambda: f"A rendered scene with {_NUMBERS[n]} geometric {things}, including "
        + _object_phrase(objects[int(rng.integers(n))], rng, False) + ".",
        lambda: (f"{_object_phrase(objects[0], rng, False).capitalize()} stands to the left of "
                 f"{_object_phrase(objects[-1], rng, False)}." if n > 1 else
                 f"{_object_phrase(objects[0], rng, True).capitalize()} alone on the ground."),
        lambda: "From left to right: " + ", then ".join(_object_phrase(o, rng, False) for o in objects) + ".",
        lambda: f"There {'is' if n == 1 else 'are'} {_NUMBERS[n]} {things} here; the largest colors are "
        + " and ".join(sorted({o["color"] for o in objects if o["size"] == "large"} or {objects[0]["color"]})) + ".",
        lambda: f"Simple 3D shapes: {', '.join(sorted({o['shape'] + 's' for o in objects}))} in "
        + f"{len({o['color'] for o in objects})} color{'s' if len({o['color'] for o in objects}) > 1 else ''}.",
    ]  # fmt: skip
    order = rng.permutation(len(templates))[:count]
    return [templates[k]() for k in order]


def coco_captions(graphs: list[dict], seed=0, captions_per_image: int = 5, image_size: int = 128,
                  annotation_id_start: int = 0) -> dict:  # fmt: skip
    """COCO captions JSON (`info`, `images`, `annotations`) for scene graphs; `images[k]["id"]` is the graph's
    `image_index`. Captions vary in phrasing and detail (some mention every object, some one).

    >>> g = scene_graphs(generate_shapes_scenes(2, seed=0, render=False))
    >>> c = coco_captions(g)
    >>> len(c["images"]), len(c["annotations"])
    (2, 10)
    """
    captions_per_image = check_count("captions_per_image", captions_per_image, 1)
    if captions_per_image > 6:
        raise ValueError(f"`captions_per_image` must be in [1, 6], got {captions_per_image}.")
    rng = np.random.default_rng(child_seeds(seed, 1)[0])
    images, annotations = [], []
    for graph in graphs:
        images.append({"id": graph["image_index"], "file_name": graph["image_filename"],
                       "height": image_size, "width": image_size})  # fmt: skip
        for caption in _captions(graph, rng, captions_per_image):
            annotations.append({"id": annotation_id_start + len(annotations), "image_id": graph["image_index"],
                                "caption": caption})  # fmt: skip
    return {"info": {"description": "tokcom shapes world captions"}, "images": images, "annotations": annotations}


def generate_shapes_world(num_images: int, seed=0, config: ShapesWorldConfig | None = None, split: str = "train",
                          questions_per_image: int = 10, render: bool = True) -> dict:  # fmt: skip
    """One split of the shapes world as the real datasets' JSON plus the rendered images.

    Returns {"scenes": ShapesScenes, "scene_graphs": {"info", "scenes"}, "questions": {"info", "questions"},
    "captions": COCO dict, "descriptions": [str per image]}.

    >>> w = generate_shapes_world(2, seed=0, questions_per_image=1, render=False)
    >>> len(w["scene_graphs"]["scenes"]), len(w["questions"]["questions"]), len(w["descriptions"])
    (2, 2, 2)
    """
    if split not in SPLIT_NAMES:
        raise ValueError(f"`split` must be one of {SPLIT_NAMES}, got {split!r}.")
    config = config or ShapesWorldConfig()
    scene_seq, question_seq, caption_seq = child_seeds(seed, 3)
    scenes = generate_shapes_scenes(num_images, scene_seq, config, render=render)
    graphs = scene_graphs(scenes, split)
    questions = generate_questions(scenes, graphs, question_seq, questions_per_image, CLEVR_SPLIT_NAMES[split])
    info = {"split": CLEVR_SPLIT_NAMES[split], "version": f"tokcom-shapes-{_VERSION}"}
    return {
        "scenes": scenes, "scene_graphs": {"info": info, "scenes": graphs},
        "questions": {"info": info, "questions": questions},
        "captions": coco_captions(graphs, caption_seq, image_size=config.image_size),
        "descriptions": [describe_scene(g, config.image_size) for g in graphs],
    }  # fmt: skip


def generate_clevr(num_images: int, seed=0, config: ShapesWorldConfig | None = None, split: str = "train",
                   questions_per_image: int = 10) -> datasets.Dataset:  # fmt: skip
    """CLEVR-style VQA rows (`clevr_features`), one per question; each image is PNG-encoded once and shared.

    >>> generate_clevr(1, seed=0, questions_per_image=3).num_rows
    3
    """
    config = config or ShapesWorldConfig()
    world = generate_shapes_world(num_images, seed, config, split, questions_per_image)
    pngs = [encode_png(image) for image in world["scenes"].images]
    graphs = world["scene_graphs"]["scenes"]
    scene_json = [json.dumps(g) for g in graphs]
    rows = world["questions"]["questions"]
    columns = {k: [q[k] for q in rows] for k in ("image_index", "image_filename", "question_index", "question",
                                                "answer", "question_family_index", "split")}  # fmt: skip
    columns["image"] = [pngs[q["image_index"]] for q in rows]
    columns["program"] = [json.dumps(q["program"]) for q in rows]
    columns["scene"] = [scene_json[q["image_index"]] for q in rows]
    recipe = ("clevr", _VERSION, num_images, seed_key(seed), dataclasses.astuple(config), split, questions_per_image)
    return build_dataset(columns, clevr_features(), recipe, split)


def generate_clevr_splits(num_train: int, num_validation: int, num_test: int, seed=0,
                          config: ShapesWorldConfig | None = None, questions_per_image: int = 10):  # fmt: skip
    """Train / validation / test `generate_clevr` splits from disjoint child seeds of `seed`.

    >>> sorted(generate_clevr_splits(1, 1, 1, seed=0, questions_per_image=1))
    ['test', 'train', 'validation']
    """
    counts = dict(zip(SPLIT_NAMES, (num_train, num_validation, num_test)))
    return datasets.DatasetDict({
        name: generate_clevr(counts[name], child, config, name, questions_per_image)
        for name, child in split_seeds(seed).items()
    })  # fmt: skip


def generate_shapes_captions(num_images: int, seed=0, config: ShapesWorldConfig | None = None,
                             split: str = "train") -> datasets.Dataset:  # fmt: skip
    """Captioned images (`coco_caption_features`), one row per image: the same images as
    `generate_clevr(num_images, seed, config, split)`.

    >>> generate_shapes_captions(2, seed=0)[0]["description"].startswith(("1 ", "2 ", "3 ", "4 ", "5 ", "6 "))
    True
    """
    config = config or ShapesWorldConfig()
    world = generate_shapes_world(num_images, seed, config, split, questions_per_image=1)
    captions = {}
    for a in world["captions"]["annotations"]:
        captions.setdefault(a["image_id"], []).append(a["caption"])
    images = world["captions"]["images"]
    columns = {
        "image_id": [im["id"] for im in images], "file_name": [im["file_name"] for im in images],
        "image": [encode_png(image) for image in world["scenes"].images],
        "captions": [captions[im["id"]] for im in images], "description": world["descriptions"],
    }  # fmt: skip
    recipe = ("shapes-captions", _VERSION, num_images, seed_key(seed), dataclasses.astuple(config), split)
    return build_dataset(columns, coco_caption_features(), recipe, split)


def write_clevr(root, num_train: int, num_validation: int, num_test: int, seed=0,
                config: ShapesWorldConfig | None = None, questions_per_image: int = 10) -> Path:  # fmt: skip
    """Write the shapes world in CLEVR's folder layout under `root` and return it:
    `images/<split>/CLEVR_<split>_NNNNNN.png`, `questions/CLEVR_<split>_questions.json`,
    `scenes/CLEVR_<split>_scenes.json` (split names train / val / test), plus COCO-format
    `captions/captions_<split>.json`.

    >>> import tempfile
    >>> root = write_clevr(tempfile.mkdtemp(), 1, 1, 1, seed=0, questions_per_image=1)
    >>> sorted(p.name for p in (root / "questions").iterdir())[0]
    'CLEVR_test_questions.json'
    """
    from PIL import Image

    root = Path(root)
    counts = dict(zip(SPLIT_NAMES, (num_train, num_validation, num_test)))
    for name, child in split_seeds(seed).items():
        world = generate_shapes_world(counts[name], child, config, name, questions_per_image)
        short = CLEVR_SPLIT_NAMES[name]
        image_dir = root / "images" / short
        image_dir.mkdir(parents=True, exist_ok=True)
        for graph, image in zip(world["scene_graphs"]["scenes"], world["scenes"].images):
            Image.fromarray(image).save(image_dir / graph["image_filename"])
        for folder, stem, payload in (("questions", f"CLEVR_{short}_questions.json", world["questions"]),
                                      ("scenes", f"CLEVR_{short}_scenes.json", world["scene_graphs"]),
                                      ("captions", f"captions_{short}.json", world["captions"])):  # fmt: skip
            (root / folder).mkdir(parents=True, exist_ok=True)
            (root / folder / stem).write_text(json.dumps(payload))
    return root


def scene_graph_accuracy(questions: list[dict], graphs: list[dict]) -> dict:
    """Accuracy per family of the perfect-scene-graph reader: `execute_program` on each question's scene graph.

    >>> w = generate_shapes_world(3, seed=0, questions_per_image=2, render=False)
    >>> scene_graph_accuracy(w["questions"]["questions"], w["scene_graphs"]["scenes"])["overall"]
    1.0
    """
    by_index = {g["image_index"]: g for g in graphs}
    hits = {}
    for q in questions:
        ok = execute_program(q["program"], by_index[q["image_index"]]) == q["answer"]
        hits.setdefault(QUESTION_FAMILIES[q["question_family_index"]], []).append(ok)
    out = {family: float(np.mean(h)) for family, h in sorted(hits.items())}
    out["overall"] = float(np.mean([x for h in hits.values() for x in h]))
    return out
