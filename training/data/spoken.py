"""Spoken utterances from Debian's `espeak-ng`, written in LibriSpeech's layout.

Sentences about shapes-world scenes ("there is a small red metal cube left of the blue sphere") and short general
sentences are spoken by several "speakers" (an espeak-ng voice and variant, a speed and a pitch each), resampled
from espeak-ng's 22.05 kHz to 16 kHz and written as

    <root>/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utterance>.flac
    <root>/<split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt   ("<utterance-id> UPPER CASE TEXT" lines)

with LibriSpeech's split folders (`train-clean-100`, `dev-clean`, `test-clean`); every split has its own
speakers, so the test split is speaker-disjoint. Synthesised audio is cached on disk (`cache_dir`, default
`$TOKCOM_CACHE/spoken` or `~/.cache/tokcom/spoken`), keyed by text, voice, speed, pitch and espeak-ng's version,
so a second run synthesises nothing. Needs the `espeak-ng` program (Debian package `espeak-ng`).

>>> import tempfile
>>> splits = generate_spoken(tempfile.mkdtemp(), 1, 1, 1, utterances_per_speaker=1, seed=0)  # doctest: +SKIP
>>> splits["test"][0]["text"].isupper()  # doctest: +SKIP
True
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import datasets
import numpy as np

from .shapes_render import COLORS, MATERIALS, SHAPES, SIZES
from .world import SPLIT_NAMES, check_count, child_seeds, seed_sequence

__all__ = [
    "LIBRISPEECH_SPLITS",
    "SAMPLING_RATE",
    "Speaker",
    "SpeechCache",
    "generate_spoken",
    "librispeech_features",
    "speakers",
    "spoken_sentences",
    "write_spoken_librispeech",
]

SAMPLING_RATE = 16000  # [Hz]
LIBRISPEECH_SPLITS = {"train": "train-clean-100", "validation": "dev-clean", "test": "test-clean"}
_VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd")  # fmt: skip
_VARIANTS = ("m1", "m2", "m3", "m4", "f1", "f2", "f3", "f4")
_GENERAL = (
    ("please", "kindly"), ("open", "close", "check", "clean", "paint"), ("the", "that", "my"),
    ("door", "window", "box", "garden gate", "kitchen drawer", "red car"),
    ("today", "tomorrow", "before noon", "after dinner", "right now"),
)  # fmt: skip
_STATEMENTS = ("the weather is nice today", "i will call you tomorrow morning", "the train leaves at seven",
               "we need more milk and bread", "she reads a book every week", "the meeting starts soon",
               "my brother plays the violin", "it is raining in the city", "the children are in the park",
               "he forgot his keys again")  # fmt: skip
_RELATIONS = ("left of", "right of", "in front of", "behind")


@dataclasses.dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: LibriSpeech-style ids and espeak-ng settings (`speed` [words/min], `pitch` 0-99)."""

    speaker_id: int
    chapter_id: int
    voice: str
    speed: int
    pitch: int


def speakers(count: int, seed=0, first_id: int = 100) -> list[Speaker]:
    """`count` distinct speakers (voice+variant, speed, pitch drawn by `seed`), ids from `first_id` on.

    >>> [s.speaker_id for s in speakers(2)]
    [100, 101]
    """
    count = check_count("count", count)
    rng = np.random.default_rng(seed_sequence(seed))
    pairs = [(v, f) for v in _VOICES for f in _VARIANTS]
    chosen = rng.choice(len(pairs), size=count, replace=count > len(pairs))
    return [Speaker(first_id + k, 1000 + 10 * k + int(rng.integers(10)), f"{pairs[c][0]}+{pairs[c][1]}",
                    int(rng.integers(130, 191)), int(rng.integers(30, 71))) for k, c in enumerate(chosen)]  # fmt: skip


def spoken_sentences(count: int, seed=0) -> list[str]:
    """`count` lower-case sentences: about half describe shapes-world scenes, half are short general sentences.

    >>> len(spoken_sentences(4, seed=0))
    4
    """
    count = check_count("count", count)
    rng = np.random.default_rng(seed_sequence(seed))
    pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
    out = []
    for _ in range(count):
        kind = int(rng.integers(5))
        thing = lambda: f"{pick(SIZES)} {pick(COLORS)} {pick(MATERIALS)} {pick(SHAPES)}"  # noqa: E731
        if kind == 0:
            out.append(f"there is a {thing()}")
        elif kind == 1:
            out.append(f"the {pick(COLORS)} {pick(SHAPES)} is {pick(_RELATIONS)} the {thing()}")
        elif kind == 2:
            out.append(f"how many {pick(COLORS)} {pick(SHAPES)}s are there")
        elif kind == 3:
            out.append(" ".join(pick(part) for part in _GENERAL))
        else:
            out.append(pick(_STATEMENTS))
    return out


def librispeech_features() -> datasets.Features:
    """LibriSpeech's row schema on the Hub (`file`, `audio`, `text`, `speaker_id`, `chapter_id`, `id`); audio is
    16 kHz and undecoded ({"path", "bytes"}, see `real_datasets.decode_audio`)."""
    return datasets.Features({
        "file": datasets.Value("string"), "audio": datasets.Audio(sampling_rate=SAMPLING_RATE, decode=False),
        "text": datasets.Value("string"), "speaker_id": datasets.Value("int64"),
        "chapter_id": datasets.Value("int64"), "id": datasets.Value("string"),
    })  # fmt: skip


@functools.lru_cache(maxsize=4)
def _espeak_version(executable: str) -> str:
    found = shutil.which(executable)
    if found is None:
        raise FileNotFoundError(
            f"`{executable}` not found. Spoken utterances need espeak-ng: install the Debian package `espeak-ng` "
            "(apt-get install espeak-ng)."
        )
    return subprocess.run([found, "--version"], capture_output=True, text=True, check=True).stdout.strip()


class SpeechCache:
    """Synthesise with espeak-ng, resample to 16 kHz, and keep the FLAC on disk under `cache_dir`; counts what it
    `synthesized` and what it `reused`."""

    def __init__(self, cache_dir=None, executable: str = "espeak-ng"):
        default = Path(os.environ.get("TOKCOM_CACHE", Path.home() / ".cache" / "tokcom")) / "spoken"
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default
        self.executable = executable
        self.version = _espeak_version(executable)
        self.synthesized = 0
        self.reused = 0

    def path(self, text: str, speaker: Speaker) -> Path:
        key = repr((text, speaker.voice, speaker.speed, speaker.pitch, self.version, SAMPLING_RATE))
        return self.cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.flac"

    def flac(self, text: str, speaker: Speaker) -> Path:
        """The cached 16 kHz FLAC of `speaker` saying `text` (synthesised on a miss)."""
        import soundfile
        from scipy.signal import resample_poly

        path = self.path(text, speaker)
        if path.is_file():
            self.reused += 1
            return path
        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "out.wav"
            command = [self.executable, "-v", speaker.voice, "-s", str(speaker.speed), "-p", str(speaker.pitch),
                       "-w", str(wav), text]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0 or not wav.is_file():
                raise RuntimeError(f"espeak-ng failed ({' '.join(command)}): {done.stderr.strip()}")
            samples, rate = soundfile.read(wav, dtype="float32", always_2d=True)
        g = np.gcd(int(rate), SAMPLING_RATE)
        audio = resample_poly(samples.mean(axis=1), SAMPLING_RATE // g, int(rate) // g).astype(np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        soundfile.write(buffer, np.clip(audio, -1.0, 1.0), SAMPLING_RATE, format="FLAC", subtype="PCM_16")
        partial = path.with_suffix(f".{os.getpid()}.part")
        partial.write_bytes(buffer.getvalue())
        partial.replace(path)  # atomic: a concurrent run never reads half a file
        self.synthesized += 1
        return path


def write_spoken_librispeech(root, num_train_speakers: int = 4, num_validation_speakers: int = 1,
                             num_test_speakers: int = 2, utterances_per_speaker: int = 8, seed=0, cache_dir=None,
                             executable: str = "espeak-ng", cache: SpeechCache | None = None) -> Path:  # fmt: skip
    """Write spoken utterances in LibriSpeech's layout under `root` (see the module docstring) and return `root`.
    Splits have disjoint speakers; all synthesis goes through `cache` (a `SpeechCache(cache_dir, executable)`
    unless given)."""
    counts = [check_count(n, v) for n, v in (("num_train_speakers", num_train_speakers),
              ("num_validation_speakers", num_validation_speakers), ("num_test_speakers", num_test_speakers))]  # fmt: skip
    utterances_per_speaker = check_count("utterances_per_speaker", utterances_per_speaker, 1)
    cache = cache or SpeechCache(cache_dir, executable)
    speaker_seq, text_seq = child_seeds(seed, 2)
    everyone = speakers(sum(counts), speaker_seq)
    texts = spoken_sentences(sum(counts) * utterances_per_speaker, text_seq)
    jobs, start = [], 0
    for split, count in zip(SPLIT_NAMES, counts):
        for speaker in everyone[start : start + count]:
            folder = Path(root) / LIBRISPEECH_SPLITS[split] / str(speaker.speaker_id) / str(speaker.chapter_id)
            folder.mkdir(parents=True, exist_ok=True)
            lines = []
            for u in range(utterances_per_speaker):
                text = texts[everyone.index(speaker) * utterances_per_speaker + u]
                utterance = f"{speaker.speaker_id}-{speaker.chapter_id}-{u:04d}"
                lines.append(f"{utterance} {text.upper()}")
                jobs.append((text, speaker, folder / f"{utterance}.flac"))
            (folder / f"{speaker.speaker_id}-{speaker.chapter_id}.trans.txt").write_text("\n".join(lines) + "\n")
        start += count
    with ThreadPoolExecutor(max_workers=2) as pool:  # espeak-ng runs as a subprocess: two at a time
        for (_, _, target), source in zip(jobs, pool.map(lambda job: cache.flac(job[0], job[1]), jobs)):
            shutil.copyfile(source, target)
    return Path(root)


def generate_spoken(root, num_train_speakers: int = 4, num_validation_speakers: int = 1, num_test_speakers: int = 2,
                    utterances_per_speaker: int = 8, seed=0, cache_dir=None, executable: str = "espeak-ng",
                    cache: SpeechCache | None = None) -> datasets.DatasetDict:  # fmt: skip
    """`write_spoken_librispeech(...)` then read it back with `real_datasets.load_librispeech`: a DatasetDict
    (train / validation / test) with `librispeech_features`."""
    from .real_datasets import load_librispeech

    write_spoken_librispeech(root, num_train_speakers, num_validation_speakers, num_test_speakers,
                             utterances_per_speaker, seed, cache_dir, executable, cache)  # fmt: skip
    counts = dict(zip(SPLIT_NAMES, (num_train_speakers, num_validation_speakers, num_test_speakers)))
    return datasets.DatasetDict({
        split: load_librispeech(root, LIBRISPEECH_SPLITS[split]) for split in SPLIT_NAMES if counts[split]
    })  # fmt: skip
