"""A deterministic synthetic audio-visual music world with MUSIC-AVQA's and VALOR's schemas.

World: six instruments, each with a visual glyph (shape + colour, `glyph_size` px) and a timbre.
A scene shows 1-3 instruments, one per horizontal third (left / middle / right), over
`num_frames` RGB frames, plus `duration_s` of mono audio at `sampling_rate` [Hz] that sums the
sounding instruments. A playing instrument bobs `bob_px` up (even frames) or down (odd frames)
from its rest row during its sounding interval; a silent one stays at rest. Frame `t` covers
the time `[t/T, (t+1)/T)` of the clip. An instrument may sound the whole clip, only the first
half or only the second half; one extra instrument may sound off screen.

| instrument | glyph    | colour  | timbre                                  |
|------------|----------|---------|-----------------------------------------|
| piano      | square   | white   | 247 Hz, 8 harmonics, 4 struck notes/s   |
| violin     | triangle | red     | 554 Hz, 9 harmonics (sawtooth-like)     |
| cello      | diamond  | blue    | 165 Hz, 12 harmonics                    |
| flute      | plus     | green   | 1047 Hz, nearly pure                    |
| trumpet    | disk     | yellow  | 392 Hz, 8 bright harmonics              |
| drum       | ring     | magenta | noise bursts above 5.3 kHz, 4 hits/s    |

Loudness is one of `GAIN_LEVELS` (each timbre has unit RMS before the gain, so "louder" means
a larger gain level, 6 dB apart).

Scene encoding (`SyntheticScenes`, N scenes, 4 slots: 0 left, 1 middle, 2 right, 3 off screen):
`instruments` (N, 4) int8 index into `INSTRUMENTS` or -1 (empty); `intervals` (N, 4) int8 index
into `INTERVALS` ("silent", "full", "first", "second"); `gain_levels` (N, 4) int8 index into
`GAIN_LEVELS`; `video` (N, T, H, W, 3) uint8; `audio` (N, samples) float32 in [-1, 1].

Questions (`QUESTION_TEMPLATES`, 16 templates over Audio / Visual / Audio-Visual x Counting /
Existential / Location / Comparative / Temporal): counts are answered as words ("one".."three",
like MUSIC-AVQA); "louder" compares gain levels and is asked only when they differ; "first" /
"last" is the instrument whose sound starts strictly earliest / latest; "always playing" means
sounding the whole clip; "Is this sound from the instrument in the video?" is "no" exactly when
something sounds off screen. Answers are balanced within each template (`generate_questions`).

Dataset schema (`avqa_features`; the real-data loader in `music_avqa.py` produces the same):

| column           | feature                                   | example                           |
|------------------|-------------------------------------------|-----------------------------------|
| video_id         | string                                    | "syn-000007"                      |
| question_id      | int64                                     | 28                                |
| type             | string (JSON list)                        | '["Audio-Visual", "Temporal"]'    |
| question_content | string with <Object>/<LR>/<FL> placeholders | "Where is the <FL> sounding instrument?" |
| templ_values     | string (JSON list)                        | '["first"]'                       |
| anser            | string, one word of `ANSWER_VOCAB` (sic)  | "left"                            |
| question         | string, placeholders filled               | "Where is the first sounding instrument?" |
| video            | Array4D (T, H, W, 3) uint8                | frames                            |
| audio            | List(float32), always `samples` long      | waveform in [-1, 1]               |
| sampling_rate    | int32 [Hz]                                | 16000                             |

Captions (`caption_features`): video_id, video, audio, sampling_rate, desc (string).
Rows hold their media (about 123 kB each in memory: Arrow keeps list offsets for Array4D).
`datasets`' numpy/torch formatters upcast integer arrays to int64; pass `dtype=None` to keep the
uint8 video: `ds.with_format("torch", dtype=None)`.

>>> ds = generate_avqa(4, seed=0)
>>> row = ds.with_format("numpy", dtype=None)[0]
>>> row["video"].shape, row["video"].dtype, row["audio"].shape, row["audio"].dtype
((8, 32, 32, 3), dtype('uint8'), (16000,), dtype('float32'))
>>> row["anser"] in ANSWER_VOCAB
True
"""

from __future__ import annotations

import dataclasses
import functools
import json

import datasets
import numpy as np

from .world import SPLIT_NAMES
from .world import TEMPLATE_PLACEHOLDER as _PLACEHOLDER
from .world import build_dataset as _to_dataset
from .world import child_seeds as _children
from .world import media_columns as _media_columns
from .world import seed_key as _seed_key
from .world import seed_sequence as _seed_sequence
from .world import take_rows as _take_rows

__all__ = [
    "ANSWER_VOCAB",
    "CAPTION_STYLES",
    "MODAL_DESCRIBERS",
    "COLOURS",
    "DRUM_BAND_HZ",
    "FUNDAMENTALS_HZ",
    "GAIN_LEVELS",
    "GLYPH_SHAPES",
    "INSTRUMENTS",
    "INTERVALS",
    "NUMBER_WORDS",
    "POSITIONS",
    "QUESTION_TEMPLATES",
    "SPLIT_NAMES",
    "SyntheticAVQAConfig",
    "SyntheticScenes",
    "answer_question",
    "avqa_features",
    "caption_features",
    "caption_writer",
    "describe_scene",
    "describe_audio_slots",
    "describe_modal",
    "describe_slots",
    "describe_visual_slots",
    "generate_avqa",
    "generate_avqa_splits",
    "generate_questions",
    "generate_scenes",
    "generate_split",
    "generate_valor_captions",
    "glyph_masks",
    "render_question",
    "timbre_bank",
]

INSTRUMENTS = ("piano", "violin", "cello", "flute", "trumpet", "drum")
POSITIONS = ("left", "middle", "right")
INTERVALS = ("silent", "full", "first", "second")
GAIN_LEVELS = (0.25, 0.5, 1.0)
GLYPH_SHAPES = ("square", "triangle", "diamond", "plus", "disk", "ring")
COLOURS = np.array(
    [[235, 235, 235], [230, 45, 40], [50, 100, 240], [50, 210, 70], [245, 205, 30], [215, 55, 215]], np.uint8
)
FUNDAMENTALS_HZ = (247.0, 554.0, 165.0, 1047.0, 392.0, None)  # drum: noise, no pitch
HARMONIC_AMPLITUDES = (
    tuple(1.0 / k**1.5 for k in range(1, 9)),  # piano
    tuple(1.0 / k for k in range(1, 10)),  # violin
    tuple(1.0 / k**0.8 for k in range(1, 13)),  # cello
    (1.0, 0.2, 0.05),  # flute
    (0.6, 1.0, 0.9, 0.7, 0.5, 0.35, 0.25, 0.15),  # trumpet
    (),
)
DRUM_BAND_HZ = 5300.0  # drum noise lives above this; every harmonic partial lies below 5 kHz
HITS_PER_S = 4.0  # piano notes and drum hits per second
BACKGROUND = np.array([12, 12, 20], np.uint8)
NUMBER_WORDS = ("zero", "one", "two", "three")
_TIMBRE_VARIANTS = 8
_CHUNK_SCENES = 256  # media is rendered in fixed chunks so results never depend on memory
_GENERATOR_VERSION = 1  # bump when the world or the sampling changes (part of dataset fingerprints)
_WORLD_SEED = 20240611  # fixed timbre phases / drum noise: part of the world, not of a scene


@dataclasses.dataclass
class SyntheticAVQAConfig:
    """Sizes and probabilities of the synthetic world.

    `frame_size` [px] must fit three glyphs side by side; `num_frames` must be even (the first
    and second half of the clip are whole frames).

    >>> SyntheticAVQAConfig(num_frames=4).num_samples
    16000
    """

    num_frames: int = 8  # T, even
    frame_size: int = 32  # H = W [px]
    sampling_rate: int = 16000  # [Hz]
    duration_s: float = 1.0  # [s]
    glyph_size: int = 8  # [px]
    bob_px: int = 3  # vertical displacement of a playing glyph [px]
    questions_per_scene: int = 4  # at most; fewer when the balancing finds no fitting template
    offscreen_prob: float = 0.3  # a scene has an off-screen sound (only if <= 2 visible ones play)
    silent_prob: float = 0.35  # a visible instrument is silent
    partial_prob: float = 0.4  # a sounding instrument plays only the first or the second half
    audio_scale: float = 0.05  # waveform = audio_scale * sum(gain * unit-RMS timbre); no clipping seen
    audio_noise_std: float = 0.001  # white noise added to the waveform
    video_noise_level: int = 6  # uniform pixel noise in [0, level] added to every frame
    balance_slack: int = 1  # max lead of an answer over the template's rarest answer

    def __post_init__(self):
        if self.num_frames < 2 or self.num_frames % 2:
            raise ValueError(f"`num_frames` must be an even integer >= 2, got {self.num_frames}.")
        if self.glyph_size < 3 or 3 * (self.glyph_size + 2) > self.frame_size:
            raise ValueError(f"`frame_size` ({self.frame_size}) must be >= 3 * (glyph_size + 2) with glyph_size >= 3.")
        if not 0 < self.bob_px <= (self.frame_size - self.glyph_size) // 2:
            limit = (self.frame_size - self.glyph_size) // 2
            raise ValueError(f"`bob_px` must be in [1, {limit}], got {self.bob_px}.")
        if self.sampling_rate < 12000:
            raise ValueError(f"`sampling_rate` must be >= 12000 Hz (timbres reach 5 kHz), got {self.sampling_rate}.")
        if self.num_samples < 2 * self.num_frames or self.num_samples % 2:
            raise ValueError(f"`duration_s * sampling_rate` must be an even sample count, got {self.num_samples}.")
        for name in ("offscreen_prob", "silent_prob", "partial_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"`{name}` must be in [0, 1], got {getattr(self, name)}.")
        if self.questions_per_scene < 1 or self.balance_slack < 0 or not 0 <= self.video_noise_level <= 10:
            raise ValueError("Need `questions_per_scene` >= 1, `balance_slack` >= 0, `video_noise_level` in [0, 10].")
        if not (self.audio_scale > 0 and self.audio_noise_std >= 0):
            raise ValueError(
                f"Need `audio_scale` > 0 and `audio_noise_std` >= 0, got {self.audio_scale}, {self.audio_noise_std}."
            )

    @property
    def num_samples(self) -> int:
        return int(round(self.duration_s * self.sampling_rate))

    @property
    def glyph_x0(self) -> tuple[int, int, int]:
        """Left column [px] of the glyph in each third (left, middle, right)."""
        third = self.frame_size / 3
        return tuple(int(round((k + 0.5) * third - self.glyph_size / 2)) for k in range(3))

    @property
    def glyph_y0(self) -> int:
        """Top row [px] of a glyph at rest."""
        return (self.frame_size - self.glyph_size) // 2


# ---------------------------------------------------------------------------------------------
# World constants: glyphs and timbres
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def glyph_masks(glyph_size: int = 8) -> np.ndarray:
    """Boolean glyph masks, shape (len(INSTRUMENTS), glyph_size, glyph_size), one per instrument.

    >>> glyph_masks(8).shape
    (6, 8, 8)
    """
    g = glyph_size
    y, x = np.mgrid[0:g, 0:g] + 0.5
    c, r = g / 2, g / 2
    masks = np.stack(
        [
            np.ones((g, g), bool),  # square
            np.abs(x - c) <= (y / g) * c + 0.25,  # triangle pointing up
            np.abs(x - c) + np.abs(y - c) <= r,  # diamond
            (np.abs(x - c) < g / 6 + 0.5) | (np.abs(y - c) < g / 6 + 0.5),  # plus
            (x - c) ** 2 + (y - c) ** 2 <= r**2,  # disk
            ((x - c) ** 2 + (y - c) ** 2 <= r**2) & ((x - c) ** 2 + (y - c) ** 2 >= (r - 2.2) ** 2),  # ring
        ]
    )
    masks.setflags(write=False)
    return masks


@functools.lru_cache(maxsize=8)
def timbre_bank(num_samples: int = 16000, sampling_rate: int = 16000) -> np.ndarray:
    """Unit-RMS timbres, shape (len(INSTRUMENTS), variants, num_samples) float32.

    Variants differ in harmonic phases (drum: noise); fundamentals are integers in Hz, so every
    variant is periodic over a 1 s clip.

    >>> timbre_bank(16000, 16000).shape
    (6, 8, 16000)
    """
    rng = np.random.default_rng(_WORLD_SEED)
    t_s = np.arange(num_samples) / sampling_rate
    hit_phase_s = np.mod(t_s, 1.0 / HITS_PER_S)
    bank = np.zeros((len(INSTRUMENTS), _TIMBRE_VARIANTS, num_samples), np.float64)
    for i, (f0, amplitudes) in enumerate(zip(FUNDAMENTALS_HZ, HARMONIC_AMPLITUDES)):
        for v in range(_TIMBRE_VARIANTS):
            if f0 is None:  # drum: decaying bursts of noise above DRUM_BAND_HZ (no harmonic reaches it)
                spectrum = np.fft.rfft(rng.standard_normal(num_samples))
                spectrum[np.fft.rfftfreq(num_samples, 1.0 / sampling_rate) < DRUM_BAND_HZ] = 0.0
                wave = np.fft.irfft(spectrum, n=num_samples) * np.exp(-hit_phase_s / 0.03)
            else:
                k = np.arange(1, len(amplitudes) + 1)[:, None]
                phases = rng.uniform(0, 2 * np.pi, (len(amplitudes), 1))
                wave = (np.asarray(amplitudes)[:, None] * np.sin(2 * np.pi * k * f0 * t_s + phases)).sum(0)
                if INSTRUMENTS[i] == "piano":  # struck notes
                    wave *= 0.35 + 0.65 * np.exp(-hit_phase_s / 0.06)
            bank[i, v] = wave / np.sqrt(np.mean(wave**2))
    bank = bank.astype(np.float32)
    bank.setflags(write=False)
    return bank


@functools.lru_cache(maxsize=8)
def _interval_envelopes(num_samples: int, sampling_rate: int) -> np.ndarray:
    """(len(INTERVALS), num_samples) float32 gates with 5 ms ramps at the half-clip boundary."""
    half, ramp = num_samples // 2, max(1, int(0.005 * sampling_rate))
    first = np.zeros(num_samples, np.float32)
    first[:half] = 1.0
    first[half - ramp : half] = np.linspace(1.0, 0.0, ramp, endpoint=False)
    second = np.zeros(num_samples, np.float32)
    second[half:] = 1.0
    second[half : half + ramp] = np.linspace(0.0, 1.0, ramp, endpoint=False)
    return np.stack([np.zeros(num_samples, np.float32), np.ones(num_samples, np.float32), first, second])


def _playing_frames(num_frames: int) -> np.ndarray:
    """(len(INTERVALS), num_frames) bool: is an instrument with that interval playing in frame t."""
    t = np.arange(num_frames)
    return np.stack([t < 0, t >= 0, t < num_frames // 2, t >= num_frames // 2])


# ---------------------------------------------------------------------------------------------
# Scenes: structure (vectorized sampling) and media (vectorized rendering)
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class SyntheticScenes:
    """A batch of N scenes: symbolic layout plus rendered media (see the module docstring).

    >>> scenes = generate_scenes(3, seed=0)
    >>> scenes.video.shape, scenes.audio.shape, scenes.instruments.shape
    ((3, 8, 32, 32, 3), (3, 16000), (3, 4))
    """

    instruments: np.ndarray  # (N, 4) int8, -1 = empty slot
    intervals: np.ndarray  # (N, 4) int8 index into INTERVALS
    gain_levels: np.ndarray  # (N, 4) int8 index into GAIN_LEVELS
    video: np.ndarray | None  # (N, T, H, W, 3) uint8 (None: layouts only)
    audio: np.ndarray | None  # (N, samples) float32
    sampling_rate: int

    def __len__(self) -> int:
        return len(self.instruments)

    def layout(self, index: int) -> tuple[list[int], list[int], list[int]]:
        """(instruments, intervals, gain_levels) of scene `index` as Python lists of 4 ints."""
        return self.instruments[index].tolist(), self.intervals[index].tolist(), self.gain_levels[index].tolist()


def _sample_layouts(num_scenes: int, rng: np.random.Generator, config: SyntheticAVQAConfig):
    n = num_scenes
    num_visible = rng.integers(1, 4, n)
    position_rank = np.argsort(rng.random((n, 3)), axis=1).argsort(axis=1)
    visible = position_rank < num_visible[:, None]  # (n, 3) random subset of the thirds
    chosen = np.argsort(rng.random((n, len(INSTRUMENTS))), axis=1)[:, :4]  # distinct instruments
    playing = visible & (rng.random((n, 3)) >= config.silent_prob)
    nobody = ~playing.any(axis=1)
    playing[nobody] = visible[nobody] & (position_rank[nobody] == 0)  # someone must play
    offscreen = (rng.random(n) < config.offscreen_prob) & (playing.sum(axis=1) <= 2)
    instruments = np.where(np.concatenate([visible, offscreen[:, None]], 1), chosen, -1).astype(np.int8)
    sounding = np.concatenate([playing, offscreen[:, None]], 1)
    partial = rng.random((n, 4)) < config.partial_prob
    half = rng.integers(2, 4, (n, 4))
    intervals = np.where(sounding, np.where(partial, half, 1), 0).astype(np.int8)
    gain_levels = np.where(sounding, rng.integers(0, len(GAIN_LEVELS), (n, 4)), 0).astype(np.int8)
    variants = rng.integers(0, _TIMBRE_VARIANTS, (n, 4))
    return instruments, intervals, gain_levels, variants


def _render_chunk(instruments, intervals, gain_levels, variants, rng, config):
    n, t_count, size, g = len(instruments), config.num_frames, config.frame_size, config.glyph_size
    # 1. video: background + glyphs (bobbing while playing) + mild noise
    video = np.broadcast_to(BACKGROUND, (n, t_count, size, size, 3)).copy()
    bob = np.where(np.arange(t_count) % 2 == 0, -config.bob_px, config.bob_px)
    moving = _playing_frames(t_count)[intervals[:, :3]]  # (n, 3, T)
    scene_i, slot = np.nonzero(instruments[:, :3] >= 0)
    inst = instruments[scene_i, slot].astype(np.int64)
    y0 = config.glyph_y0 + np.where(moving[scene_i, slot], bob, 0)  # (M, T)
    x0 = np.asarray(config.glyph_x0)[slot]
    k, dy, dx = np.nonzero(glyph_masks(g)[inst])  # pixels of each visible glyph
    k_t = np.repeat(k[:, None], t_count, 1)
    frames = np.broadcast_to(np.arange(t_count), k_t.shape)
    video[scene_i[k_t], frames, y0[k_t, frames] + dy[:, None], (x0[k] + dx)[:, None]] = COLOURS[inst[k_t]]
    if config.video_noise_level:
        video += rng.integers(0, config.video_noise_level + 1, video.shape, dtype=np.uint8)
    # 2. audio: a(t) = audio_scale * sum_slots gain * gate_interval(t) * timbre(t) + noise
    bank = timbre_bank(config.num_samples, config.sampling_rate)
    envelopes = _interval_envelopes(config.num_samples, config.sampling_rate)
    gains = np.where(instruments >= 0, np.asarray(GAIN_LEVELS, np.float32)[gain_levels], 0.0).astype(np.float32)
    audio = np.zeros((n, config.num_samples), np.float32)
    for s in range(4):
        waves = bank[np.maximum(instruments[:, s], 0), variants[:, s]] * envelopes[intervals[:, s]]
        audio += (config.audio_scale * gains[:, s])[:, None] * waves
    audio += config.audio_noise_std * rng.standard_normal(audio.shape, dtype=np.float32)
    np.clip(audio, -1.0, 1.0, out=audio)
    return video, audio


def generate_scenes(num_scenes: int, seed=0, config: SyntheticAVQAConfig | None = None) -> SyntheticScenes:
    """Sample and render `num_scenes` scenes; deterministic by `seed` (int or SeedSequence).

    >>> a, b = generate_scenes(2, seed=1), generate_scenes(2, seed=1)
    >>> bool((a.video == b.video).all() and (a.audio == b.audio).all())
    True
    """
    config = config or SyntheticAVQAConfig()
    if num_scenes < 0:
        raise ValueError(f"`num_scenes` must be >= 0, got {num_scenes}.")
    layout_seq, media_seq = _children(seed, 2)
    layout_rng = np.random.default_rng(layout_seq)
    instruments, intervals, gain_levels, variants = _sample_layouts(num_scenes, layout_rng, config)
    media_rng = np.random.default_rng(media_seq)
    video = np.empty((num_scenes, config.num_frames, config.frame_size, config.frame_size, 3), np.uint8)
    audio = np.empty((num_scenes, config.num_samples), np.float32)
    for start in range(0, num_scenes, _CHUNK_SCENES):
        part = slice(start, start + _CHUNK_SCENES)
        video[part], audio[part] = _render_chunk(
            instruments[part], intervals[part], gain_levels[part], variants[part], media_rng, config
        )
    return SyntheticScenes(instruments, intervals, gain_levels, video, audio, config.sampling_rate)


# ---------------------------------------------------------------------------------------------
# Questions in MUSIC-AVQA's annotation schema
# ---------------------------------------------------------------------------------------------


def _sounding(iv):
    return [s for s in range(4) if iv[s] > 0]


def _visible(inst):
    return [p for p in range(3) if inst[p] >= 0]


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _first_last(iv) -> dict:
    """Slots that start sounding strictly first / strictly last (onset 0 s or half clip)."""
    slots = _sounding(iv)
    if len(slots) < 2:
        return {}
    onsets = [iv[s] == 3 for s in slots]
    out = {}
    if onsets.count(False) == 1:
        out["first"] = slots[onsets.index(False)]
    if onsets.count(True) == 1:
        out["last"] = slots[onsets.index(True)]
    return out


def _count(n: int):
    return [((), NUMBER_WORDS[n])] if 1 <= n <= 3 else []


def _pairs(slots, inst_or_pos, gl):
    pairs = [(a, b) for a in slots for b in slots if gl[a] != gl[b]]
    return [((inst_or_pos(a), inst_or_pos(b)), _yes(gl[a] > gl[b])) for a, b in pairs]


_N = INSTRUMENTS
_COUNTS, _YES_NO = NUMBER_WORDS[1:], ("yes", "no")
# (type, question_content, answers, candidates(instruments, intervals, gain_levels) -> [(values, answer)])
_TEMPLATES = (
    (("Audio", "Counting"), "How many instruments are sounding in the video?", _COUNTS,
     lambda inst, iv, gl: _count(len(_sounding(iv)))),
    (("Audio", "Existential"), "Is there a <Object> sound?", _YES_NO,
     lambda inst, iv, gl: [((_N[i],), _yes(i in [inst[s] for s in _sounding(iv)])) for i in range(len(_N))]),
    (("Audio", "Comparative"), "Is the <Object> louder than the <Object>?", _YES_NO,
     lambda inst, iv, gl: _pairs(_sounding(iv), lambda s: _N[inst[s]], gl)),
    (("Audio", "Temporal"), "Which instrument sounds <FL>?", INSTRUMENTS,
     lambda inst, iv, gl: [((fl,), _N[inst[s]]) for fl, s in _first_last(iv).items()]),
    (("Visual", "Counting"), "How many instruments are in the video?", _COUNTS,
     lambda inst, iv, gl: _count(len(_visible(inst)))),
    (("Visual", "Existential"), "Is there a <Object> in the video?", _YES_NO,
     lambda inst, iv, gl: [((_N[i],), _yes(i in inst[:3])) for i in range(len(_N))]),
    (("Visual", "Location"), "Where is the <Object>?", POSITIONS,
     lambda inst, iv, gl: [((_N[inst[p]],), POSITIONS[p]) for p in _visible(inst)]),
    (("Visual", "Location"), "What is the <LR> instrument?", INSTRUMENTS,
     lambda inst, iv, gl: [((POSITIONS[p],), _N[inst[p]]) for p in _visible(inst)]),
    (("Audio-Visual", "Existential"), "Is the <Object> in the video playing?", _YES_NO,
     lambda inst, iv, gl: [((_N[inst[p]],), _yes(iv[p] > 0)) for p in _visible(inst)]),
    (("Audio-Visual", "Existential"), "Is the <Object> in the video always playing?", _YES_NO,
     lambda inst, iv, gl: [((_N[inst[p]],), _yes(iv[p] == 1)) for p in _visible(inst)]),
    (("Audio-Visual", "Existential"), "Is this sound from the instrument in the video?", _YES_NO,
     lambda inst, iv, gl: [((), _yes(iv[3] == 0))]),
    (("Audio-Visual", "Counting"), "How many instruments in the video are playing?", _COUNTS,
     lambda inst, iv, gl: _count(sum(iv[p] > 0 for p in range(3)))),
    (("Audio-Visual", "Location"), "Where is the sounding instrument?", POSITIONS,
     lambda inst, iv, gl: [((), POSITIONS[s]) for s in _sounding(iv) if len(_sounding(iv)) == 1 and s < 3]),
    (("Audio-Visual", "Comparative"), "Is the <LR> instrument louder than the <LR> instrument?", _YES_NO,
     lambda inst, iv, gl: _pairs([s for s in _sounding(iv) if s < 3], lambda s: POSITIONS[s], gl)),
    (("Audio-Visual", "Temporal"), "Where is the <FL> sounding instrument?", POSITIONS,
     lambda inst, iv, gl: [((fl,), POSITIONS[s]) for fl, s in _first_last(iv).items() if s < 3]),
    (("Audio-Visual", "Temporal"), "Is the <Object> playing at the beginning or at the end?", ("beginning", "end"),
     lambda inst, iv, gl: [((_N[inst[p]],), ("beginning", "end")[iv[p] - 2]) for p in _visible(inst) if iv[p] >= 2]),
)  # fmt: skip
QUESTION_TEMPLATES = tuple({"type": t, "question_content": c, "answers": a} for t, c, a, _ in _TEMPLATES)
ANSWER_VOCAB = tuple(dict.fromkeys(a for _, _, answers, _ in _TEMPLATES for a in answers))
_BY_CONTENT = {content: (index, candidates) for index, (_, content, _, candidates) in enumerate(_TEMPLATES)}
_TEXT_COLUMNS = ("type", "question_content", "templ_values", "anser", "question")


def _as_values(templ_values) -> list[str]:
    return json.loads(templ_values) if isinstance(templ_values, str) else list(templ_values)


def render_question(question_content: str, templ_values) -> str:
    """Fill `<Object>`/`<LR>`/`<FL>` placeholders in order with `templ_values` (list or JSON string).

    >>> render_question("Is the <Object> louder than the <Object>?", '["cello", "drum"]')
    'Is the cello louder than the drum?'
    """
    values = _as_values(templ_values)
    if len(_PLACEHOLDER.findall(question_content)) != len(values):
        raise ValueError(f"`templ_values` {values!r} do not match the placeholders of {question_content!r}.")
    filled = iter(values)
    return _PLACEHOLDER.sub(lambda _: str(next(filled)), question_content)


def answer_question(instruments, intervals, gain_levels, question_content: str, templ_values) -> str | None:
    """Answer a template question about one scene layout (4-slot lists); None if it does not apply.

    >>> answer_question([1, -1, 5, -1], [1, 0, 0, 0], [0, 0, 0, 0], "Where is the <Object>?", '["drum"]')
    'right'
    """
    if question_content not in _BY_CONTENT:
        raise ValueError(f"Unknown `question_content` {question_content!r}; see QUESTION_TEMPLATES.")
    values = tuple(_as_values(templ_values))
    candidates = _BY_CONTENT[question_content][1](list(instruments), list(intervals), list(gain_levels))
    return next((answer for vals, answer in candidates if vals == values), None)


def generate_questions(scenes: SyntheticScenes, seed=0, config: SyntheticAVQAConfig | None = None) -> list[dict]:
    """Up to `questions_per_scene` questions per scene, answers balanced within each template.

    Greedy balancing: for each template (least asked first, ties in random order), among the answers this scene
    can give, pick one whose running count is the template's minimum (within `balance_slack`),
    then pick the placeholder values uniformly among those giving that answer. Rows hold the
    MUSIC-AVQA keys plus `question` (filled text) and `scene_index`.

    >>> rows = generate_questions(generate_scenes(2, seed=0), seed=0)
    >>> sorted(rows[0])
    ['anser', 'question', 'question_content', 'question_id', 'scene_index', 'templ_values', 'type']
    """
    config = config or SyntheticAVQAConfig()
    rng = np.random.default_rng(_seed_sequence(seed))
    counts = [dict.fromkeys(answers, 0) for _, _, answers, _ in _TEMPLATES]
    rows = []
    for index in range(len(scenes)):
        layout = scenes.layout(index)
        asked = 0
        tiebreak = rng.random(len(_TEMPLATES))  # least-asked templates first, so rare ones get asked
        for k in sorted(range(len(_TEMPLATES)), key=lambda j: (sum(counts[j].values()), tiebreak[j])):
            type_pair, content, _, candidates_fn = _TEMPLATES[k]
            candidates = [c for c in candidates_fn(*layout) if c[1] in counts[k]]
            floor = min(counts[k].values()) + config.balance_slack
            eligible = sorted({a for _, a in candidates if counts[k][a] <= floor}, key=ANSWER_VOCAB.index)
            if not eligible:
                continue
            lowest = min(counts[k][a] for a in eligible)
            answers = [a for a in eligible if counts[k][a] == lowest]
            answer = answers[rng.integers(len(answers))]
            matching = [values for values, a in candidates if a == answer]
            values = list(matching[rng.integers(len(matching))])
            counts[k][answer] += 1
            rows.append(
                {
                    "scene_index": index,
                    "question_id": len(rows),
                    "type": json.dumps(list(type_pair)),
                    "question_content": content,
                    "templ_values": json.dumps(values),
                    "anser": answer,
                    "question": render_question(content, values),
                }
            )
            asked += 1
            if asked == config.questions_per_scene:
                break
    return rows


# ---------------------------------------------------------------------------------------------
# VALOR-style captions
# ---------------------------------------------------------------------------------------------

_WHERE = ("on the left", "in the middle", "on the right")
_MANNER = (" softly", " moderately", " loudly")  # every loudness level is named (Comparatives read it)
_WHEN = ("", " throughout", " at the beginning", " at the end")


def describe_scene(instruments, intervals, gain_levels) -> str:
    """A deterministic VALOR-style caption of one scene layout (4-slot lists).

    >>> describe_scene([1, -1, 5, 3], [3, 0, 0, 1], [2, 0, 0, 0])[:59]
    'A violin on the left plays loudly at the end while a silent'
    >>> describe_scene([1, -1, -1, 3], [1, 0, 0, 2], [0, 0, 0, 2])
    'A violin on the left plays softly throughout; a flute is heard loudly off screen at the beginning.'
    """
    clauses = []
    for p in _visible(instruments):
        name = INSTRUMENTS[instruments[p]]
        if intervals[p] == 0:
            clauses.append(f"a silent {name} sits {_WHERE[p]}")
        else:
            clauses.append(f"a {name} {_WHERE[p]} plays{_MANNER[gain_levels[p]]}{_WHEN[intervals[p]]}")
    text = clauses[0] if len(clauses) == 1 else " while ".join(clauses) if len(clauses) == 2 else (
        f"{clauses[0]}, {clauses[1]} and {clauses[2]}"
    )
    if instruments[3] >= 0 and intervals[3] > 0:
        when = _WHEN[intervals[3]] if intervals[3] > 1 else ""
        text += f"; a {INSTRUMENTS[instruments[3]]} is heard{_MANNER[gain_levels[3]]} off screen{when}"
    return text[0].upper() + text[1:] + "."


_SLOT_NAMES = ("left", "middle", "right", "off")
_SLOT_LOUDNESS = ("softly", "moderately", "loudly")
_SLOT_TIMING = ("silent", "throughout", "beginning", "end")


def describe_slots(instruments, intervals, gain_levels) -> str:
    """A fixed-slot description of one scene layout: four clauses `position instrument loudness timing .`
    (left, middle, right, off screen), `no` where a slot is empty. Every fact sits at the same offset in every
    scene, which a tiny LLM learns to look up far more reliably than free-form captions (see
    `benchmarks/text_lookup_probe.py`).

    >>> describe_slots([1, -1, 5, 3], [3, 0, 0, 1], [2, 0, 0, 0])
    'left violin loudly end . middle no no no . right drum no silent . off flute softly throughout .'
    """
    clauses = []
    for slot, name in enumerate(_SLOT_NAMES):
        if instruments[slot] < 0 or (slot == 3 and intervals[3] == 0):
            clauses.append(f"{name} no no no .")
            continue
        loudness = _SLOT_LOUDNESS[gain_levels[slot]] if intervals[slot] else "no"
        clauses.append(f"{name} {INSTRUMENTS[instruments[slot]]} {loudness} {_SLOT_TIMING[intervals[slot]]} .")
    return " ".join(clauses)


def describe_visual_slots(instruments, intervals, gain_levels) -> str:
    """What the camera shows, one fixed clause per third: `position instrument timing .` (`no no` where empty).
    Timing is when the instrument moves (plays); loudness is not visible.

    >>> describe_visual_slots([1, -1, 5, 3], [3, 0, 0, 1], [2, 0, 0, 0])
    'left violin end . middle no no . right drum silent .'
    """
    clauses = []
    for slot, name in enumerate(_SLOT_NAMES[:3]):
        if instruments[slot] < 0:
            clauses.append(f"{name} no no .")
        else:
            clauses.append(f"{name} {INSTRUMENTS[instruments[slot]]} {_SLOT_TIMING[intervals[slot]]} .")
    return " ".join(clauses)


def describe_audio_slots(instruments, intervals, gain_levels) -> str:
    """What the microphone hears, one fixed clause per instrument of `INSTRUMENTS`: `instrument loudness timing .`
    (`no no` when it does not sound). Where an instrument sits is not audible.

    >>> describe_audio_slots([1, -1, 5, 3], [3, 0, 0, 1], [2, 0, 0, 0])[:54]
    'piano no no . violin loudly end . cello no no . flute '
    """
    heard = {}
    for slot in range(4):
        if instruments[slot] >= 0 and intervals[slot] > 0:
            heard[int(instruments[slot])] = f"{_SLOT_LOUDNESS[gain_levels[slot]]} {_SLOT_TIMING[intervals[slot]]}"
    return " ".join(f"{name} {heard.get(index, 'no no')} ." for index, name in enumerate(INSTRUMENTS))


MODAL_DESCRIBERS = {"visual": describe_visual_slots, "audio": describe_audio_slots}


def describe_modal(instruments, intervals, gain_levels) -> str:
    """The visual then the audio fixed-slot description (`MODAL_DESCRIBERS`), as one caption. Each part states only
    what its own sensor can know, so a modality's received tokens can be aligned word by word to its part."""
    return " ".join(describe(instruments, intervals, gain_levels) for describe in MODAL_DESCRIBERS.values())


CAPTION_STYLES = {"free": describe_scene, "slots": describe_slots, "modal": describe_modal}


def caption_writer(style: str):
    """`CAPTION_STYLES[style]`; `ValueError` naming the recipe field `data.caption_style` otherwise.

    >>> caption_writer("slots") is describe_slots
    True
    """
    if style not in CAPTION_STYLES:
        raise ValueError(f"Recipe field `data.caption_style` must be one of {sorted(CAPTION_STYLES)}, got {style!r}.")
    return CAPTION_STYLES[style]


# ---------------------------------------------------------------------------------------------
# datasets.Dataset builders
# ---------------------------------------------------------------------------------------------


def _media_features(num_frames: int, frame_size: int) -> dict:
    return {
        "video": datasets.Array4D((num_frames, frame_size, frame_size, 3), "uint8"),
        # variable-length storage on purpose: datasets' torch formatter is ~70x slower on
        # fixed-length lists; every row still holds exactly `num_samples` samples
        "audio": datasets.List(datasets.Value("float32")),
        "sampling_rate": datasets.Value("int32"),
    }


def avqa_features(num_frames: int = 8, frame_size: int = 32) -> datasets.Features:
    """The AVQA row schema shared by the synthetic generator and the MUSIC-AVQA loader.

    >>> list(avqa_features())[:6]
    ['video_id', 'question_id', 'type', 'question_content', 'templ_values', 'anser']
    """
    text = {k: datasets.Value("string") for k in ("type", "question_content", "templ_values", "anser", "question")}
    return datasets.Features(
        {"video_id": datasets.Value("string"), "question_id": datasets.Value("int64"), **text}
        | _media_features(num_frames, frame_size)
    )


def caption_features(num_frames: int = 8, frame_size: int = 32) -> datasets.Features:
    """The caption row schema (video_id, video, audio, sampling_rate, desc) shared with VALOR loading.

    >>> list(caption_features())
    ['video_id', 'video', 'audio', 'sampling_rate', 'desc']
    """
    media = _media_features(num_frames, frame_size)
    return datasets.Features({"video_id": datasets.Value("string"), **media, "desc": datasets.Value("string")})


def _scenes_and_rows(num_scenes, seed, config, video_id_prefix="syn-", question_id_start=0, media=True):
    """Scenes (media rendered only if `media`) and their question rows, with video_id and question_id."""
    config = config or SyntheticAVQAConfig()
    scene_seq, question_seq = _children(seed, 2)
    if media:
        scenes = generate_scenes(num_scenes, scene_seq, config)
    else:  # the same layouts generate_scenes would draw, without rendering
        if num_scenes < 0:
            raise ValueError(f"`num_scenes` must be >= 0, got {num_scenes}.")
        layouts = _sample_layouts(num_scenes, np.random.default_rng(_children(scene_seq, 2)[0]), config)
        scenes = SyntheticScenes(*layouts[:3], None, None, config.sampling_rate)
    rows = generate_questions(scenes, question_seq, config)
    for row in rows:
        row["video_id"] = f"{video_id_prefix}{row['scene_index']:06d}"
        row["question_id"] += question_id_start
    return scenes, rows


def _build_avqa(num_scenes, seed, config, video_id_prefix, question_id_start=0, split=None) -> datasets.Dataset:
    config = config or SyntheticAVQAConfig()
    scenes, rows = _scenes_and_rows(num_scenes, seed, config, video_id_prefix, question_id_start)
    index = np.array([r["scene_index"] for r in rows], np.int64)
    columns = {k: [r[k] for r in rows] for k in (*_TEXT_COLUMNS, "video_id", "question_id")}
    columns |= _media_columns(_take_rows(scenes.video, index), scenes.audio[index], config.sampling_rate)
    recipe = ("avqa", _GENERATOR_VERSION, num_scenes, _seed_key(seed), dataclasses.astuple(config))
    recipe += (video_id_prefix, question_id_start)
    features = avqa_features(config.num_frames, config.frame_size)
    return _to_dataset(columns, features, recipe, split)


def generate_avqa(num_scenes: int, seed=0, config: SyntheticAVQAConfig | None = None, video_id_prefix: str = "syn-"):
    """A MUSIC-AVQA-style `datasets.Dataset`, one row per question (schema in the module docstring).

    >>> ds = generate_avqa(3, seed=0)
    >>> ds.column_names[:7]
    ['video_id', 'question_id', 'type', 'question_content', 'templ_values', 'anser', 'question']
    """
    return _build_avqa(num_scenes, seed, config, video_id_prefix)


def generate_avqa_splits(
    num_train: int, num_validation: int, num_test: int, seed=0, config: SyntheticAVQAConfig | None = None
) -> datasets.DatasetDict:
    """Train / validation / test AVQA splits (numbers are scenes). Each split has its own child seed
    and video_id prefix ("syn-train-", ...) and question_ids continue across splits, so splits
    never share a video_id or question_id.

    >>> splits = generate_avqa_splits(3, 1, 1, seed=0)
    >>> sorted(splits)
    ['test', 'train', 'validation']
    """
    out, start = {}, 0
    for name, count, child in zip(SPLIT_NAMES, (num_train, num_validation, num_test), _children(seed, 3)):
        out[name] = _build_avqa(count, child, config, f"syn-{name}-", start, datasets.NamedSplit(name))
        start += len(out[name])
    return datasets.DatasetDict(out)


def generate_split(
    split: str,
    num_train: int,
    num_validation: int,
    num_test: int,
    seed=0,
    config: SyntheticAVQAConfig | None = None,
    questions_only: bool = False,
) -> tuple[SyntheticScenes, list[dict]]:
    """Scenes and question rows of one split of `generate_avqa_splits(num_train, num_validation, num_test,
    seed, config)`, without building a Dataset: one copy of the media per scene instead of per question.

    Rows carry the Dataset's columns (same video_id and question_id) plus `scene_index`. With
    `questions_only=True` nothing is rendered (`scenes.video` and `scenes.audio` are None).

    >>> scenes, rows = generate_split("test", 3, 1, 2, seed=0, questions_only=True)
    >>> len(scenes), rows[0]["video_id"], scenes.video is None
    (2, 'syn-test-000000', True)
    """
    if split not in SPLIT_NAMES:
        raise ValueError(f"`split` must be one of {SPLIT_NAMES}, got {split!r}.")
    start = 0
    for name, count, child in zip(SPLIT_NAMES, (num_train, num_validation, num_test), _children(seed, 3)):
        if name == split:
            return _scenes_and_rows(count, child, config, f"syn-{name}-", start, media=not questions_only)
        start += len(_scenes_and_rows(count, child, config, media=False)[1])


def generate_valor_captions(
    num_scenes: int, seed=0, config: SyntheticAVQAConfig | None = None, video_id_prefix: str = "syn-"
) -> datasets.Dataset:
    """VALOR-style captions, one row per scene: the very scenes `generate_avqa(num_scenes, seed)` shows.

    >>> ds = generate_valor_captions(2, seed=0)
    >>> ds.column_names
    ['video_id', 'video', 'audio', 'sampling_rate', 'desc']
    """
    config = config or SyntheticAVQAConfig()
    scenes = generate_scenes(num_scenes, _children(seed, 2)[0], config)
    columns = {
        "video_id": [f"{video_id_prefix}{i:06d}" for i in range(num_scenes)],
        "desc": [describe_scene(*scenes.layout(i)) for i in range(num_scenes)],
        **_media_columns(scenes.video, scenes.audio, config.sampling_rate),
    }
    recipe = ("captions", _GENERATOR_VERSION, num_scenes, _seed_key(seed), dataclasses.astuple(config))
    recipe += (video_id_prefix,)
    return _to_dataset(columns, caption_features(config.num_frames, config.frame_size), recipe)
