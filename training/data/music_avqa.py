"""Loaders for the real MUSIC-AVQA annotations and VALOR-32K captions, in the synthetic schema.

Annotations are what the datasets release: MUSIC-AVQA's `avqa-{train,val,test}.json` is a JSON
list of dicts with `video_id`, `question_id`, `type` (a JSON-encoded list string such as
'["Audio-Visual", "Counting"]'), `question_content` (with `<Object>`/`<LR>`/`<FL>`
placeholders), `templ_values` (a JSON-encoded list string) and `anser` (sic); extra keys such as
`question_deleted` are ignored. VALOR-32K's `desc_{train,val,test}.json` is a list of
`{"video_id", "desc"}`.

Media follow the TokCom code's extraction layout::

    <media_root>/vivit_frames/<video_id>/frame_0001.png, frame_0002.png, ...
    <media_root>/ast_audio/<video_id>.wav

Any `frame_*.png` is accepted (sorted by its number); without them, `*.png` / `*.jpg` (the
official MUSIC-AVQA extraction writes `000001.jpg`). Frames are sampled uniformly over the
clip, resized (squashed, the full width is kept so left/right stay meaningful) to
`frame_size` x `frame_size` RGB uint8. Audio is read by `tokcom.modeling.media_io` (its one PCM
scaling rule), made mono float32 in [-1, 1], resampled to `sampling_rate` [Hz] with `scipy.signal.resample_poly` and cropped or
zero-padded to `max_duration_s` [s] from the start of the clip.

The output has exactly the columns and features of `synthetic_avqa.avqa_features` /
`caption_features`, so training code treats real and synthetic data alike. Rows carry their
media in memory (about 123 kB per row with the defaults).

>>> import tempfile
>>> load_music_avqa("/no/such/avqa-test.json", tempfile.gettempdir())
Traceback (most recent call last):
...
FileNotFoundError: MUSIC-AVQA annotation file not found: /no/such/avqa-test.json
"""

from __future__ import annotations

import ast
import json
import math
import os
from pathlib import Path

import datasets
import numpy as np
from tqdm.auto import tqdm

from tokcom.modeling import media_io

from .synthetic_avqa import avqa_features, caption_features
from .world import TEMPLATE_PLACEHOLDER as _PLACEHOLDER
from .world import build_dataset as _to_dataset
from .world import media_columns as _media_columns
from .world import take_rows as _take_rows

__all__ = ["load_music_avqa", "load_valor_captions", "read_audio", "read_frames"]

AVQA_KEYS = ("video_id", "question_id", "type", "question_content", "templ_values", "anser")


def _check_sizes(num_frames, frame_size, sampling_rate, max_duration_s):
    for name, value in (("num_frames", num_frames), ("frame_size", frame_size), ("sampling_rate", sampling_rate)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{name}` must be a positive int, got {value!r}.")
    if not (isinstance(max_duration_s, (int, float)) and math.isfinite(max_duration_s) and max_duration_s > 0):
        raise ValueError(f"`max_duration_s` must be a finite number > 0, got {max_duration_s!r}.")


def _frame_files(frames_dir: Path) -> list[Path]:
    """`frame_*.png` when the folder has them (the TokCom extraction), else every frame image; in frame order."""
    files = media_io.list_frame_files(frames_dir)
    return [p for p in files if p.name.startswith("frame_") and p.suffix.lower() == ".png"] or files


def read_frames(frames_dir, num_frames: int = 8, frame_size: int = 32, span: float = 1.0) -> np.ndarray:
    """Uniformly sample `num_frames` frames of a frames folder -> (num_frames, frame_size, frame_size, 3) uint8.

    `span` in (0, 1] samples from the first `span` fraction of the frames only. Reading and resizing go through
    `tokcom.modeling.media_io`.

    >>> import tempfile, numpy as np; from PIL import Image
    >>> d = tempfile.mkdtemp()
    >>> for i in range(1, 5): Image.new("RGB", (64, 48), (i, 0, 0)).save(f"{d}/frame_{i:04d}.png")
    >>> read_frames(d, num_frames=2, frame_size=16)[:, 0, 0, 0].tolist()
    [2, 4]
    """
    frames_dir = Path(frames_dir)
    files = _frame_files(frames_dir) if frames_dir.is_dir() else []
    if not files:
        raise FileNotFoundError(f"No frames (frame_*.png, *.png or *.jpg) in {frames_dir}")
    chosen = media_io.sample_frames(files, num_frames, span)
    return media_io.read_frame_files(chosen, size=frame_size, name="frames_dir")


def read_audio(wav_path, sampling_rate: int = 16000, max_duration_s: float = 1.0) -> tuple[np.ndarray, float]:
    """Read a wav -> ((round(max_duration_s * sampling_rate),) float32 mono in [-1, 1], clip duration [s]).

    Decoding, scaling, mono mixdown and resampling are `tokcom.modeling.media_io.read_wav`'s; the clip is then
    zero-padded to `max_duration_s` and clipped to [-1, 1].

    >>> import tempfile, numpy as np; from scipy.io import wavfile
    >>> path = tempfile.mktemp(suffix=".wav")
    >>> wavfile.write(path, 8000, np.zeros((4000, 2), np.int16))
    >>> audio, duration_s = read_audio(path, sampling_rate=16000, max_duration_s=1.0)
    >>> audio.shape, audio.dtype, duration_s
    ((16000,), dtype('float32'), 0.5)
    """
    wav_path = Path(wav_path)
    if not wav_path.is_file():
        raise FileNotFoundError(f"Audio file not found: {wav_path}")
    audio, _, duration_s = media_io.read_wav(
        wav_path, sampling_rate=sampling_rate, max_duration_s=max_duration_s, name="wav_path"
    )
    num_samples = int(round(max_duration_s * sampling_rate))
    audio = np.clip(np.pad(audio[:num_samples], (0, max(0, num_samples - len(audio)))), -1.0, 1.0)
    return audio.astype(np.float32), duration_s


def _load_json_list(annotation_file, what: str) -> list:
    path = Path(annotation_file)
    if not path.is_file():
        raise FileNotFoundError(f"{what} annotation file not found: {annotation_file}")
    with open(path, encoding="utf-8") as f:
        try:
            records = json.load(f)
        except json.JSONDecodeError as error:
            raise ValueError(f"{what} annotation file {annotation_file} is not valid JSON: {error}") from None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ValueError(f"{what} annotation file {annotation_file} must hold a JSON list of objects.")
    return records


def _require(record: dict, key: str, index: int, annotation_file):
    if key not in record:
        qid = record.get("question_id", record.get("video_id", "<missing>"))
        raise ValueError(
            f"Annotation entry {index} (question_id={qid}) in {annotation_file} is missing the key {key!r}."
        )
    return record[key]


def _json_list(value, key: str, qid) -> str:
    """Normalize a list or a JSON/Python-literal list string to a canonical JSON list string."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                raise ValueError(f"question_id={qid}: {key!r} is not a list: {value!r}") from None
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"question_id={qid}: {key!r} must be a list, got {value!r}")
    return json.dumps([str(v) for v in value])


def _fill(question_content: str, templ_values: str) -> str:
    """Placeholders filled in order; lenient with count mismatches (a few real entries have them)."""
    values = iter(json.loads(templ_values))
    return _PLACEHOLDER.sub(lambda m: next(values, m.group(0)), question_content)


def _load_media(video_ids, media_root, num_frames, frame_size, sampling_rate, max_duration_s, align):
    media_root = Path(media_root)
    videos, audios = [], []
    for video_id in tqdm(video_ids, desc="Loading media", unit="video", disable=len(video_ids) < 100):
        frames_dir = media_root / "vivit_frames" / video_id
        wav_path = media_root / "ast_audio" / f"{video_id}.wav"
        if not wav_path.is_file():
            raise FileNotFoundError(f"Audio for video_id {video_id!r} not found: expected {wav_path}")
        audio, duration_s = read_audio(wav_path, sampling_rate, max_duration_s)
        span = min(1.0, max_duration_s / duration_s) if align and duration_s > 0 else 1.0
        try:
            videos.append(read_frames(frames_dir, num_frames, frame_size, span))
        except FileNotFoundError:
            raise FileNotFoundError(
                f"Frames for video_id {video_id!r} not found: expected frame_*.png files in {frames_dir}"
            ) from None
        audios.append(audio)
    shape = (0, num_frames, frame_size, frame_size, 3)
    video = np.stack(videos) if videos else np.zeros(shape, np.uint8)
    audio = np.stack(audios) if audios else np.zeros((0, int(round(max_duration_s * sampling_rate))), np.float32)
    return video, audio


def _media_for_rows(video_ids, media_root, num_frames, frame_size, sampling_rate, max_duration_s, align) -> dict:
    """Media columns for per-row `video_ids`: each distinct clip is read once, then repeated per row."""
    unique_ids = list(dict.fromkeys(video_ids))
    video, audio = _load_media(unique_ids, media_root, num_frames, frame_size, sampling_rate, max_duration_s, align)
    position = {video_id: i for i, video_id in enumerate(unique_ids)}
    rows = np.array([position[v] for v in video_ids], np.int64)
    return _media_columns(_take_rows(video, rows), audio[rows], sampling_rate)


def _recipe(kind, annotation_file, media_root, *args) -> tuple:
    stat = os.stat(annotation_file)
    return (kind, os.path.abspath(annotation_file), stat.st_mtime_ns, stat.st_size, os.path.abspath(media_root), args)


def load_music_avqa(
    annotation_file,
    media_root,
    num_frames: int = 8,
    frame_size: int = 32,
    sampling_rate: int = 16000,
    max_duration_s: float = 1.0,
    split_name: str | None = None,
    align_frames_to_audio: bool = False,
) -> datasets.Dataset:
    """Load MUSIC-AVQA questions and media as a `datasets.Dataset` with `avqa_features`.

    `align_frames_to_audio=True` samples frames only from the first `max_duration_s` of the
    clip (the audio's window) instead of the whole clip.

    >>> # ds = load_music_avqa("MUSIC-AVQA/json/avqa-test.json", "MUSIC-AVQA/extraction", split_name="test")
    """
    _check_sizes(num_frames, frame_size, sampling_rate, max_duration_s)
    records = _load_json_list(annotation_file, "MUSIC-AVQA")
    columns = {k: [] for k in (*AVQA_KEYS, "question")}
    for index, record in enumerate(records):
        values = {key: _require(record, key, index, annotation_file) for key in AVQA_KEYS}
        qid = values["question_id"]
        try:
            values["question_id"] = int(qid)
        except (TypeError, ValueError):
            raise ValueError(f"Annotation entry {index}: 'question_id' must be an integer, got {qid!r}.") from None
        values["video_id"] = str(values["video_id"])
        values["type"] = _json_list(values["type"], "type", qid)
        values["templ_values"] = _json_list(values["templ_values"], "templ_values", qid)
        values["anser"] = str(values["anser"])
        values["question"] = _fill(values["question_content"], values["templ_values"])
        for key, value in values.items():
            columns[key].append(value)
    columns |= _media_for_rows(
        columns["video_id"], media_root, num_frames, frame_size, sampling_rate, max_duration_s, align_frames_to_audio
    )
    features = avqa_features(num_frames, frame_size)
    recipe = _recipe("music_avqa", annotation_file, media_root, num_frames, frame_size, sampling_rate, max_duration_s,
                     align_frames_to_audio)  # fmt: skip
    return _to_dataset(columns, features, recipe, datasets.NamedSplit(split_name) if split_name else None)


def load_valor_captions(
    annotation_file,
    media_root,
    num_frames: int = 8,
    frame_size: int = 32,
    sampling_rate: int = 16000,
    max_duration_s: float = 1.0,
    split_name: str | None = None,
    align_frames_to_audio: bool = False,
) -> datasets.Dataset:
    """Load VALOR-32K style captions (`[{"video_id", "desc"}, ...]`) with `caption_features`.

    >>> # ds = load_valor_captions("VALOR/annotations/desc_train.json", "VALOR/extraction")
    """
    _check_sizes(num_frames, frame_size, sampling_rate, max_duration_s)
    records = _load_json_list(annotation_file, "VALOR")
    video_ids = [str(_require(r, "video_id", i, annotation_file)) for i, r in enumerate(records)]
    descs = [str(_require(r, "desc", i, annotation_file)) for i, r in enumerate(records)]
    media = _media_for_rows(
        video_ids, media_root, num_frames, frame_size, sampling_rate, max_duration_s, align_frames_to_audio
    )
    columns = {"video_id": video_ids, "desc": descs, **media}
    features = caption_features(num_frames, frame_size)
    recipe = _recipe("valor", annotation_file, media_root, num_frames, frame_size, sampling_rate, max_duration_s,
                     align_frames_to_audio)  # fmt: skip
    return _to_dataset(columns, features, recipe, datasets.NamedSplit(split_name) if split_name else None)
