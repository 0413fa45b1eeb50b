"""UniToComProcessor: images, questions, captions and speech -> [`UniToComModel`]'s packed inputs, and its outputs back
to answers, transcripts and PIL images.

The layouts are the ones `training/stages_unitocom.py` trains on (one placeholder id per continuous token; the model
puts the received tokens there, `UniToComModel.embed_inputs`), left-padded for generation:

| task            | `input_ids`                                   | media                                            |
|-----------------|-----------------------------------------------|--------------------------------------------------|
| `vqa`           | `[image_token_id] * S_v + question`           | `pixel_values` `(batch, 3, image_size, image_size)` in [0, 1] |
| `text_to_image` | `caption` (the S_v image tokens are generated after it) | none                                   |
| `asr`           | `[audio_token_id] * (num_audio_windows * S_a)` | `input_features` log-mel [dB] `(batch, num_audio_windows, num_frames, num_mel_bins)` |

Every input is bounded before the expensive work: pixels (`media_io.MAX_FRAME_PIXELS`) before decoding or resizing,
characters (`max_text_chars`) before tokenizing, samples (`max_audio_samples`: what `num_audio_windows` windows
hold) before the mel front end.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
from transformers import BatchFeature, PreTrainedTokenizerFast, ProcessorMixin

from .configuration_unitocom import UniToComTokenizerConfig
from .media_io import check_audio_shape, load_audio, load_image, read_wav
from .tokenization_unitocom import MEL_FLOOR_DB, log_mel_spectrogram, mel_filters

TASKS = ("vqa", "text_to_image", "asr")
AUDIO_FRONT_END_KEYS = ("sampling_rate", "n_fft", "win_length", "hop_length", "num_mel_bins", "f_min", "f_max",
                        "num_frames")  # fmt: skip
AUDIO_DICT_KEYS = ("array", "sampling_rate", "path")  # the `datasets.Audio` form
_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")
_INIT_KEYS = ("image_size", "num_image_tokens", "image_token_id", "num_audio_tokens", "audio_token_id",
              "num_audio_windows", "max_text_chars", *AUDIO_FRONT_END_KEYS)  # fmt: skip
DEFAULT_AUDIO_WINDOWS = 4  # the training recipe's `data.asr_windows` (stages_unitocom.DATA_DEFAULTS)
DEFAULT_MAX_TEXT_CHARS = 1000


def _as_list(value, single_ndim: int, name: str) -> list:
    """One input (a path, PIL image, dict, or an array of `single_ndim` dimensions) or a non-empty list of them -> a
    list; `ValueError` naming `name` for an empty list."""
    if isinstance(value, np.ndarray) and value.ndim == single_ndim or not isinstance(value, (list, tuple)):
        return [value]
    if len(value) == 0:
        raise ValueError(f"`{name}` is an empty list: give one input or a non-empty list of them.")
    return list(value)


def _texts(texts, name: str) -> list:
    """A string or a non-empty list/tuple of them -> a list (each checked by `check_text`)."""
    if isinstance(texts, str):
        return [texts]
    if not isinstance(texts, (list, tuple)) or len(texts) == 0:
        raise ValueError(f"`{name}` must be a string or a non-empty list of strings, got {type(texts).__name__} "
                         f"{texts!r:.80}.")  # fmt: skip
    return list(texts)


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}.")
    return value


class UniToComProcessor(ProcessorMixin):
    r"""Prepares [`UniToComModel`]'s inputs for VQA, text-to-image and ASR, and decodes its outputs.

    Args:
        tokenizer (`PreTrainedTokenizerFast`): the MLLM's text tokenizer (its ids must stay below the placeholders).
        image_size (`int`): side of the image tokenizer's input; images are resized to it (area averaging when
            shrinking, as the training images were block-averaged; bilinear when growing).
        num_image_tokens, num_audio_tokens (`int`): S_v and S_m of the audio tokenizer (per window).
        image_token_id, audio_token_id (`int`): the model's placeholder ids (`config.image_token_id`, ...).
        num_audio_windows (`int`, defaults to 4): audio windows of `num_frames` mel frames an utterance is cut into
            (padded with the `MEL_FLOOR_DB` floor), as in training; bounds the audio to `max_audio_samples`.
        sampling_rate [Hz], n_fft, win_length, hop_length [samples], num_mel_bins, f_min, f_max [Hz], num_frames:
            the audio tokenizer's log-mel front end (`UniToComTokenizerConfig`).
        max_text_chars (`int`, defaults to 1000): longest question or caption accepted, in characters.

    Build it from a model's config with [`UniToComProcessor.from_model_config`].

    Example:

    >>> import numpy as np
    >>> from tokcom.modeling import UniToComConfig
    >>> from tokcom.training.tokenization import build_word_tokenizer
    >>> config = UniToComConfig.tiny(image_tokenizer_config={"num_tokens": 4}, audio_tokenizer_config={"num_tokens": 2})
    >>> processor = UniToComProcessor.from_model_config(config, build_word_tokenizer(["is there a red cube"]),
    ...                                                 num_audio_windows=2)
    >>> batch = processor(task="vqa", images=[np.zeros((64, 64, 3), np.uint8)] * 2,
    ...                   text=["is there a cube?", "a red cube?"])
    >>> batch["input_ids"].tolist()       # image placeholders (510), the question's ids ("?" is <unk>: 1), left pad
    [[510, 510, 510, 510, 3, 4, 5, 7, 1], [0, 510, 510, 510, 510, 5, 6, 7, 1]]
    >>> tuple(batch["pixel_values"].shape), batch["text_tokens"].tolist()
    ((2, 3, 32, 32), [5, 4])
    >>> speech = processor(task="asr", audio=[np.zeros(8000, np.float32)], sampling_rate=16000)
    >>> tuple(speech["input_features"].shape), speech["input_ids"].shape[1]   # 2 windows of 96 frames, 2 x 2 tokens
    ((1, 2, 96, 40), 4)
    """

    def __init__(self, tokenizer=None, image_size: int = 32, num_image_tokens: int = 32, image_token_id: int = 510,
                 num_audio_tokens: int = 32, audio_token_id: int = 511, num_audio_windows: int = DEFAULT_AUDIO_WINDOWS,
                 sampling_rate: int = 16000, n_fft: int = 512, win_length: int = 400, hop_length: int = 160,
                 num_mel_bins: int = 40, f_min: float = 20.0, f_max: float = 8000.0, num_frames: int = 96,
                 max_text_chars: int = DEFAULT_MAX_TEXT_CHARS):  # fmt: skip
        super().__init__(tokenizer)
        for name, value in (("image_size", image_size), ("num_image_tokens", num_image_tokens),
                            ("num_audio_tokens", num_audio_tokens), ("num_audio_windows", num_audio_windows),
                            ("max_text_chars", max_text_chars)):  # fmt: skip
            _positive_int(name, value)
        # the log-mel front end, checked by the tokenizer config's own validation
        self.audio_front_end = UniToComTokenizerConfig(
            modality="audio", sampling_rate=sampling_rate, n_fft=n_fft, win_length=win_length, hop_length=hop_length,
            num_mel_bins=num_mel_bins, f_min=f_min, f_max=f_max, num_frames=num_frames, frames_per_patch=1,
        )  # fmt: skip
        for name, value in (("image_token_id", image_token_id), ("audio_token_id", audio_token_id)):
            if isinstance(value, bool) or not isinstance(value, int) or value < len(self.tokenizer):
                raise ValueError(f"`{name}` must be an integer >= {len(self.tokenizer)} (outside the tokenizer's "
                                 f"{len(self.tokenizer)} ids), got {value!r}.")  # fmt: skip
        if image_token_id == audio_token_id:
            raise ValueError(f"`image_token_id` and `audio_token_id` must differ, both are {image_token_id}.")
        self.tokenizer.padding_side = "left"
        self.image_size, self.num_image_tokens, self.image_token_id = image_size, num_image_tokens, image_token_id
        self.num_audio_tokens, self.audio_token_id, self.num_audio_windows = num_audio_tokens, audio_token_id, num_audio_windows
        self.sampling_rate, self.n_fft, self.win_length, self.hop_length = sampling_rate, n_fft, win_length, hop_length
        self.num_mel_bins, self.f_min, self.f_max, self.num_frames = num_mel_bins, f_min, f_max, num_frames
        self.max_text_chars = max_text_chars
        self._mel_filters = None

    @classmethod
    def from_model_config(cls, config, tokenizer, num_audio_windows: int = DEFAULT_AUDIO_WINDOWS,
                          max_text_chars: int = DEFAULT_MAX_TEXT_CHARS) -> UniToComProcessor:  # fmt: skip
        """The processor that fits a [`UniToComConfig`]: its image size, token counts, placeholder ids and the audio
        tokenizer's front end."""
        image, audio = config.image_tokenizer_config, config.audio_tokenizer_config
        return cls(tokenizer, image_size=image.image_size, num_image_tokens=image.num_tokens,
                   image_token_id=config.image_token_id, num_audio_tokens=audio.num_tokens,
                   audio_token_id=config.audio_token_id, num_audio_windows=num_audio_windows,
                   max_text_chars=max_text_chars, **{key: getattr(audio, key) for key in AUDIO_FRONT_END_KEYS})  # fmt: skip

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, model_config=None, **kwargs) -> UniToComProcessor:
        """Load `processor_config.json` (JSON only) and the tokenizer files (read as `PreTrainedTokenizerFast`).
        A folder without `processor_config.json` (a training checkpoint: the model and its word tokenizer) takes its
        settings from `model_config` (`from_model_config`) when given. Hub keywords are passed on; others are
        ignored."""
        hub = {key: kwargs[key] for key in _HUB_KWARGS if key in kwargs}
        processor_dict, _ = cls.get_processor_dict(pretrained_model_name_or_path, **hub)
        tokenizer = PreTrainedTokenizerFast.from_pretrained(pretrained_model_name_or_path, **hub)
        if not processor_dict and model_config is not None:
            return cls.from_model_config(model_config, tokenizer)
        return cls(tokenizer, **{key: processor_dict[key] for key in _INIT_KEYS if key in processor_dict})

    def to_dict(self) -> dict:
        """The JSON settings (`processor_config.json`): the init arguments, not the derived front-end config."""
        return {"processor_class": type(self).__name__, **{key: getattr(self, key) for key in _INIT_KEYS}}

    def check_model_config(self, config) -> None:
        """`ValueError` naming the first setting in which this processor and a [`UniToComConfig`] disagree."""
        image, audio = config.image_tokenizer_config, config.audio_tokenizer_config
        expected = {"image_size": image.image_size, "num_image_tokens": image.num_tokens,
                    "image_token_id": config.image_token_id, "num_audio_tokens": audio.num_tokens,
                    "audio_token_id": config.audio_token_id,
                    **{key: getattr(audio, key) for key in AUDIO_FRONT_END_KEYS}}  # fmt: skip
        for key, value in expected.items():
            if getattr(self, key) != value:
                raise ValueError(f"The processor's `{key}` is {getattr(self, key)!r} but the model's is {value!r}: "
                                 "its processor_config.json does not belong to this model.")  # fmt: skip
        if len(self.tokenizer) > config.text_config.vocab_size:
            raise ValueError(f"The tokenizer has {len(self.tokenizer)} tokens but the model's vocabulary only "
                             f"{config.text_config.vocab_size}: they do not belong together.")  # fmt: skip

    # ------------------------------------------------------------------ one input, checked and bounded

    @property
    def min_audio_samples(self) -> int:
        """Shortest waveform accepted [samples]: the centred STFT reflects `n_fft // 2` samples at each end."""
        return self.n_fft // 2 + 1

    @property
    def max_audio_samples(self) -> int:
        """Longest waveform accepted [samples]: its `1 + samples // hop_length` mel frames fit the windows."""
        return (self.num_audio_windows * self.num_frames - 1) * self.hop_length

    def check_text(self, text, name: str = "text") -> str:
        """A non-empty string of at most `max_text_chars` characters; `ValueError` naming `name` otherwise."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"`{name}` must be a non-empty string, got {text!r}.")
        if len(text) > self.max_text_chars:
            raise ValueError(f"`{name}` has {len(text):,} characters; at most {self.max_text_chars} are accepted.")
        return text

    def read_image(self, image, name: str = "image") -> np.ndarray:
        """A path, PIL image or uint8 `(height, width, 3)` array -> uint8 RGB `(height, width, 3)`; the pixel count is
        checked before decoding (`media_io.load_image`)."""
        return load_image(image, name=name)

    def read_audio(self, audio, sampling_rate=None, name: str = "audio") -> np.ndarray:
        """Speech -> float32 mono `(samples,)` at `sampling_rate` [Hz] of the front end, `min_audio_samples` to
        `max_audio_samples`.

        `audio`: an array `(samples,)` or `(samples, channels)` (float, or integer PCM) with its `sampling_rate`, which
        must be the front end's (resample it first); a `{"array", "sampling_rate"}` dict; or a `.wav` path /
        `{"path"}` dict (resampled for you). The length is checked first: an array's before any conversion, a file's
        from its header (only the accepted part is read, memory-mapped).
        """
        shortest, limit, rate = self.min_audio_samples, self.max_audio_samples, self.sampling_rate
        if isinstance(audio, dict):
            unknown = sorted(set(audio) - set(AUDIO_DICT_KEYS))
            if unknown:
                raise ValueError(f"Unknown key(s) {unknown} in `{name}`; allowed: {list(AUDIO_DICT_KEYS)}.")
            given = audio.get("sampling_rate", sampling_rate)
            if sampling_rate is not None and given != sampling_rate:
                raise ValueError(f"`sampling_rate` ({sampling_rate}) and `{name}['sampling_rate']` ({given}) disagree.")
            audio, sampling_rate = (audio["array"], given) if audio.get("array") is not None else (audio.get("path"), given)
        if audio is None:
            raise ValueError(f"`{name}` as a dict needs 'array' and 'sampling_rate', or 'path' to a .wav file.")
        if isinstance(audio, (str, os.PathLike)):
            if sampling_rate is not None:
                raise ValueError(f"`sampling_rate` is read from the .wav file; do not give it with a `{name}` path.")
            read = read_wav(audio, sampling_rate=rate, max_duration_s=limit / rate, name=name)
            samples = round(read.duration_s * rate)
        else:
            if sampling_rate is None:
                raise ValueError(f"`sampling_rate` is missing: give the rate of the `{name}` array ({rate} Hz).")
            if isinstance(sampling_rate, bool) or sampling_rate != rate:
                raise ValueError(f"`sampling_rate` must be {rate} Hz (the audio tokenizer's), got {sampling_rate!r}; "
                                 f"resample the `{name}` array first (a .wav path is resampled for you).")  # fmt: skip
            shape = np.shape(audio)
            if len(shape) not in (1, 2):
                raise ValueError(f"`{name}` must be a waveform of shape (samples,) or (samples, channels), got shape "
                                 f"{shape}.")  # fmt: skip
            check_audio_shape(shape, name)
            samples = shape[0]
        if not shortest <= samples <= limit:
            raise ValueError(f"`{name}` has {samples:,} samples at {rate} Hz ({samples / rate:.4f} s); {shortest:,} to "
                             f"{limit:,} ({shortest / rate:.4f} to {limit / rate:.2f} s, {self.num_audio_windows} "
                             "windows) are accepted.")  # fmt: skip
        return read.waveform if isinstance(audio, (str, os.PathLike)) else load_audio(audio, rate, name=name).waveform

    # ------------------------------------------------------------------ batches

    def image_tensors(self, images) -> torch.Tensor:
        """Images (see `read_image`) -> `pixel_values` `(batch, 3, image_size, image_size)` in [0, 1]."""
        side, out = self.image_size, []
        for index, image in enumerate(_as_list(images, 3, "images")):
            array = self.read_image(image, name=f"images[{index}]")
            x = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None].float() / 255.0
            if x.shape[-2:] != (side, side):
                shrink = x.shape[-2] >= side and x.shape[-1] >= side
                x = F.interpolate(x, size=(side, side), mode="area") if shrink else F.interpolate(
                    x, size=(side, side), mode="bilinear", antialias=True, align_corners=False).clamp(0.0, 1.0)  # fmt: skip
            out.append(x)
        return torch.cat(out)

    def audio_features(self, audio, sampling_rate=None) -> torch.Tensor:
        """Waveforms (see `read_audio`) -> `input_features` log-mel [dB] `(batch, num_audio_windows, num_frames,
        num_mel_bins)`: the utterance's frames, padded with the `MEL_FLOOR_DB` floor, cut into windows."""
        if self._mel_filters is None:
            self._mel_filters = mel_filters(self.audio_front_end)
        frames, out = self.num_audio_windows * self.num_frames, []
        for index, item in enumerate(_as_list(audio, 1, "audio")):
            wave = self.read_audio(item, sampling_rate, name=f"audio[{index}]")
            mel = log_mel_spectrogram(wave, self.audio_front_end, self._mel_filters)[0]  # (frames, mel)
            mel = F.pad(mel, (0, 0, 0, frames - mel.shape[0]), value=MEL_FLOOR_DB)
            out.append(mel.reshape(self.num_audio_windows, self.num_frames, self.num_mel_bins))
        return torch.stack(out)

    def encode_texts(self, texts, name: str = "text") -> list[list[int]]:
        """Checked strings -> their ids (no special tokens); `ValueError` naming `name` for a text with no ids."""
        texts, rows = _texts(texts, name), []
        for index, text in enumerate(texts):
            self.check_text(text, f"{name}[{index}]" if len(texts) > 1 else name)
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            if not ids:
                raise ValueError(f"`{name}` gives no tokens, got {text!r}.")
            rows.append(ids)
        return rows

    def pack(self, rows: list[list[int]]) -> dict:
        """Id rows -> left-padded `input_ids` and `attention_mask` `(batch, longest row)`."""
        width, pad = max(len(row) for row in rows), self.tokenizer.pad_token_id
        return {"input_ids": torch.tensor([[pad] * (width - len(row)) + row for row in rows]),
                "attention_mask": torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows])}  # fmt: skip

    def __call__(self, task: str = "vqa", images=None, text=None, audio=None, sampling_rate=None,
                 return_tensors: str = "pt", **kwargs) -> BatchFeature:  # fmt: skip
        """One task's batch (see the module docstring): `vqa` needs `images` and `text` (questions),
        `text_to_image` `text` (captions), `asr` `audio` (with `sampling_rate` for arrays). Also returns
        `text_tokens` `(batch,)`: the ids of each question or caption (0 for ASR)."""
        if kwargs:
            raise ValueError(f"Unknown keyword argument(s) for UniToComProcessor: {sorted(kwargs)}.")
        if return_tensors != "pt":
            raise ValueError(f"`return_tensors` must be 'pt', got {return_tensors!r}.")
        if task not in TASKS:
            raise ValueError(f"`task` must be one of {TASKS}, got {task!r}.")
        needed = {"vqa": ("images", "text"), "text_to_image": ("text",), "asr": ("audio",)}[task]
        for name, value in (("images", images), ("text", text), ("audio", audio)):
            if (value is None) == (name in needed):
                raise ValueError(f"Task {task!r} takes {list(needed)}; `{name}` is {'missing' if value is None else 'not used'}.")
        if task == "vqa":  # one question per image, checked before any image is read
            images, text = _as_list(images, 3, "images"), _texts(text, "text")
            if len(images) != len(text):
                raise ValueError(f"`images` ({len(images)}) and `text` ({len(text)}) must have the same length: one "
                                 "question per image.")  # fmt: skip
        data = {}
        if task == "asr":
            data["input_features"] = self.audio_features(audio, sampling_rate)
            rows = [[self.audio_token_id] * (self.num_audio_windows * self.num_audio_tokens)] * len(data["input_features"])
            counts = [0] * len(rows)
        else:
            rows = self.encode_texts(text, "question" if task == "vqa" else "caption")
            counts = [len(row) for row in rows]
            if task == "vqa":
                data["pixel_values"] = self.image_tensors(images)
                rows = [[self.image_token_id] * self.num_image_tokens + row for row in rows]
        data.update(self.pack(rows), text_tokens=torch.tensor(counts))
        return BatchFeature(data=data)

    # ------------------------------------------------------------------ outputs

    def batch_decode(self, sequences, **kwargs) -> list[str]:
        """Generated ids (answers, transcripts) -> strings, special tokens removed."""
        return [text.strip() for text in self.tokenizer.batch_decode(sequences, skip_special_tokens=True, **kwargs)]

    def postprocess_images(self, images: torch.Tensor) -> list:
        """Generated images `(batch, 3, size, size)` in [0, 1] -> PIL RGB images."""
        from PIL import Image

        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"`images` must be a tensor of shape (batch, 3, size, size), got {shape}.")
        pixels = (images.detach().float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1)
        return [Image.fromarray(array) for array in pixels.cpu().numpy()]


__all__ = ["AUDIO_FRONT_END_KEYS", "TASKS", "UniToComProcessor"]
