"""The shapes world: CLEVR-schema scenes, the LR/HR views and what each shows, CLEVR questions, COCO captions."""

import json
from collections import Counter

import numpy as np
import pytest

from tokcom.training.data.probes import LogisticProbe, RidgeProbe, image_statistics
from tokcom.training.data.shapes_questions import QUESTION_FAMILIES, execute_program, question_only_accuracy
from tokcom.training.data.shapes_render import (
    COLORS,
    MATERIALS,
    SHAPES,
    SIZES,
    ShapesWorldConfig,
    generate_shapes_scenes,
    low_res_view,
)
from tokcom.training.data.shapes_world import (
    clevr_features,
    coco_caption_features,
    generate_clevr,
    generate_clevr_splits,
    generate_shapes_captions,
    generate_shapes_world,
    scene_graph_accuracy,
    write_clevr,
)

ONE_OBJECT = ShapesWorldConfig(min_objects=1, max_objects=1)


@pytest.fixture(scope="module")
def worlds():
    """Questions of 240 training and 160 test scenes (no rendering: questions need only the layouts)."""
    train = generate_shapes_world(240, seed=0, split="train", render=False)
    test = generate_shapes_world(160, seed=1, split="test", render=False)
    return train, test


def test_deterministic_by_seed_and_views_have_the_configured_sizes():
    a = generate_shapes_scenes(6, seed=3)
    b = generate_shapes_scenes(6, seed=3)
    c = generate_shapes_scenes(6, seed=4)
    assert np.array_equal(a.images, b.images) and not np.array_equal(a.images, c.images)
    assert a.images.shape == (6, 128, 128, 3) and a.images.dtype == np.uint8
    assert a.low_res().shape == (6, 32, 32, 3)
    small = generate_shapes_scenes(2, seed=3, config=ShapesWorldConfig(image_size=64, low_res_size=16))
    assert small.images.shape == (2, 64, 64, 3) and small.low_res().shape == (2, 16, 16, 3)
    assert (1 <= a.num_objects).all() and (a.num_objects <= 6).all()
    # the low-resolution view is the block average of the high-resolution one
    block = a.images[0, :4, :4].reshape(-1, 3).astype(float).mean(0)
    assert np.array_equal(a.low_res()[0, 0, 0], np.rint(block).astype(np.uint8))


@pytest.mark.parametrize(
    "kwargs, match",
    [({"image_size": 100, "low_res_size": 32}, "image_size"), ({"max_objects": 7}, "max_objects"),
     ({"min_objects": 0}, "min_objects"), ({"low_res_size": 2}, "low_res_size")],
)  # fmt: skip
def test_config_rejects_bad_sizes(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ShapesWorldConfig(**kwargs)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="num_scenes"):
        generate_shapes_scenes(-1)
    with pytest.raises(ValueError, match="seed"):
        generate_shapes_scenes(1, seed=-2)
    with pytest.raises(ValueError, match="split"):
        generate_shapes_world(1, split="dev")
    with pytest.raises(ValueError, match="low_res_size"):
        low_res_view(np.zeros((1, 10, 10, 3), np.uint8), 4)


def _crops(scenes, low: bool, half_hr: int = 12):
    """Object-centred crops with the same field of view at both resolutions -> (scenes, pixels) in [0, 1]."""
    images, factor = (scenes.low_res(), 4) if low else (scenes.images, 1)
    half = half_hr // factor
    padded = np.pad(images, ((0, 0), (half, half), (half, half), (0, 0)), mode="edge")
    centres = np.rint(scenes.pixel_coords[:, 0, :2] / factor).astype(int)
    return np.stack([padded[i, y : y + 2 * half, x : x + 2 * half] for i, (x, y) in enumerate(centres)]).reshape(
        len(scenes), -1) / 255.0  # fmt: skip


def test_material_and_small_shapes_are_readable_from_the_high_but_not_the_low_resolution_view():
    """The measured probe TaiChi's dual tokenizer depends on: logistic regression on the same image statistics
    (and, for LR, on raw pixels) reads material at >= 95% from 128x128 and at <= chance + 10 points from 32x32;
    a linear probe on object-centred crops reads the shape of small objects from HR, not from LR."""
    train = generate_shapes_scenes(200, seed=10, config=ONE_OBJECT)
    test = generate_shapes_scenes(200, seed=11, config=ONE_OBJECT)
    y_train, y_test = train.material[:, 0], test.material[:, 0]
    assert 0.4 < y_test.mean() < 0.6  # both materials present: chance is ~50%
    hr = LogisticProbe().fit(image_statistics(train.images), y_train).accuracy(image_statistics(test.images), y_test)
    lr_train, lr_test = train.low_res(), test.low_res()
    lr = LogisticProbe().fit(image_statistics(lr_train), y_train).accuracy(image_statistics(lr_test), y_test)
    pixels = RidgeProbe(alpha=1.0).fit(lr_train.reshape(200, -1) / 255.0, y_train)
    lr_pixels = pixels.accuracy(lr_test.reshape(200, -1) / 255.0, y_test)
    assert hr >= 0.95, hr
    assert lr <= 0.60 and lr_pixels <= 0.60, (lr, lr_pixels)
    small_train, small_test = train.size[:, 0] == 1, test.size[:, 0] == 1
    shape_accuracy = {}
    for view, low in (("hr", False), ("lr", True)):
        probe = RidgeProbe(alpha=0.01).fit(_crops(train, low)[small_train], train.shape[small_train, 0])
        shape_accuracy[view] = probe.accuracy(_crops(test, low)[small_test], test.shape[small_test, 0])
    assert shape_accuracy["lr"] <= 1 / 3 + 0.10 and shape_accuracy["hr"] >= shape_accuracy["lr"] + 0.25, shape_accuracy


def test_scene_graphs_follow_clevr_scenes_format(worlds):
    graphs = worlds[0]["scene_graphs"]["scenes"]
    g = graphs[5]
    assert g["image_index"] == 5 and g["image_filename"] == "CLEVR_train_000005.png" and g["split"] == "train"
    for obj in g["objects"]:
        assert obj["shape"] in SHAPES and obj["color"] in COLORS and obj["size"] in SIZES
        assert obj["material"] in MATERIALS and len(obj["3d_coords"]) == 3 and len(obj["pixel_coords"]) == 3
    for graph in graphs:
        rel = graph["relationships"]
        for i in range(len(graph["objects"])):
            for j in rel["left"][i]:
                assert i in rel["right"][j]  # left and right are converse
            for j in rel["behind"][i]:
                assert i in rel["front"][j]
                assert graph["objects"][j]["pixel_coords"][2] > graph["objects"][i]["pixel_coords"][2]
    counts = Counter(len(g["objects"]) for g in graphs)
    assert set(counts) == {1, 2, 3, 4, 5, 6}


def test_questions_cover_every_family_balanced_and_a_scene_graph_reader_is_perfect(worlds):
    train, test = worlds
    questions = train["questions"]["questions"]
    q = questions[0]
    assert set(q) == {"image_index", "image_filename", "question_index", "question", "answer",
                      "question_family_index", "split", "program"}  # fmt: skip
    assert [n["function"] for n in q["program"]][0] == "scene"
    by_family = {f: Counter(x["answer"] for x in questions if QUESTION_FAMILIES[x["question_family_index"]] == f)
                 for f in QUESTION_FAMILIES}  # fmt: skip
    for family, counts in by_family.items():
        assert sum(counts.values()) >= 100, family
        if family in ("exist", "compare_more", "compare_fewer", "compare_equal", "same_attribute", "relate_exist"):
            assert set(counts) == {"yes", "no"} and max(counts.values()) - min(counts.values()) <= 2, (family, counts)
    assert set(by_family["query_color"]) == set(COLORS) and set(by_family["query_material"]) == set(MATERIALS)
    assert max(by_family["query_color"].values()) - min(by_family["query_color"].values()) <= 3
    assert set(by_family["count"]) >= {"0", "1", "2", "3", "4"}
    # a perfect-scene-graph reader answers everything; a question-only reader does poorly
    assert scene_graph_accuracy(test["questions"]["questions"], test["scene_graphs"]["scenes"])["overall"] == 1.0
    blind = question_only_accuracy(questions, test["questions"]["questions"])
    assert blind["family_prior"]["overall"] <= 0.45, blind["family_prior"]
    assert blind["question_prior"]["overall"] <= 0.50, blind["question_prior"]
    assert blind["family_prior"]["query_color"] <= 0.25 and blind["family_prior"]["exist"] <= 0.6


def test_program_executor_detects_a_wrong_answer(worlds):
    train = worlds[0]
    graphs = train["scene_graphs"]["scenes"]
    q = next(x for x in train["questions"]["questions"] if QUESTION_FAMILIES[x["question_family_index"]] == "count")
    scene = json.loads(json.dumps(graphs[q["image_index"]]))
    assert execute_program(q["program"], scene) == q["answer"]
    scene["objects"].append(dict(scene["objects"][0]))  # one more object matching nothing or something
    scene["objects"][-1].update(color="red", shape="cube", size="large", material="metal")
    program = [{"function": "scene", "inputs": [], "value_inputs": []},
               {"function": "count", "inputs": [0], "value_inputs": []}]  # fmt: skip
    assert execute_program(program, scene) == str(len(scene["objects"]))
    with pytest.raises(ValueError, match="Unknown program function"):
        execute_program([{"function": "teleport", "inputs": [], "value_inputs": []}], scene)


def test_captions_follow_coco_format_and_vary(worlds):
    captions = worlds[0]["captions"]
    assert set(captions) >= {"images", "annotations"}
    per_image = Counter(a["image_id"] for a in captions["annotations"])
    assert len(captions["images"]) == 240 and set(per_image.values()) == {5}
    assert len({a["id"] for a in captions["annotations"]}) == len(captions["annotations"])
    first = [a["caption"] for a in captions["annotations"] if a["image_id"] == 0]
    assert len(set(first)) == 5
    # the canonical description names every object with all four attributes
    graph, description = worlds[0]["scene_graphs"]["scenes"][7], worlds[0]["descriptions"][7]
    assert description.startswith(f"{len(graph['objects'])} object")
    for obj in graph["objects"]:
        assert f"{obj['size']} {obj['color']} {obj['material']} {obj['shape']}" in description


def test_datasets_have_the_loader_features_and_disjoint_splits():
    ds = generate_clevr(3, seed=0, questions_per_image=4)
    assert ds.features == clevr_features() and ds.num_rows == 12 and str(ds.split) == "train"
    row = ds[5]
    assert row["image"].size == (128, 128) and json.loads(row["scene"])["image_index"] == row["image_index"]
    assert json.loads(row["program"])[0]["function"] == "scene"
    again = generate_clevr(3, seed=0, questions_per_image=4)
    assert again._fingerprint == ds._fingerprint and again["question"] == ds["question"]
    splits = generate_clevr_splits(2, 1, 1, seed=0, questions_per_image=2)
    assert splits["validation"][0]["image_filename"].startswith("CLEVR_val_")
    assert splits["train"][0]["question"] != splits["test"][0]["question"] or (
        splits["train"][0]["scene"] != splits["test"][0]["scene"])  # fmt: skip
    captions = generate_shapes_captions(2, seed=0)
    assert captions.features == coco_caption_features() and len(captions[0]["captions"]) == 5


def test_write_clevr_layout(tmp_path):
    root = write_clevr(tmp_path / "CLEVR", 2, 1, 1, seed=0, questions_per_image=2)
    assert sorted(p.name for p in (root / "images" / "val").iterdir()) == ["CLEVR_val_000000.png"]
    questions = json.loads((root / "questions" / "CLEVR_train_questions.json").read_text())["questions"]
    scenes = json.loads((root / "scenes" / "CLEVR_train_scenes.json").read_text())["scenes"]
    assert len(questions) == 4 and len(scenes) == 2
    assert all(execute_program(q["program"], scenes[q["image_index"]]) == q["answer"] for q in questions)
    assert (root / "captions" / "captions_test.json").is_file()
