"""Loaders for CLEVR, VQAv2, COCO captions, SST-2, IMDB and LibriSpeech on small fixtures in the official layouts."""

import json

import numpy as np
import pytest
import soundfile
from PIL import Image

from tokcom.training.data.real_datasets import (
    decode_audio,
    load_clevr,
    load_coco_captions,
    load_imdb,
    load_librispeech,
    load_sst2,
    load_vqav2,
    vqav2_features,
)
from tokcom.training.data.sentiment import imdb_features, sst2_features
from tokcom.training.data.shapes_world import clevr_features, coco_caption_features, write_clevr
from tokcom.training.data.spoken import librispeech_features


def _jpg(path, colour=(200, 30, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (48, 32), colour).save(path)


def _json(path, payload):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))
    return path


# --- CLEVR ------------------------------------------------------------------------------------


def test_clevr_round_trips_the_generated_layout(tmp_path):
    root = write_clevr(tmp_path / "CLEVR_v1.0", 2, 1, 1, seed=0, questions_per_image=3)
    ds = load_clevr(root / "questions/CLEVR_train_questions.json", root / "images/train",
                    root / "scenes/CLEVR_train_scenes.json")  # fmt: skip
    assert ds.features == clevr_features() and ds.num_rows == 6
    written = json.loads((root / "questions/CLEVR_train_questions.json").read_text())["questions"]
    assert ds["question"] == [q["question"] for q in written] and ds["answer"] == [q["answer"] for q in written]
    assert json.loads(ds[4]["scene"])["image_index"] == ds[4]["image_index"]
    assert ds[0]["image"].size == (128, 128) and ds[0]["split"] == "train"


def test_clevr_test_split_without_answers_and_clear_errors(tmp_path):
    _jpg(tmp_path / "images/test/CLEVR_test_000000.png")
    questions = {"info": {"split": "test"}, "questions": [
        {"image_index": 0, "image_filename": "CLEVR_test_000000.png", "question": "Is there a cube?",
         "question_index": 0, "split": "test"}]}  # fmt: skip
    path = _json(tmp_path / "questions/CLEVR_test_questions.json", questions)
    ds = load_clevr(path, tmp_path / "images/test")
    assert ds[0]["answer"] == "" and ds[0]["program"] == "" and ds[0]["question_family_index"] == -1
    with pytest.raises(FileNotFoundError, match="questions_json"):
        load_clevr(tmp_path / "nope.json", tmp_path / "images/test")
    with pytest.raises(FileNotFoundError, match="CLEVR_test_000001.png"):
        questions["questions"][0]["image_filename"] = "CLEVR_test_000001.png"
        load_clevr(_json(tmp_path / "q2.json", questions), tmp_path / "images/test")
    with pytest.raises(ValueError, match="question 0 lacks the field 'question'"):
        questions["questions"][0]["image_filename"] = "CLEVR_test_000000.png"
        del questions["questions"][0]["question"]
        load_clevr(_json(tmp_path / "q3.json", questions), tmp_path / "images/test")
    with pytest.raises(ValueError, match="'questions'"):
        load_clevr(_json(tmp_path / "q4.json", {"info": {}}), tmp_path / "images/test")
    with pytest.raises(ValueError, match="no scene"):
        load_clevr(path, tmp_path / "images/test", _json(tmp_path / "s.json", {"scenes": [{"image_index": 5}]}))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_clevr(tmp_path / "bad.json", tmp_path / "images/test")


# --- VQAv2 ------------------------------------------------------------------------------------


def _vqa_fixture(tmp_path):
    _jpg(tmp_path / "val2014/COCO_val2014_000000000042.jpg")
    _jpg(tmp_path / "val2014/COCO_val2014_000000000073.jpg", (10, 10, 200))
    questions = {"data_subtype": "val2014", "questions": [
        {"image_id": 42, "question": "What color is the bus?", "question_id": 420},
        {"image_id": 73, "question": "Is it sunny?", "question_id": 730}]}  # fmt: skip
    answers = [{"answer": a, "answer_confidence": "yes", "answer_id": k + 1} for k, a in enumerate(["red"] * 9 + ["orange"])]
    annotations = {"annotations": [
        {"question_id": 420, "image_id": 42, "answers": answers, "multiple_choice_answer": "red",
         "answer_type": "other", "question_type": "what color is the"},
        {"question_id": 730, "image_id": 73, "answers": answers[:1], "multiple_choice_answer": "yes",
         "answer_type": "yes/no", "question_type": "is it"}]}  # fmt: skip
    q = _json(tmp_path / "v2_OpenEnded_mscoco_val2014_questions.json", questions)
    a = _json(tmp_path / "v2_mscoco_val2014_annotations.json", annotations)
    return q, a, questions, annotations


def test_vqav2_reads_questions_annotations_and_coco_images(tmp_path):
    q, a, questions, annotations = _vqa_fixture(tmp_path)
    ds = load_vqav2(q, a, tmp_path / "val2014")
    assert ds.features == vqav2_features() and ds.num_rows == 2
    row = ds[0]
    assert row["question_id"] == 420 and row["multiple_choice_answer"] == "red" and len(row["answers"]) == 10
    assert row["answers"][9] == {"answer": "orange", "answer_confidence": "yes", "answer_id": 10}
    assert abs(np.asarray(row["image"])[0, 0].astype(int) - [200, 30, 30]).max() <= 4  # JPEG
    assert ds[1]["answer_type"] == "yes/no"
    unlabelled = load_vqav2(q, None, tmp_path / "val2014")  # the test split has no annotations
    assert unlabelled[0]["answers"] == [] and unlabelled[0]["multiple_choice_answer"] == ""


def test_vqav2_errors_name_the_problem(tmp_path):
    q, a, questions, annotations = _vqa_fixture(tmp_path)
    annotations["annotations"].pop()
    with pytest.raises(ValueError, match="question_id 730 has no annotation"):
        load_vqav2(q, _json(tmp_path / "a2.json", annotations), tmp_path / "val2014")
    del annotations["annotations"][0]["multiple_choice_answer"]
    questions["questions"].pop()
    with pytest.raises(ValueError, match="'multiple_choice_answer'"):
        load_vqav2(_json(tmp_path / "q2.json", questions), _json(tmp_path / "a3.json", annotations), tmp_path / "val2014")
    (tmp_path / "val2014/COCO_val2014_000000000073.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="image_id 73"):
        load_vqav2(q, None, tmp_path / "val2014")
    with pytest.raises(FileNotFoundError, match="images_dir"):
        load_vqav2(q, a, tmp_path / "train2014")


# --- COCO captions -----------------------------------------------------------------------------


def test_coco_captions_group_captions_per_image(tmp_path):
    _jpg(tmp_path / "val2017/000000000139.jpg")
    _jpg(tmp_path / "val2017/000000000285.jpg")
    payload = {"images": [{"id": 139, "file_name": "000000000139.jpg", "height": 32, "width": 48},
                          {"id": 285, "file_name": "000000000285.jpg", "height": 32, "width": 48}],
               "annotations": [{"id": 1, "image_id": 285, "caption": "A big bear."},
                               {"id": 2, "image_id": 139, "caption": "A living room."},
                               {"id": 3, "image_id": 285, "caption": "A brown bear sitting."}]}  # fmt: skip
    path = _json(tmp_path / "annotations/captions_val2017.json", payload)
    ds = load_coco_captions(path, tmp_path / "val2017")
    assert ds.features == coco_caption_features()
    assert ds["image_id"] == [139, 285] and ds[1]["captions"] == ["A big bear.", "A brown bear sitting."]
    assert ds[0]["description"] == "" and ds[0]["image"].size == (48, 32)
    payload["annotations"].append({"id": 4, "image_id": 139})
    with pytest.raises(ValueError, match="annotation 3 lacks the field 'caption'"):
        load_coco_captions(_json(tmp_path / "c2.json", payload), tmp_path / "val2017")


# --- SST-2 and IMDB ---------------------------------------------------------------------------


def test_sst2_train_and_unlabelled_test_tsv(tmp_path):
    train = tmp_path / "SST-2/train.tsv"
    train.parent.mkdir()
    train.write_text("sentence\tlabel\nhide new secretions from the parental units \t0\ncontains no wit , only labored gags \t0\nthat loves its characters \t1\n")
    ds = load_sst2(train)
    assert ds.features == sst2_features() and ds["label"] == [0, 0, 1] and ds[2]["idx"] == 2
    test = tmp_path / "SST-2/test.tsv"
    test.write_text("index\tsentence\n0\tuneasy mishmash of styles and genres .\n1\tthis film 's relationship to actual tension is the same .\n")
    unlabelled = load_sst2(test)
    assert unlabelled["label"] == [-1, -1] and unlabelled[1]["idx"] == 1
    (tmp_path / "bad.tsv").write_text("sentence\tlabel\ngood\t1\tx\n")
    with pytest.raises(ValueError, match="line 2: expected 2"):
        load_sst2(tmp_path / "bad.tsv")
    (tmp_path / "bad2.tsv").write_text("sentence\tlabel\ngood\tpositive\n")
    with pytest.raises(ValueError, match="'label' must be 0 or 1"):
        load_sst2(tmp_path / "bad2.tsv")
    (tmp_path / "bad3.tsv").write_text("text\tlabel\ngood\t1\n")
    with pytest.raises(ValueError, match="'sentence'"):
        load_sst2(tmp_path / "bad3.tsv")
    with pytest.raises(FileNotFoundError, match="dev.tsv"):
        load_sst2(tmp_path / "SST-2/dev.tsv")


def test_imdb_folder_layout(tmp_path):
    for split, folder, name, text in [("train", "pos", "10_9.txt", "Loved it."), ("train", "pos", "2_7.txt", "Fine."),
                                      ("train", "neg", "0_3.txt", "Awful."), ("test", "neg", "1_1.txt", "Bad.")]:
        (tmp_path / "aclImdb" / split / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / "aclImdb" / split / folder / name).write_text(text)
    ds = load_imdb(tmp_path / "aclImdb", "train")
    assert ds.features == imdb_features()
    assert ds["text"] == ["Awful.", "Fine.", "Loved it."] and ds["label"] == [0, 1, 1]  # neg first, by file id
    with pytest.raises(FileNotFoundError, match="pos"):
        load_imdb(tmp_path / "aclImdb", "test")
    with pytest.raises(ValueError, match="split"):
        load_imdb(tmp_path / "aclImdb", "unsup")


# --- LibriSpeech ------------------------------------------------------------------------------


def _librispeech_fixture(root):
    folder = root / "dev-clean" / "1272" / "128104"
    folder.mkdir(parents=True)
    t = np.arange(8000) / 16000
    for u, hz in ((0, 220.0), (1, 330.0)):
        soundfile.write(folder / f"1272-128104-{u:04d}.flac", 0.3 * np.sin(2 * np.pi * hz * t), 16000)
    (folder / "1272-128104.trans.txt").write_text(
        "1272-128104-0000 MISTER QUILTER IS THE APOSTLE OF THE MIDDLE CLASSES\n1272-128104-0001 NOR IS MISTER QUILTER'S MANNER\n")
    return folder


def test_librispeech_layout(tmp_path):
    folder = _librispeech_fixture(tmp_path / "LibriSpeech")
    ds = load_librispeech(tmp_path / "LibriSpeech", "dev-clean")
    assert ds.features == librispeech_features() and ds.num_rows == 2
    row = ds[1]
    assert row["id"] == "1272-128104-0001" and row["text"] == "NOR IS MISTER QUILTER'S MANNER"
    assert (row["speaker_id"], row["chapter_id"]) == (1272, 128104)
    samples, rate = decode_audio(row["audio"])
    assert rate == 16000 and samples.shape == (8000,) and abs(samples.max() - 0.3) < 0.01
    with pytest.raises(FileNotFoundError, match="test-clean"):
        load_librispeech(tmp_path / "LibriSpeech", "test-clean")
    (folder / "1272-128104-0001.flac").unlink()
    with pytest.raises(FileNotFoundError, match="1272-128104-0001.flac"):
        load_librispeech(tmp_path / "LibriSpeech", "dev-clean")
    (folder / "1272-128104.trans.txt").write_text("1272-128104 NO UTTERANCE NUMBER\n")
    with pytest.raises(ValueError, match="line 1"):
        load_librispeech(tmp_path / "LibriSpeech", "dev-clean")
