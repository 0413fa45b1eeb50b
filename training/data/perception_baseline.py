"""Two reference answerers for the synthetic AVQA world: one that reads the media, one that cannot.

`read_scene` is a hand-written, deterministic perception reader. It looks only at the pixels
and the waveform (plus the world's constants: glyph colours and shapes, timbres) and rebuilds
the symbolic scene layout; `answer_from_media` then answers with the same rules the generator
used. High accuracy shows the answers are recoverable from the media.

1. video: classify each pixel by its nearest glyph colour; the dominant colour in a third is
   the instrument there; its vertical centroid off the rest row marks the frames it plays in.
2. audio: Hann-windowed spectra of the first and second half of the clip; the energy in a
   +-12 Hz band around each fundamental (drum: above `DRUM_BAND_HZ`), relative to the unit-gain
   timbre's, estimates each instrument's gain in each half; the nearest `GAIN_LEVELS` entry
   gives its loudness.
3. pairing: visible instruments take their interval from motion and their loudness from
   audio; a sounding instrument that is not visible is the off-screen one.

`QuestionOnlyBaseline` answers from the question alone (majority answer per template and
placeholder values), the shortcut the balanced answers are meant to defeat.

>>> from tokcom.training.data.synthetic_avqa import generate_scenes
>>> scenes = generate_scenes(1, seed=0)
>>> read_scene(scenes.video[0], scenes.audio[0], scenes.sampling_rate) == scenes.layout(0)
True
"""

from __future__ import annotations

import functools
from collections import Counter, defaultdict

import numpy as np

from .synthetic_avqa import (
    COLOURS,
    DRUM_BAND_HZ,
    FUNDAMENTALS_HZ,
    GAIN_LEVELS,
    INSTRUMENTS,
    SyntheticAVQAConfig,
    answer_question,
    glyph_masks,
    timbre_bank,
)

__all__ = ["QuestionOnlyBaseline", "answer_from_media", "read_scene", "score_baselines"]

_BAND_HALF_WIDTH_HZ = 12.0
_COLOUR_TOLERANCE = 60.0


def _band_energies(audio: np.ndarray, sampling_rate: int) -> np.ndarray:
    """(2, len(INSTRUMENTS)) band energies of the two halves of a (samples,) waveform."""
    halves = np.asarray(audio, np.float64).reshape(2, -1)
    spectra = np.abs(np.fft.rfft(halves * np.hanning(halves.shape[1]), axis=1)) ** 2
    freqs_hz = np.fft.rfftfreq(halves.shape[1], 1.0 / sampling_rate)
    out = np.zeros((2, len(INSTRUMENTS)))
    for i, f0 in enumerate(FUNDAMENTALS_HZ):
        band = freqs_hz >= DRUM_BAND_HZ if f0 is None else np.abs(freqs_hz - f0) <= _BAND_HALF_WIDTH_HZ
        out[:, i] = spectra[:, band].sum(axis=1)
    return out


@functools.lru_cache(maxsize=8)
def _reference_energies(num_samples: int, sampling_rate: int, audio_scale: float) -> np.ndarray:
    """(len(INSTRUMENTS),) band energy of each instrument at gain 1 in one half of the clip."""
    bank = audio_scale * timbre_bank(num_samples, sampling_rate)  # (instruments, variants, samples)
    energies = [[_band_energies(wave, sampling_rate)[0, i] for wave in bank[i]] for i in range(len(INSTRUMENTS))]
    return np.mean(energies, axis=1)


def _read_video(video: np.ndarray, config: SyntheticAVQAConfig):
    """Per third: (instrument or -1, (T,) bool playing per frame)."""
    t_count, size = video.shape[0], video.shape[1]
    distance = np.linalg.norm(video[..., None, :].astype(np.float32) - COLOURS.astype(np.float32), axis=-1)
    label = np.where(distance.min(-1) < _COLOUR_TOLERANCE, distance.argmin(-1), -1)  # (T, H, W)
    masks = glyph_masks(config.glyph_size)
    rows = np.arange(size)[None, :, None]
    out = []
    for p in range(3):
        third = label[:, :, round(p * size / 3) : round((p + 1) * size / 3)]
        counts = np.bincount(third[third >= 0], minlength=len(INSTRUMENTS))
        inst = int(counts.argmax())
        if counts[inst] < t_count * masks[inst].sum() / 2:
            out.append((-1, np.zeros(t_count, bool)))
            continue
        hit = third == inst
        centroid = (hit * rows).sum((1, 2)) / np.maximum(hit.sum((1, 2)), 1)
        rest = config.glyph_y0 + np.nonzero(masks[inst])[0].mean()
        out.append((inst, np.abs(centroid - rest) > config.bob_px / 2))
    return out


def _interval(first_half: bool, second_half: bool) -> int:
    return {(False, False): 0, (True, True): 1, (True, False): 2, (False, True): 3}[(first_half, second_half)]


def read_scene(video, audio, sampling_rate: int, config: SyntheticAVQAConfig | None = None):
    """Rebuild a scene layout from its media.

    Args:
        video: (T, H, W, 3) uint8 frames.
        audio: (samples,) float32 waveform at `sampling_rate` [Hz].
    Returns:
        (instruments, intervals, gain_levels), each a list of 4 ints (slots left, middle,
        right, off screen), encoded like `SyntheticScenes`.

    >>> from tokcom.training.data.synthetic_avqa import generate_scenes
    >>> s = generate_scenes(1, seed=5)
    >>> read_scene(s.video[0], s.audio[0], 16000)[0] == s.layout(0)[0]
    True
    """
    config = config or SyntheticAVQAConfig()
    video, audio = np.asarray(video), np.asarray(audio)
    if video.ndim != 4 or video.shape[-1] != 3 or audio.ndim != 1 or audio.shape[0] % 2:
        raise ValueError(f"`video` must be (T, H, W, 3), `audio` (even samples,); got {video.shape}, {audio.shape}.")
    # 1. video: who is where, and in which frames it moves
    half_t = video.shape[0] // 2
    instruments, intervals, gain_levels = [-1] * 4, [0] * 4, [0] * 4
    for p, (inst, moving) in enumerate(_read_video(video, config)):
        instruments[p] = inst
        intervals[p] = _interval(moving[:half_t].mean() > 0.5, moving[half_t:].mean() > 0.5) if inst >= 0 else 0
    # 2. audio: per-half gain estimate of every instrument
    reference = _reference_energies(len(audio), sampling_rate, config.audio_scale)
    gains = np.sqrt(_band_energies(audio, sampling_rate) / reference)  # (2, instruments)
    heard = gains > 0.4 * min(GAIN_LEVELS)
    log_levels = np.log2(GAIN_LEVELS)
    for i in np.nonzero(heard.any(axis=0))[0]:
        level = int(np.abs(np.log2(gains[heard[:, i], i].mean()) - log_levels).argmin())
        # 3. pairing: a visible instrument keeps its motion interval; any other sound is off screen
        if i in instruments[:3]:
            gain_levels[instruments.index(i)] = level
        elif instruments[3] < 0 or gains[:, i].sum() > gains[:, instruments[3]].sum():
            instruments[3], intervals[3], gain_levels[3] = int(i), _interval(*heard[:, i]), level
    return instruments, intervals, gain_levels


def answer_from_media(video, audio, sampling_rate: int, question_content: str, templ_values, config=None):
    """Answer one question from the media alone; None if it does not apply to what was perceived.

    >>> from tokcom.training.data.synthetic_avqa import generate_scenes
    >>> s = generate_scenes(1, seed=0)
    >>> answer_from_media(s.video[0], s.audio[0], 16000, "How many instruments are in the video?", "[]")
    'three'
    """
    return answer_question(*read_scene(video, audio, sampling_rate, config), question_content, templ_values)


class QuestionOnlyBaseline:
    """Majority answer per (question_content, templ_values), falling back to per template, then overall.

    >>> rows = [{"question_content": "Is there a <Object> sound?", "templ_values": '["drum"]', "anser": "no"}]
    >>> QuestionOnlyBaseline().fit(rows).predict("Is there a <Object> sound?", '["drum"]')
    'no'
    """

    def __init__(self):
        self.by_key, self.by_template, self.overall = {}, {}, None

    def fit(self, rows) -> "QuestionOnlyBaseline":
        """`rows`: iterable of dicts with question_content, templ_values, anser (e.g. a Dataset
        with `select_columns`, to skip decoding media)."""
        by_key, by_template, overall = defaultdict(Counter), defaultdict(Counter), Counter()
        for row in rows:
            content, values, answer = row["question_content"], row["templ_values"], row["anser"]
            by_key[(content, values)][answer] += 1
            by_template[content][answer] += 1
            overall[answer] += 1
        self.by_key = {k: c.most_common(1)[0][0] for k, c in by_key.items()}
        self.by_template = {k: c.most_common(1)[0][0] for k, c in by_template.items()}
        self.overall = overall.most_common(1)[0][0] if overall else None
        return self

    def predict(self, question_content: str, templ_values: str) -> str | None:
        """The majority answer for this question text (no media)."""
        return self.by_key.get((question_content, templ_values), self.by_template.get(question_content, self.overall))


def score_baselines(train, test, sampling_rate: int = 16000) -> dict:
    """Fit the question-only baseline on `train` and score it and the media reader on `test` (AVQA Datasets).

    Returns `{type: numpy array (question-only hits, media-reader hits, questions)}`; each scene is read once.
    """
    from .synthetic_avqa import answer_question

    question_only = QuestionOnlyBaseline().fit(train.select_columns(["question_content", "templ_values", "anser"]))
    scores = defaultdict(lambda: np.zeros(3))
    readings = {}
    numpy_test = test.with_format("numpy", dtype=None)
    for start in range(0, len(test), 256):
        batch = numpy_test[start : start + 256]
        for j, video_id in enumerate(batch["video_id"]):
            if video_id not in readings:
                readings[video_id] = read_scene(batch["video"][j], batch["audio"][j], sampling_rate)
            content, values, answer = batch["question_content"][j], batch["templ_values"][j], batch["anser"][j]
            media = answer_question(*readings[video_id], content, values)
            scores[batch["type"][j]] += (question_only.predict(content, values) == answer, media == answer, 1)
    return dict(scores)

