"""Loaders for the real datasets' files: CLEVR, VQAv2, COCO captions, SST-2, IMDB and LibriSpeech.

Each returns a `datasets.Dataset` with the features of the matching generator (`shapes_world.clevr_features`,
`shapes_world.coco_caption_features`, `sentiment.sst2_features`, `sentiment.imdb_features`,
`spoken.librispeech_features`), so training code reads synthetic and real data alike. Images and audio are
stored by path (nothing is decoded at load time). Audio columns are `datasets.Audio(sampling_rate=16000,
decode=False)`: `decode_audio` reads them with soundfile (datasets' own decoding needs the optional
`torchcodec`; `ds.cast_column("audio", datasets.Audio(sampling_rate=16000))` enables it where installed).

Missing files raise `FileNotFoundError` naming the path; malformed content raises `ValueError` naming the file
and the field or line.

>>> import tempfile, pathlib
>>> tsv = pathlib.Path(tempfile.mkdtemp()) / "dev.tsv"
>>> _ = tsv.write_text("sentence\\tlabel\\nnot bad at all .\\t1\\n")
>>> load_sst2(tsv)[0]
{'sentence': 'not bad at all .', 'label': 1, 'idx': 0}
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import datasets
import numpy as np

from .sentiment import imdb_features, sst2_features
from .shapes_world import clevr_features, coco_caption_features
from .world import build_dataset

__all__ = [
    "decode_audio",
    "load_clevr",
    "load_coco_captions",
    "load_imdb",
    "load_librispeech",
    "load_sst2",
    "load_vqav2",
    "vqav2_features",
]


def _stamp(path) -> tuple:
    """Path, size and modification time: part of a loaded dataset's fingerprint, so edited files re-fingerprint."""
    if path is None:
        return (None,)
    stat = Path(path).stat()
    return (str(path), stat.st_size, stat.st_mtime_ns)


def _read_json(path, name: str):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"`{name}` not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"`{name}` ({path}) is not valid JSON: {error}") from None


def _field(record: dict, key: str, where: str):
    if not isinstance(record, dict) or key not in record:
        raise ValueError(f"{where} lacks the field {key!r}.")
    return record[key]


def _list_field(payload, key: str, path) -> list:
    value = _field(payload, key, f"{path}")
    if not isinstance(value, list):
        raise ValueError(f"{path}: field {key!r} must be a list, got {type(value).__name__}.")
    return value


def _image(images_dir: Path, file_name: str) -> dict:
    path = images_dir / file_name
    if not path.is_file():
        raise FileNotFoundError(f"Image not found: {path}")
    return {"path": str(path), "bytes": None}


def _images_dir(images_dir) -> Path:
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise FileNotFoundError(f"`images_dir` not found: {images_dir}")
    return images_dir


def load_clevr(questions_json, images_dir, scenes_json=None) -> datasets.Dataset:
    """CLEVR questions (`CLEVR_<split>_questions.json`) with their images (`images/<split>/`) and, when given,
    scene graphs (`CLEVR_<split>_scenes.json`) -> one row per question (`clevr_features`). CLEVR's test split
    has no answers or programs: those fields load as "" (and `question_family_index` as -1)."""
    payload = _read_json(questions_json, "questions_json")
    questions = _list_field(payload, "questions", questions_json)
    images_dir = _images_dir(images_dir)
    scenes = {}
    if scenes_json is not None:
        for k, scene in enumerate(_list_field(_read_json(scenes_json, "scenes_json"), "scenes", scenes_json)):
            scenes[_field(scene, "image_index", f"{scenes_json}: scene {k}")] = json.dumps(scene)
    rows, images = [], {}
    for k, q in enumerate(questions):
        where = f"{questions_json}: question {k}"
        index, file_name = _field(q, "image_index", where), _field(q, "image_filename", where)
        question = _field(q, "question", where)
        if scenes_json is not None and index not in scenes:
            raise ValueError(f"{where}: image_index {index} has no scene in {scenes_json}.")
        if file_name not in images:
            images[file_name] = _image(images_dir, file_name)
        program = q.get("program")
        rows.append({
            "image_index": int(index), "image_filename": file_name, "image": images[file_name],
            "question_index": int(q.get("question_index", k)), "question": question,
            "answer": str(q.get("answer", "")), "question_family_index": int(q.get("question_family_index", -1)),
            "split": str(q.get("split", payload.get("info", {}).get("split", ""))),
            "program": json.dumps(program) if program is not None else "", "scene": scenes.get(index, ""),
        })  # fmt: skip
    return _to_dataset(rows, clevr_features(), ("clevr", _stamp(questions_json), _stamp(scenes_json)))


def vqav2_features() -> datasets.Features:
    """VQAv2's row schema (one row per question); answer fields are empty for the test split."""
    answer = {"answer": datasets.Value("string"), "answer_confidence": datasets.Value("string"),
              "answer_id": datasets.Value("int64")}  # fmt: skip
    return datasets.Features({
        "question_id": datasets.Value("int64"), "image_id": datasets.Value("int64"),
        "question": datasets.Value("string"), "image": datasets.Image(), "answers": datasets.List(answer),
        "multiple_choice_answer": datasets.Value("string"), "answer_type": datasets.Value("string"),
        "question_type": datasets.Value("string"),
    })  # fmt: skip


def _coco_file(images_dir: Path, image_id: int, subtype: str | None) -> str:
    """VQA's COCO image names: `COCO_<subtype>_<id:012d>.jpg` (2014) or `<id:012d>.jpg` (2017)."""
    names = ([f"COCO_{subtype}_{image_id:012d}.jpg"] if subtype else []) + [f"{image_id:012d}.jpg"]
    for name in names:
        if (images_dir / name).is_file():
            return name
    raise FileNotFoundError(f"Image of image_id {image_id} not found in {images_dir} (tried {', '.join(names)})")


def load_vqav2(questions_json, annotations_json, images_dir) -> datasets.Dataset:
    """VQAv2 (`v2_OpenEnded_mscoco_<subtype>_questions.json`, `v2_mscoco_<subtype>_annotations.json` or None for
    the test split, and the COCO images folder) -> one row per question (`vqav2_features`)."""
    payload = _read_json(questions_json, "questions_json")
    questions = _list_field(payload, "questions", questions_json)
    images_dir = _images_dir(images_dir)
    annotations = {}
    if annotations_json is not None:
        for k, a in enumerate(_list_field(_read_json(annotations_json, "annotations_json"), "annotations",
                                          annotations_json)):  # fmt: skip
            annotations[_field(a, "question_id", f"{annotations_json}: annotation {k}")] = (k, a)
    subtype, rows, files = payload.get("data_subtype"), [], {}
    for k, q in enumerate(questions):
        where = f"{questions_json}: question {k}"
        qid, image_id = int(_field(q, "question_id", where)), int(_field(q, "image_id", where))
        answers, best, answer_type, question_type = [], "", "", ""
        if annotations_json is not None:
            if qid not in annotations:
                raise ValueError(f"{where}: question_id {qid} has no annotation in {annotations_json}.")
            j, a = annotations[qid]
            at = f"{annotations_json}: annotation {j}"
            for r in _field(a, "answers", at):
                answers.append({"answer": str(_field(r, "answer", at + " answers")),
                                "answer_confidence": str(r.get("answer_confidence", "")),
                                "answer_id": int(r.get("answer_id", len(answers) + 1))})  # fmt: skip
            best = str(_field(a, "multiple_choice_answer", at))
            answer_type, question_type = str(a.get("answer_type", "")), str(a.get("question_type", ""))
        if image_id not in files:
            files[image_id] = _image(images_dir, _coco_file(images_dir, image_id, subtype))
        rows.append({"question_id": qid, "image_id": image_id, "question": str(_field(q, "question", where)),
                     "image": files[image_id], "answers": answers, "multiple_choice_answer": best,
                     "answer_type": answer_type, "question_type": question_type})  # fmt: skip
    return _to_dataset(rows, vqav2_features(), ("vqav2", _stamp(questions_json), _stamp(annotations_json)))


def load_coco_captions(annotations_json, images_dir) -> datasets.Dataset:
    """COCO captions (`captions_<split>.json`: `images`, `annotations`) and the images folder -> one row per image
    with all its captions (`coco_caption_features`; `description` is "")."""
    payload = _read_json(annotations_json, "annotations_json")
    images_dir = _images_dir(images_dir)
    captions = {}
    for k, a in enumerate(_list_field(payload, "annotations", annotations_json)):
        where = f"{annotations_json}: annotation {k}"
        captions.setdefault(_field(a, "image_id", where), []).append(str(_field(a, "caption", where)))
    rows = []
    for k, im in enumerate(_list_field(payload, "images", annotations_json)):
        where = f"{annotations_json}: image {k}"
        image_id, file_name = _field(im, "id", where), _field(im, "file_name", where)
        rows.append({"image_id": int(image_id), "file_name": file_name, "image": _image(images_dir, file_name),
                     "captions": captions.get(image_id, []), "description": ""})  # fmt: skip
    return _to_dataset(rows, coco_caption_features(), ("coco-captions", _stamp(annotations_json)))


def load_sst2(tsv) -> datasets.Dataset:
    """GLUE SST-2 TSV (`sentence\\tlabel` header for train/dev; `index\\tsentence` for the unlabelled test file,
    whose labels load as -1) -> `sst2_features` rows."""
    tsv = Path(tsv)
    if not tsv.is_file():
        raise FileNotFoundError(f"`tsv` not found: {tsv}")
    with tsv.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if not header or "sentence" not in header:
            raise ValueError(f"{tsv}: the header must name a 'sentence' column, got {header!r}.")
        columns = {name: i for i, name in enumerate(header)}
        rows = []
        for line, fields in enumerate(reader, start=2):
            if not fields:
                continue
            if len(fields) != len(header):
                raise ValueError(f"{tsv}, line {line}: expected {len(header)} tab-separated fields, got {len(fields)}.")
            label = fields[columns["label"]] if "label" in columns else "-1"
            if label not in ("0", "1", "-1"):
                raise ValueError(f"{tsv}, line {line}: field 'label' must be 0 or 1, got {label!r}.")
            idx = int(fields[columns["index"]]) if "index" in columns else len(rows)
            rows.append({"sentence": fields[columns["sentence"]], "label": int(label), "idx": idx})
    return _to_dataset(rows, sst2_features(), ("sst2", _stamp(tsv)))


def _id_key(path: Path):
    digits = re.match(r"(\d+)", path.stem)
    return (int(digits.group(1)) if digits else -1, path.name)


def load_imdb(root, split: str) -> datasets.Dataset:
    """IMDB's folder layout (`<root>/<split>/pos/*.txt` and `neg/*.txt`, `split` "train" or "test") ->
    `imdb_features` rows (negatives first, then positives, each in file-id order, like the Hub's copy)."""
    if split not in ("train", "test"):
        raise ValueError(f"`split` must be 'train' or 'test', got {split!r}.")
    rows = []
    for label, folder in enumerate(("neg", "pos")):
        directory = Path(root) / split / folder
        if not directory.is_dir():
            raise FileNotFoundError(f"IMDB folder not found: {directory}")
        for path in sorted(directory.glob("*.txt"), key=_id_key):
            rows.append({"text": path.read_text(encoding="utf-8"), "label": label})
    return _to_dataset(rows, imdb_features(), ("imdb", str(root), split, len(rows)))


def load_librispeech(root, split: str) -> datasets.Dataset:
    """LibriSpeech's layout (`<root>/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac` with
    `<speaker>-<chapter>.trans.txt` lines "<utterance-id> TRANSCRIPT") -> one row per utterance
    (`spoken.librispeech_features`), sorted by utterance id."""
    from .spoken import librispeech_features

    directory = Path(root) / split
    if not directory.is_dir():
        raise FileNotFoundError(f"LibriSpeech split folder not found: {directory}")
    transcripts = sorted(directory.glob("*/*/*.trans.txt"))
    if not transcripts:
        raise FileNotFoundError(f"No <speaker>-<chapter>.trans.txt under {directory}/<speaker>/<chapter>/")
    rows = []
    for trans in transcripts:
        for line_number, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            utterance, _, text = line.partition(" ")
            parts = utterance.split("-")
            if len(parts) != 3 or not all(p.isdigit() for p in parts) or not text.strip():
                raise ValueError(f"{trans}, line {line_number}: expected '<speaker>-<chapter>-<utt> TEXT', got {line!r}.")
            audio = trans.parent / f"{utterance}.flac"
            if not audio.is_file():
                raise FileNotFoundError(f"Audio file not found: {audio} (listed in {trans})")
            rows.append({"file": str(audio), "audio": {"path": str(audio), "bytes": None}, "text": text.strip(),
                         "speaker_id": int(parts[0]), "chapter_id": int(parts[1]), "id": utterance})  # fmt: skip
    rows.sort(key=lambda r: r["id"])
    return _to_dataset(rows, librispeech_features(), ("librispeech", str(root), split, [r["id"] for r in rows]))


def decode_audio(audio: dict) -> tuple[np.ndarray, int]:
    """An undecoded `datasets.Audio` value ({"path", "bytes"}) -> ((samples,) float32 mono, sampling rate [Hz]).

    >>> import io, soundfile
    >>> buffer = io.BytesIO(); soundfile.write(buffer, np.zeros(160, np.float32), 16000, format="FLAC")
    >>> samples, rate = decode_audio({"path": None, "bytes": buffer.getvalue()})
    >>> samples.shape, rate
    ((160,), 16000)
    """
    import io

    import soundfile

    source = io.BytesIO(audio["bytes"]) if audio.get("bytes") else audio.get("path")
    if source is None:
        raise ValueError("`audio` has neither 'bytes' nor 'path'.")
    samples, rate = soundfile.read(source, dtype="float32", always_2d=True)
    return samples.mean(axis=1), int(rate)


def _to_dataset(rows: list[dict], features: datasets.Features, recipe: tuple) -> datasets.Dataset:
    """Rows -> Dataset; media values are {"path", "bytes"} dicts, stored as given (no decoding or encoding)."""
    columns = {name: [row[name] for row in rows] for name in features}
    return build_dataset(columns, features, recipe)
