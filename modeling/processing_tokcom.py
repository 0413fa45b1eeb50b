"""TokComProcessor: raw video frames, waveforms, questions and answers -> TokComForAVQA inputs."""

from __future__ import annotations

import json
import os

import numpy as np
import torch
import torch.nn.functional as F
from transformers import ASTFeatureExtractor, BatchFeature, PreTrainedTokenizerFast, ProcessorMixin
from transformers.audio_utils import mel_filter_bank, window_function
from transformers.utils import is_speech_available

from .decoding import answer_labels

_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")
_INIT_KEYS = ("num_frames", "frame_size", "video_mean", "video_std")
# Kaldi-style filterbank framing of ASTFeatureExtractor's numpy path (25 ms windows every 10 ms at 16 kHz)
FRAME_LENGTH, HOP_LENGTH, FFT_LENGTH, PREEMPHASIS, MEL_FLOOR = 400, 160, 512, 0.97, 1.192092955078125e-07
FILTERBANK_CHUNK = 4  # clips per torch filterbank computation
# frames converted to floats together while they hold at most this many pixels (a batch's, else a video's, else one)
BATCHED_FRAME_PIXELS = 2**22


class TokComProcessor(ProcessorMixin):
    r"""Prepares the three device-side inputs of [`TokComForAVQA`].

    - video: uint8 frames `(frames, H, W, 3)` (or a batch of them) -> `pixel_values_videos` `(batch, T, 3, S, S)`,
      uniformly sampled to `num_frames`, resized to `frame_size`, scaled to `[0, 1]` then `(x - video_mean) / video_std`;
    - audio: mono float waveforms at `feature_extractor.sampling_rate` -> AST filterbanks `input_values`
      `(batch, max_length, num_mel_bins)`;
    - text: questions (or captions) -> `input_ids`, `attention_mask`; answers -> `labels` (answer ids + eos,
      right-padded with -100).

    Example:

    >>> import numpy as np
    >>> from transformers import ASTFeatureExtractor
    >>> from tokcom.training.tokenization import build_word_tokenizer
    >>> processor = TokComProcessor(
    ...     ASTFeatureExtractor(num_mel_bins=64, max_length=98), build_word_tokenizer(["is the drum playing", "yes"])
    ... )
    >>> batch = processor(text=["is the drum playing"], videos=[np.zeros((8, 32, 32, 3), np.uint8)],
    ...                   audio=[np.zeros(16000, np.float32)], sampling_rate=16000, answers=["yes"])
    >>> tuple(batch["pixel_values_videos"].shape), tuple(batch["input_values"].shape), batch["labels"].tolist()
    ((1, 8, 3, 32, 32), (1, 98, 64), [[8, 2]])
    """

    def __init__(
        self,
        feature_extractor=None,
        tokenizer=None,
        num_frames: int = 8,
        frame_size: int = 32,
        video_mean: float = 0.5,
        video_std: float = 0.5,
    ):
        super().__init__(feature_extractor, tokenizer)
        _check_frame_settings(num_frames, frame_size, video_mean, video_std)
        self.num_frames = num_frames
        self.frame_size = frame_size
        self.video_mean = video_mean
        self.video_std = video_std

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs) -> TokComProcessor:
        """Load from a folder or Hub repo holding `processor_config.json` (with the AST extractor's settings) and the
        tokenizer files. The tokenizer is read as a `PreTrainedTokenizerFast`, not through `AutoTokenizer`: next to a
        TokComConfig `config.json`, AutoTokenizer would resolve that config with AutoConfig and, where `tokcom` is not
        installed, ask for `trust_remote_code` just to read a tokenizer. Hub keywords (`revision`, `token`, ...)
        are passed on; others are ignored."""
        hub = {key: kwargs[key] for key in _HUB_KWARGS if key in kwargs}
        source = pretrained_model_name_or_path
        if os.path.isdir(source):  # a local folder: garbage files are named, not met deep inside a loader
            check_processor_files(source)
            settings = os.path.join(source, "processor_config.json")
            if os.path.isfile(settings) and not isinstance(read_json_object(settings).get("feature_extractor"), dict):
                raise ValueError(f"{settings} has no `feature_extractor` settings (an object); re-save the processor.")
        processor_dict, _ = cls.get_processor_dict(source, **hub)
        try:
            extractor_dict = dict(processor_dict.get("feature_extractor") or {})
            extractor_dict.pop("feature_extractor_type", None)
            feature_extractor = ASTFeatureExtractor(**extractor_dict)
            init = {key: processor_dict[key] for key in _INIT_KEYS if key in processor_dict}
            _check_frame_settings(**{"num_frames": 8, "frame_size": 32, "video_mean": 0.5, "video_std": 0.5, **init})
        except (TypeError, ValueError) as error:
            raise ValueError(f"processor_config.json of {source} holds invalid settings: {error}") from None
        try:
            tokenizer = PreTrainedTokenizerFast.from_pretrained(source, **hub)
        except OSError:
            raise
        except Exception as error:  # tokenizers' own errors (KeyError, TypeError, Exception from Rust) on bad content
            raise ValueError(
                f"The tokenizer files of {source} (tokenizer.json, tokenizer_config.json) could not be read as a "
                f"tokenizer ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})."
            ) from None
        return cls(feature_extractor, tokenizer, **init)

    # ------------------------------------------------------------------ modalities

    def process_videos(self, videos) -> torch.Tensor:
        """uint8 frames `(T, H, W, 3)` per video (list or `(batch, T, H, W, 3)` array) -> `(batch, T', 3, S, S)` floats."""
        if isinstance(videos, (np.ndarray, torch.Tensor)) and videos.ndim == 4:
            videos = [videos]
        picked = []
        for index, video in enumerate(videos):
            frames = torch.as_tensor(np.asarray(video))
            if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
                raise ValueError(
                    f"`videos[{index}]` must be uint8 frames of shape (frames >= 1, height, width, 3), got {tuple(frames.shape)}."
                )
            picked.append(frames[np.linspace(0, frames.shape[0] - 1, self.num_frames).round().astype(int)])
        shapes = {tuple(frames.shape) for frames in picked}
        if len(shapes) == 1 and len(picked) * self.num_frames * picked[0].shape[1] * picked[0].shape[2] <= BATCHED_FRAME_PIXELS:
            return self._frames_to_pixels(torch.stack(picked).flatten(0, 1)).unflatten(0, (len(picked), self.num_frames))
        # large frames or mixed sizes: one video at a time, large frames one at a time (a large frame is never held as
        # floats for all picks at once)
        out = []
        for frames in picked:
            step = len(frames) if len(frames) * frames.shape[1] * frames.shape[2] <= BATCHED_FRAME_PIXELS else 1
            out.append(torch.cat([self._frames_to_pixels(frames[i : i + step]) for i in range(0, len(frames), step)]))
        return torch.stack(out)

    def _frames_to_pixels(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 `(n, H, W, 3)` -> `(n, 3, S, S)`: to [0, 1], resized (bilinear, antialiased), then normalized."""
        frames = frames.permute(0, 3, 1, 2).float() / 255.0
        if frames.shape[-2:] != (self.frame_size, self.frame_size):
            frames = F.interpolate(frames, size=(self.frame_size, self.frame_size), mode="bilinear", antialias=True)
        return (frames - self.video_mean) / self.video_std

    def process_audio(self, audio, sampling_rate: int | None = None) -> torch.Tensor:
        """Mono waveforms (list of 1-D arrays) at the extractor's rate -> AST filterbanks `(batch, frames, mel)`."""
        expected = self.feature_extractor.sampling_rate
        if sampling_rate is not None and sampling_rate != expected:
            raise ValueError(f"`sampling_rate` must be {expected} Hz (resample first), got {sampling_rate}.")
        if isinstance(audio, np.ndarray) and audio.ndim == 1:
            audio = [audio]
        waves = [np.asarray(wave, dtype=np.float32) for wave in audio]
        for index, wave in enumerate(waves):
            if wave.ndim != 1 or wave.size == 0:
                raise ValueError(f"`audio[{index}]` must be a non-empty mono waveform (samples,), got shape {wave.shape}.")
        if not _torch_filterbank_applies(self.feature_extractor):
            return self.feature_extractor(waves, sampling_rate=expected, return_tensors="pt")["input_values"]
        # a few clips at a time: their frames stay in the CPU's cache (twice as fast as 32 at once here)
        chunks = [ast_filterbanks(waves[i : i + FILTERBANK_CHUNK], self.feature_extractor) for i in range(0, len(waves), FILTERBANK_CHUNK)]
        return torch.cat(chunks)

    def process_answers(self, answers) -> torch.Tensor:
        """Answer strings -> `labels` `(batch, tokens + 1)`: ids then eos, right-padded with -100."""
        return answer_labels(self.tokenizer, answers)

    def __call__(
        self,
        text=None,
        videos=None,
        audio=None,
        sampling_rate: int | None = None,
        answers=None,
        return_tensors: str = "pt",
        **kwargs,
    ) -> BatchFeature:
        """Any subset of `text`, `videos`, `audio`, `answers` (same batch size) -> a `BatchFeature` of tensors."""
        if kwargs:
            raise ValueError(f"Unknown keyword argument(s) for TokComProcessor: {sorted(kwargs)}.")
        if return_tensors != "pt":
            raise ValueError(f"`return_tensors` must be 'pt', got {return_tensors!r}.")
        data = {}
        if text is not None:
            text = [text] if isinstance(text, str) else list(text)
            encoded = self.tokenizer(text, padding=True, return_tensors="pt")
            data["input_ids"], data["attention_mask"] = encoded["input_ids"], encoded["attention_mask"]
        if videos is not None:
            data["pixel_values_videos"] = self.process_videos(videos)
        if audio is not None:
            data["input_values"] = self.process_audio(audio, sampling_rate)
        if answers is not None:
            data["labels"] = self.process_answers([answers] if isinstance(answers, str) else list(answers))
        if not data:
            raise ValueError("Give at least one of `text`, `videos`, `audio`, `answers`.")
        sizes = {name: value.shape[0] for name, value in data.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"All inputs must have the same batch size, got {sizes}.")
        return BatchFeature(data=data)

    def batch_decode(self, sequences, **kwargs) -> list[str]:
        """Answer ids (from `TokComForAVQA.answer`) -> strings, special tokens removed."""
        return [text.strip() for text in self.tokenizer.batch_decode(sequences, skip_special_tokens=True, **kwargs)]


def _check_frame_settings(num_frames, frame_size, video_mean, video_std) -> None:
    integers = all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in (num_frames, frame_size))
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in (video_mean, video_std))
    if not (integers and numbers and video_std > 0):
        raise ValueError(
            "`num_frames` and `frame_size` must be integers >= 1, `video_mean` a finite number and `video_std` one "
            f"> 0, got {num_frames!r}, {frame_size!r}, {video_mean!r}, {video_std!r}."
        )


PROCESSOR_FILES = ("processor_config.json", "tokenizer.json", "tokenizer_config.json")


def check_processor_files(folder) -> None:
    """`ValueError` naming the file when one of `PROCESSOR_FILES` in `folder` is not UTF-8 JSON holding an object
    (absent files are left to the loaders)."""
    for name in PROCESSOR_FILES:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            read_json_object(path)


def read_json_object(path) -> dict:
    """The JSON object in the file at `path`; `ValueError` naming the file when it is not UTF-8 JSON or not an
    object."""
    try:
        with open(path, "rb") as handle:
            data = json.loads(handle.read().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise ValueError(f"{path} is not a valid JSON file ({reason}); re-save or re-export the model folder.") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, got a {type(data).__name__}; re-export the model folder.")
    return data


def _torch_filterbank_applies(extractor) -> bool:
    """`ast_filterbanks` reproduces `extractor` when it is an `ASTFeatureExtractor` on its numpy path (the one our
    checkpoints were trained with: torchaudio absent); with torchaudio it would use Kaldi's own code instead."""
    return type(extractor) is ASTFeatureExtractor and not is_speech_available()


_FILTERBANK_CACHE: dict = {}


def _filterbank_constants(num_mel_bins: int, sampling_rate: int) -> tuple[torch.Tensor, torch.Tensor]:
    """ASTFeatureExtractor's Hann window zero-padded to the FFT length `(fft_length,)` (float64) and its Kaldi mel
    filters with each row repeated for a bin's real and imaginary part `(2 * fft_bins, mel)` (float32)."""
    key = (num_mel_bins, sampling_rate)
    if key not in _FILTERBANK_CACHE:
        mel = mel_filter_bank(
            num_frequency_bins=FFT_LENGTH // 2 + 1, num_mel_filters=num_mel_bins, min_frequency=20,
            max_frequency=sampling_rate // 2, sampling_rate=sampling_rate, norm=None, mel_scale="kaldi",
            triangularize_in_mel_space=True,
        )  # fmt: skip
        window = np.zeros(FFT_LENGTH)
        window[:FRAME_LENGTH] = window_function(FRAME_LENGTH, "hann", periodic=False)
        _FILTERBANK_CACHE[key] = (torch.from_numpy(window), torch.from_numpy(np.repeat(mel, 2, axis=0)).float())
    return _FILTERBANK_CACHE[key]


def ast_filterbanks(waves, extractor) -> torch.Tensor:
    """Mono float32 waveforms -> `extractor`'s normalized log-mel filterbanks `(batch, max_length, num_mel_bins)`,
    computed for the whole batch at once in torch.

    The numbers of `ASTFeatureExtractor.__call__` on its numpy path (`transformers.audio_utils.spectrogram`, one
    frame at a time: about 7 ms per 1 s clip) to about 1e-6: per 25 ms frame x (400 samples every 160), in float64
    up to the rFFT and float32 after it, 1. remove the frame's DC offset m, 2. pre-emphasis 0.97, 3. Hann window w, 4. 512-point rFFT, 5. power,
    6. Kaldi mel filters, floor and log; 7. zero rows up to `max_length` frames (or cut to it), 8. `(x - mean) /
    (2 std)`. Steps 1-3 are y[n] = w[n] (e[n] - 0.03 m) with e[n] = x[n] - 0.97 x[n-1] (y[0] = w[0] 0.03 (x[0] - m),
    zero for the Hann window), so the pre-emphasis runs once per waveform, not once per overlapping frame.
    """
    max_length = int(extractor.max_length)
    window, mel = _filterbank_constants(int(extractor.num_mel_bins), int(extractor.sampling_rate))
    usable = FRAME_LENGTH + HOP_LENGTH * (max_length - 1)  # samples that reach the first max_length frames
    counts = [max(0, min(max_length, 1 + (len(wave) - FRAME_LENGTH) // HOP_LENGTH)) for wave in waves]
    length = max(FRAME_LENGTH, min(usable, max(len(wave) for wave in waves)))
    num_frames = 1 + (length - FRAME_LENGTH) // HOP_LENGTH
    # zeros after the samples: each frame is read FFT_LENGTH long, its last 112 samples multiplied by the zero padding
    x = torch.zeros(len(waves), length + FFT_LENGTH - FRAME_LENGTH, dtype=torch.float64)
    for row, wave in enumerate(waves):
        piece = torch.from_numpy(np.ascontiguousarray(wave[:length], dtype=np.float32))
        x[row, : piece.shape[0]] = piece
    cumulative = F.pad(x.cumsum(dim=1), (1, 0))
    starts = torch.arange(num_frames) * HOP_LENGTH
    dc = (cumulative[:, starts + FRAME_LENGTH] - cumulative[:, starts]) / FRAME_LENGTH  # 1. m (batch, frames)
    emphasized = torch.cat([x[:, :1], x[:, 1:] - PREEMPHASIS * x[:, :-1]], dim=1)  # 2. e
    frames = emphasized.unfold(1, FFT_LENGTH, HOP_LENGTH)[:, :num_frames]  # (batch, frames, 512), a view
    windowed = (frames - (1 - PREEMPHASIS) * dc[..., None]) * window  # 3. (zero past sample 400)
    if window[0] != 0:
        windowed[..., 0] = window[0] * (1 - PREEMPHASIS) * (x[:, starts] - dc)
    spectrum = torch.view_as_real(torch.fft.rfft(windowed)).float()  # 4. (batch, frames, fft bins, re/im)
    spectrum = spectrum.reshape(*spectrum.shape[:2], -1)  # (as numpy's path, the spectrum is kept as complex64)
    power = spectrum * spectrum  # 5. re^2 and im^2, summed by the mel product
    fbank = (power @ mel).clamp_min(MEL_FLOOR).log()  # 6. (batch, frames, mel), float32
    out = fbank.new_zeros(len(waves), max_length, fbank.shape[-1])  # 7.
    for row, count in enumerate(counts):
        out[row, :count] = fbank[row, :count]
    if extractor.do_normalize:  # 8.
        out = (out - extractor.mean) / (extractor.std * 2)
    return out


def default_feature_extractor(num_mel_bins: int = 64, max_length: int = 98, mean: float = -4.27, std: float = 4.57):
    """An `ASTFeatureExtractor` for 1 s of 16 kHz audio (98 filterbank frames); set `mean`/`std` from your data."""
    return ASTFeatureExtractor(
        num_mel_bins=num_mel_bins, max_length=max_length, sampling_rate=16000, mean=mean, std=std, do_normalize=True
    )


__all__ = ["PROCESSOR_FILES", "TokComProcessor", "ast_filterbanks", "check_processor_files", "default_feature_extractor", "read_json_object"]
