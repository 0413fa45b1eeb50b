"""One reader for the media that tokcom models take: audio (WAV files and arrays), frame folders and images.

Every audio path in tokcom (the pipelines, the dataset loaders, the Space) goes through these functions, so they
share one rule for turning integer PCM into float samples:

* signed integers are divided by `iinfo.max + 1` (int16: 32768), so -32768 maps to exactly -1.0 and full scale
  stays inside [-1, 1);
* uint8 (8-bit WAV) is unsigned and centred on 128: `(x - 128) / 128`;
* floats are cast to float32 unchanged.

`float_to_pcm16` is its inverse for writers. Multichannel audio is mixed down to mono by averaging the channels
(after scaling), and resampled with `scipy.signal.resample_poly` (polyphase, exact for rational rate ratios).

Frames are uint8 RGB arrays `(frames, height, width, 3)`; a frame folder holds `.png`/`.jpg`/`.jpeg` files, read
in natural order of the last number in their names (`frame_2.png` before `frame_10.png`; names without a number
first, ties by name). Without resizing, all frames must have the same size.

This file ships as Hub remote code next to the pipeline, and the Space imports it on its own, so it imports only
numpy, scipy and the standard library; Pillow is imported when an image is actually read (inside `try`, so that
transformers' remote-code import check does not require it for array inputs). Bad input raises `ValueError` or
`FileNotFoundError` naming the argument (`name=`, e.g. `"audio"` or `"video"`).

>>> import numpy as np
>>> pcm_to_float(np.array([-32768, 0, 16384], np.int16)).tolist()
[-1.0, 0.0, 0.5]
>>> pcm_to_float(np.array([0, 128, 192], np.uint8)).tolist()
[-1.0, 0.0, 0.5]
>>> resample(np.zeros(44100, np.float32), 44100, 16000).shape
(16000,)
"""

from __future__ import annotations

import math
import numbers
import os
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy.io import wavfile

AUDIO_SUFFIXES = (".wav",)
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")
# Bounds on what a reader accepts, checked before anything large is decoded or converted: far above what any model
# here uses (32x32 frames, 8 of them, 1 s of 16 kHz audio), far below what exhausts a machine.
MAX_FRAME_PIXELS = 4096 * 4096  # per frame (height x width)
MAX_FRAMES = 4096  # frames per video
MIN_SAMPLING_RATE_HZ, MAX_SAMPLING_RATE_HZ = 1_000, 384_000
MAX_AUDIO_SECONDS = 600.0
MAX_AUDIO_CHANNELS = 32  # a (channels, samples) array read as (samples, channels) has thousands: refused
# A WAV that cannot be memory-mapped (24-bit PCM) is read whole: at most this many samples (all channels), 10 min of
# 48 kHz mono, checked from its header before reading.
MAX_WHOLE_READ_SAMPLES = 600 * 48_000
_NUMBER = re.compile(r"(\d+)")


class Audio(NamedTuple):
    """A decoded waveform: `waveform` float32 `(samples,)` (mono) or `(samples, channels)`, `sampling_rate` [Hz]
    and `duration_s`, the source's full duration [s] (before any cropping)."""

    waveform: np.ndarray
    sampling_rate: int
    duration_s: float


# ---------------------------------------------------------------------------------------------
# Audio: samples
# ---------------------------------------------------------------------------------------------


def pcm_to_float(samples, name: str = "audio") -> np.ndarray:
    """Integer PCM -> float32 with the one scaling rule (signed: `/ (iinfo.max + 1)`, uint8: `(x - 128) / 128`);
    floats are cast to float32. `ValueError` for non-numeric data."""
    samples = np.asarray(samples)
    if samples.dtype == np.uint8:  # 8-bit WAV is unsigned, centred on 128
        return (samples.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(samples.dtype, np.signedinteger):
        return samples.astype(np.float32) / float(np.iinfo(samples.dtype).max + 1)
    if np.issubdtype(samples.dtype, np.unsignedinteger):  # other unsigned PCM: centred on 2 ** (bits - 1)
        half = float(np.iinfo(samples.dtype).max // 2 + 1)
        return ((samples.astype(np.float64) - half) / half).astype(np.float32)
    if np.issubdtype(samples.dtype, np.floating):
        return samples.astype(np.float32)
    raise ValueError(f"`{name}` must hold numbers, got dtype {samples.dtype}.")


def float_to_pcm16(wave) -> np.ndarray:
    """float samples in [-1, 1] -> int16 PCM, the inverse of `pcm_to_float` (`round(x * 32768)`, clipped).

    >>> float_to_pcm16([-1.0, 0.0, 0.5, 1.0]).tolist()
    [-32768, 0, 16384, 32767]
    """
    wave = np.asarray(wave, dtype=np.float64)
    return np.clip(np.round(wave * 32768.0), -32768, 32767).astype(np.int16)


def to_mono(wave, name: str = "audio") -> np.ndarray:
    """`(samples,)` stays; `(samples, channels)` -> the channels' mean `(samples,)`; other shapes: `ValueError`."""
    wave = np.asarray(wave)
    if wave.ndim == 1:
        return wave
    if wave.ndim == 2:  # floats average in their own precision (float32 stays float32)
        return wave.mean(axis=1)
    raise ValueError(f"`{name}` must be (samples,) or (samples, channels), got shape {wave.shape}.")


def check_audio_shape(shape, name: str = "audio") -> None:
    """`ValueError` naming `name` unless `shape` is `(samples,)` or `(samples, channels)` with at most
    `MAX_AUDIO_CHANNELS` channels (checked before any conversion)."""
    shape = tuple(shape)
    if len(shape) not in (1, 2):
        raise ValueError(f"`{name}` must be (samples,) or (samples, channels), got shape {shape}.")
    if len(shape) == 2 and not 1 <= shape[1] <= MAX_AUDIO_CHANNELS:
        raise ValueError(
            f"`{name}` has {shape[1]:,} channels (shape {shape}); 1 to {MAX_AUDIO_CHANNELS} are accepted, as "
            "(samples, channels): transpose a (channels, samples) array."
        )


def wav_header(path) -> tuple[int, int, int, int] | None:
    """`(sampling_rate [Hz], channels, bits_per_sample, frames)` from a RIFF WAV's `fmt ` and `data` chunk headers
    (nothing else is read); None when the file is not a RIFF WAV with both chunks."""

    def little(data: bytes, start: int, size: int) -> int:  # an unsigned little-endian field
        return int.from_bytes(data[start : start + size], "little")

    with open(path, "rb") as file:
        if file.read(4) != b"RIFF" or len(file.read(4)) != 4 or file.read(4) != b"WAVE":
            return None
        fmt = None
        while True:
            head = file.read(8)
            if len(head) < 8:
                return None
            chunk, size = head[:4], little(head, 4, 4)
            if chunk == b"fmt ":
                body = file.read(size)
                if len(body) < 16:
                    return None
                # WAVEFORMATEX: format, channels, rate [Hz], bytes/s, block align [bytes per frame], bits
                fmt = (little(body, 4, 4), little(body, 2, 2), little(body, 14, 2), little(body, 12, 2))
                file.seek(size % 2, 1)
            elif chunk == b"data":
                if fmt is None or fmt[3] == 0:
                    return None
                frames = min(size, os.path.getsize(path) - file.tell()) // fmt[3]
                return fmt[0], fmt[1], fmt[2], frames
            else:
                file.seek(size + size % 2, 1)


def _rate(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != int(value) or not (
        MIN_SAMPLING_RATE_HZ <= value <= MAX_SAMPLING_RATE_HZ
    ):
        raise ValueError(
            f"`{name}` must be a whole number of Hz in [{MIN_SAMPLING_RATE_HZ}, {MAX_SAMPLING_RATE_HZ}], got {value!r}."
        )
    return int(value)


def check_duration(num_samples: int, sampling_rate: int, name: str = "audio") -> None:
    """`ValueError` naming `name` when `num_samples` at `sampling_rate` [Hz] last longer than `MAX_AUDIO_SECONDS`."""
    if num_samples > MAX_AUDIO_SECONDS * sampling_rate:
        raise ValueError(
            f"`{name}` lasts {num_samples / sampling_rate:.1f} s; at most {MAX_AUDIO_SECONDS:g} s is accepted (the "
            "models here read about 1 s): cut it first."
        )


def resample(wave, orig_rate, target_rate, name: str = "audio") -> np.ndarray:
    """Resample `(samples,)` or `(samples, channels)` float audio from `orig_rate` to `target_rate` [Hz] with
    `scipy.signal.resample_poly` (up/down by the rates' greatest common divisor); returns float32."""
    orig_rate = _rate(orig_rate, "sampling_rate")
    target_rate = _rate(target_rate, "target_rate")
    wave = np.asarray(wave)
    if wave.dtype.kind != "f":
        raise ValueError(f"`{name}` must be float samples before resampling (see `pcm_to_float`), got {wave.dtype}.")
    if orig_rate == target_rate:
        return wave.astype(np.float32, copy=False)
    from scipy.signal import resample_poly  # here: importing scipy.signal takes about a second

    common = math.gcd(orig_rate, target_rate)
    return resample_poly(wave, target_rate // common, orig_rate // common, axis=0).astype(np.float32)


def check_waveform(wave, name: str = "audio") -> np.ndarray:
    """`ValueError` naming `name` if `wave` is empty or holds NaN or infinite samples; returns it unchanged."""
    if wave.size == 0:
        raise ValueError(f"`{name}` is empty: give a non-empty waveform.")
    if not np.isfinite(wave).all():
        raise ValueError(f"`{name}` holds NaN or infinite samples.")
    return wave


# ---------------------------------------------------------------------------------------------
# Audio: files and arrays
# ---------------------------------------------------------------------------------------------


def read_wav(
    path,
    *,
    sampling_rate: int | None = None,
    max_duration_s: float | None = None,
    mono: bool = True,
    name: str = "audio",
) -> Audio:
    """A `.wav` file -> `Audio` (float32 by `pcm_to_float`; mono by default; resampled to `sampling_rate` [Hz] when
    given; cut to the first `max_duration_s` [s] when given, read memory-mapped so a long file is not loaded).

    `ValueError` if the path is not a `.wav` or the file is not a readable WAV, `FileNotFoundError` if it is missing.
    """
    path = Path(path)
    if path.suffix.lower() not in AUDIO_SUFFIXES:
        raise ValueError(f"`{name}` path must be a .wav file, got {path}.")
    if not path.is_file():
        raise FileNotFoundError(f"`{name}` file not found: {path}.")
    if max_duration_s is not None and not (isinstance(max_duration_s, numbers.Real) and 0 < max_duration_s < math.inf):
        raise ValueError(f"`max_duration_s` must be a finite number > 0, got {max_duration_s!r}.")
    header = wav_header(path)  # the header's channels and length are checked before any sample is read
    if header is not None and header[1] > MAX_AUDIO_CHANNELS:
        raise ValueError(
            f"`{name}` file {path} says it has {header[1]:,} channels; 1 to {MAX_AUDIO_CHANNELS} are accepted."
        )
    try:
        try:  # memory-mapped: only the part that is used is read
            rate, data = wavfile.read(path, mmap=True)
        except ValueError:  # formats scipy cannot memory-map (e.g. 24-bit, or a broken file: read again to say why)
            rate, data = None, None
        if data is None:
            if header is not None and header[1] * header[3] > MAX_WHOLE_READ_SAMPLES:  # bounded before reading
                seconds = header[3] / max(header[0], 1)
                raise ValueError(
                    f"`{name}` file {path} is a {header[2]}-bit WAV of {seconds:.1f} s x {header[1]} channel(s), "
                    f"which is read whole; at most {MAX_WHOLE_READ_SAMPLES:,} samples are accepted in this format: "
                    "cut it, or convert it to 16-bit PCM."
                )
            try:
                rate, data = wavfile.read(path)
            except (ValueError, EOFError) as error:
                raise ValueError(f"`{name}` file {path} could not be read as WAV: {error}") from error
    except EOFError as error:
        raise ValueError(f"`{name}` file {path} could not be read as WAV: {error}") from error
    if not MIN_SAMPLING_RATE_HZ <= rate <= MAX_SAMPLING_RATE_HZ:  # e.g. a 1 Hz header: refuse before resampling
        raise ValueError(
            f"`{name}` file {path} says its sampling rate is {rate} Hz; accepted: {MIN_SAMPLING_RATE_HZ} to "
            f"{MAX_SAMPLING_RATE_HZ} Hz."
        )
    check_audio_shape(data.shape, name)
    duration_s = data.shape[0] / rate
    if max_duration_s is not None:  # crop early, with a margin for the resampling filter
        data = data[: math.ceil(max_duration_s * rate) + rate // 10]
    check_duration(data.shape[0], rate, name)
    wave = pcm_to_float(np.array(data), name)
    del data  # release the memory map
    if mono:
        wave = to_mono(wave, name)
    if sampling_rate is not None and sampling_rate != rate:
        wave = resample(wave, rate, sampling_rate, name)
        rate = sampling_rate
    if max_duration_s is not None:
        wave = wave[: int(round(max_duration_s * rate))]
    return Audio(check_waveform(wave, name), int(rate), float(duration_s))


def load_audio(
    audio,
    sampling_rate: int | None = None,
    *,
    target_rate: int | None = None,
    mono: bool = True,
    name: str = "audio",
) -> Audio:
    """Audio from a `.wav` path, a `{"array", "sampling_rate"}` / `{"path"}` dict (the `datasets.Audio` form) or an
    array with its `sampling_rate` [Hz] -> `Audio`, scaled by `pcm_to_float`, mono unless `mono=False` (arrays are
    `(samples,)` or `(samples, channels)`), and resampled to `target_rate` [Hz] when given.

    >>> import numpy as np
    >>> out = load_audio(np.full((48000, 2), 16384, np.int16), 48000, target_rate=16000)
    >>> out.waveform.shape, out.sampling_rate, round(float(out.waveform[8000]), 4)
    ((16000,), 16000, 0.5)
    """
    if isinstance(audio, dict):
        unknown = sorted(set(audio) - {"array", "sampling_rate", "path"})
        if unknown:
            raise ValueError(f"Unknown key(s) {unknown} in `{name}`; allowed: ['array', 'path', 'sampling_rate'].")
        if audio.get("array") is not None:
            inner = audio.get("sampling_rate")
            if inner is not None and sampling_rate is not None and inner != sampling_rate:
                raise ValueError(f"`sampling_rate` ({sampling_rate}) and `{name}['sampling_rate']` ({inner}) disagree.")
            audio, sampling_rate = audio["array"], inner if inner is not None else sampling_rate
        elif audio.get("path") is not None:
            audio = audio["path"]
        else:
            raise ValueError(f"`{name}` as a dict needs 'array' and 'sampling_rate', or 'path' to a .wav file.")
    if isinstance(audio, (str, os.PathLike)):
        if sampling_rate is not None:
            raise ValueError(f"`sampling_rate` is read from the .wav file; do not give it with a `{name}` path.")
        return read_wav(audio, sampling_rate=target_rate, mono=mono, name=name)
    if sampling_rate is None:
        raise ValueError(f"`sampling_rate` is missing: give the rate [Hz] of the `{name}` array.")
    rate = _rate(sampling_rate, "sampling_rate")
    check_audio_shape(np.shape(audio), name)  # before any conversion
    wave = pcm_to_float(audio, name)
    check_waveform(wave, name)
    duration_s = wave.shape[0] / rate
    if mono:
        wave = to_mono(wave, name)
    if target_rate is not None and target_rate != rate:
        wave, rate = resample(wave, rate, target_rate, name), _rate(target_rate, "target_rate")
    return Audio(wave, rate, float(duration_s))


# ---------------------------------------------------------------------------------------------
# Frames and images
# ---------------------------------------------------------------------------------------------


def frame_sort_key(path) -> tuple:
    """Natural order of frame files: by the last number in the file name's stem, then by name."""
    path = Path(path)
    digits = _NUMBER.findall(path.stem)
    return (int(digits[-1]) if digits else -1, path.name)


def sort_frame_paths(paths) -> list[Path]:
    """`paths` in frame order (`frame_sort_key`)."""
    return sorted((Path(p) for p in paths), key=frame_sort_key)


def list_frame_files(folder, name: str = "video") -> list[Path]:
    """The `.png`/`.jpg`/`.jpeg` files of `folder`, in frame order (possibly none); `FileNotFoundError` if `folder`
    is not a folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"`{name}` folder not found: {folder}.")
    return sort_frame_paths(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES)


def _pil_image():
    try:  # Pillow is needed only to read image files, not for array inputs
        from PIL import Image
    except ImportError:
        raise ImportError("Reading images needs Pillow (`pip install pillow`); or pass frames as a uint8 array.") from None
    return Image


def _size(size, name: str) -> tuple[int, int] | None:
    if size is None:
        return None
    width, height = (size, size) if isinstance(size, numbers.Integral) else tuple(size)
    for value in (width, height):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"`size` of `{name}` must be a positive int or (width, height), got {size!r}.")
    return int(width), int(height)


def load_image(image, *, size=None, name: str = "image") -> np.ndarray:
    """An image file (any format Pillow reads), a PIL image or a uint8 array `(height, width, 3)` -> uint8 RGB
    `(height, width, 3)`; resized (bilinear, aspect not kept) to `size` = side or `(width, height)` when given."""
    size = _size(size, name)
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"`{name}` file not found: {path}.")
        Image = _pil_image()
        try:
            with Image.open(path) as opened:  # reads the header only: the size is checked before decoding
                check_frame_size(1, opened.size[1], opened.size[0], name)
                return _to_rgb(opened, size, Image)
        except OSError as error:  # Pillow's UnidentifiedImageError is an OSError
            raise ValueError(f"`{name}` file {path} is not a readable image: {error}") from None
        except Image.DecompressionBombError as error:  # over twice Pillow's own limit: refused in the header too
            raise ValueError(
                f"`{name}` file {path} is too large ({error}); at most {MAX_FRAME_PIXELS:,} pixels per frame "
                "(4096x4096) are accepted: downscale it first."
            ) from None
    if hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image
        check_frame_size(1, image.size[1], image.size[0], name)
        return _to_rgb(image, size, _pil_image())
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] != 3 or 0 in array.shape:
        raise ValueError(f"`{name}` must be a uint8 image of shape (height, width, 3), got shape {array.shape}.")
    check_frame_size(1, array.shape[0], array.shape[1], name)
    if array.dtype != np.uint8:
        raise ValueError(f"`{name}` must be uint8 in [0, 255], got dtype {array.dtype}.")
    if size is not None and array.shape[1::-1] != size:
        Image = _pil_image()
        return _to_rgb(Image.fromarray(array), size, Image)
    return array


def _to_rgb(image, size, Image) -> np.ndarray:
    image = image.convert("RGB")
    if size is not None and image.size != size:
        image = image.resize(size, Image.BILINEAR)
    return np.asarray(image)


def read_frame_files(paths, *, size=None, name: str = "video") -> np.ndarray:
    """Image files, in the given order -> uint8 `(frames, height, width, 3)`; without `size` they must all have the
    same size (`ValueError` listing the sizes), with `size` each is resized to it."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError(f"`{name}` has no frames: give at least one image.")
    check_frame_size(len(paths), 1, 1, name)
    frames = [load_image(path, size=size, name=name) for path in paths]
    shapes = sorted({frame.shape for frame in frames})
    if len(shapes) > 1:
        raise ValueError(f"`{name}` frames must all have the same size, got {shapes}.")
    return np.stack(frames)


def read_frame_folder(folder, *, num_frames: int | None = None, span: float = 1.0, size=None, name: str = "video"):
    """A folder of frame images -> uint8 `(frames, height, width, 3)`, in frame order.

    `num_frames`: sample that many frames uniformly (segment centres) from the first `span` in (0, 1] of the files;
    default all of them. `FileNotFoundError` if the folder is missing, `ValueError` if it holds no frame images.
    """
    folder = Path(folder)
    files = list_frame_files(folder, name)
    if not files:
        raise ValueError(f"`{name}` folder {folder} holds no frame images ({', '.join(FRAME_SUFFIXES)}).")
    return read_frame_files(sample_frames(files, num_frames, span), size=size, name=name)


def sample_frames(files: list, num_frames: int | None = None, span: float = 1.0) -> list:
    """`num_frames` items of `files` at the centres of equal segments of its first `span` fraction (all if None).

    >>> sample_frames(list("abcd"), 2)
    ['b', 'd']
    """
    if num_frames is None:
        return list(files)
    if isinstance(num_frames, bool) or not isinstance(num_frames, numbers.Integral) or num_frames < 1:
        raise ValueError(f"`num_frames` must be a positive int, got {num_frames!r}.")
    if not (isinstance(span, numbers.Real) and 0 < span <= 1):
        raise ValueError(f"`span` must be in (0, 1], got {span!r}.")
    usable = max(1, min(len(files), round(len(files) * span)))
    index = np.floor((np.arange(num_frames) + 0.5) * usable / num_frames).astype(int)  # segment centres
    return [files[i] for i in index]


def check_frame_size(num_frames: int, height: int, width: int, name: str = "video") -> None:
    """`ValueError` naming `name` when a video exceeds `MAX_FRAMES` frames or a frame `MAX_FRAME_PIXELS` pixels."""
    if num_frames > MAX_FRAMES:
        raise ValueError(f"`{name}` has {num_frames} frames; at most {MAX_FRAMES} are accepted.")
    if height * width > MAX_FRAME_PIXELS:
        raise ValueError(
            f"`{name}` frames are {width}x{height} pixels; at most {MAX_FRAME_PIXELS:,} pixels per frame (4096x4096) "
            "are accepted: downscale them first."
        )


def check_frames(frames, name: str = "video") -> np.ndarray:
    """`frames` as uint8 `(frames >= 1, height, width, 3)` within `check_frame_size`; `ValueError` naming `name`."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or 0 in frames.shape:
        raise ValueError(
            f"`{name}` must be uint8 frames of shape (frames >= 1, height, width, 3) or a folder of frames, "
            f"got shape {frames.shape}."
        )
    check_frame_size(frames.shape[0], frames.shape[1], frames.shape[2], name)
    if frames.dtype != np.uint8:
        raise ValueError(f"`{name}` frames must be uint8 in [0, 255], got dtype {frames.dtype}.")
    return frames


def load_frames(video, *, num_frames: int | None = None, size=None, name: str = "video") -> np.ndarray:
    """Frames from a folder of images (`read_frame_folder`) or a uint8 array `(frames, height, width, 3)`
    (`check_frames`; returned as is unless `num_frames`/`size` ask for sampling or resizing)."""
    if isinstance(video, (str, os.PathLike)):
        return read_frame_folder(video, num_frames=num_frames, size=size, name=name)
    frames = check_frames(video, name)
    if num_frames is not None:
        frames = np.stack(sample_frames(list(frames), num_frames))
    if size is not None:
        frames = np.stack([load_image(frame, size=size, name=name) for frame in frames])
    return frames


__all__ = [
    "AUDIO_SUFFIXES",
    "Audio",
    "FRAME_SUFFIXES",
    "MAX_AUDIO_CHANNELS",
    "MAX_AUDIO_SECONDS",
    "MAX_FRAMES",
    "MAX_FRAME_PIXELS",
    "MAX_SAMPLING_RATE_HZ",
    "MAX_WHOLE_READ_SAMPLES",
    "MIN_SAMPLING_RATE_HZ",
    "check_audio_shape",
    "check_duration",
    "check_frame_size",
    "check_frames",
    "check_waveform",
    "float_to_pcm16",
    "frame_sort_key",
    "list_frame_files",
    "load_audio",
    "load_frames",
    "load_image",
    "pcm_to_float",
    "read_frame_files",
    "read_frame_folder",
    "read_wav",
    "resample",
    "sample_frames",
    "sort_frame_paths",
    "to_mono",
    "wav_header",
]
