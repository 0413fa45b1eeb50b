"""TokComProcessor: raw video frames, waveforms, questions and answers -> TokComForAVQA inputs."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from transformers import ASTFeatureExtractor, BatchFeature, PreTrainedTokenizerFast, ProcessorMixin

_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")
_INIT_KEYS = ("num_frames", "frame_size", "video_mean", "video_std")


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
        if num_frames < 1 or frame_size < 1 or video_std <= 0:
            raise ValueError(
                f"`num_frames` and `frame_size` must be >= 1 and `video_std` > 0, got {num_frames}, {frame_size}, {video_std}."
            )
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
        processor_dict, _ = cls.get_processor_dict(pretrained_model_name_or_path, **hub)
        extractor_dict = dict(processor_dict.get("feature_extractor") or {})
        extractor_dict.pop("feature_extractor_type", None)
        feature_extractor = ASTFeatureExtractor(**extractor_dict)
        tokenizer = PreTrainedTokenizerFast.from_pretrained(pretrained_model_name_or_path, **hub)
        return cls(feature_extractor, tokenizer, **{key: processor_dict[key] for key in _INIT_KEYS if key in processor_dict})

    # ------------------------------------------------------------------ modalities

    def process_videos(self, videos) -> torch.Tensor:
        """uint8 frames `(T, H, W, 3)` per video (list or `(batch, T, H, W, 3)` array) -> `(batch, T', 3, S, S)` floats."""
        if isinstance(videos, (np.ndarray, torch.Tensor)) and videos.ndim == 4:
            videos = [videos]
        out = []
        for index, video in enumerate(videos):
            frames = torch.as_tensor(np.asarray(video))
            if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
                raise ValueError(
                    f"`videos[{index}]` must be uint8 frames of shape (frames >= 1, height, width, 3), got {tuple(frames.shape)}."
                )
            picks = np.linspace(0, frames.shape[0] - 1, self.num_frames).round().astype(int)
            # one picked frame at a time to float and down to `frame_size` (a large frame is never held as floats
            # for all picks at once)
            resized = []
            for frame in frames[picks]:
                frame = frame.permute(2, 0, 1).unsqueeze(0).float() / 255.0  # (1, 3, H, W) in [0, 1]
                if frame.shape[-2:] != (self.frame_size, self.frame_size):
                    frame = F.interpolate(frame, size=(self.frame_size, self.frame_size), mode="bilinear", antialias=True)
                resized.append(frame)
            out.append((torch.cat(resized) - self.video_mean) / self.video_std)
        return torch.stack(out)

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
        features = self.feature_extractor(waves, sampling_rate=expected, return_tensors="pt")
        return features["input_values"]

    def process_answers(self, answers) -> torch.Tensor:
        """Answer strings -> `labels` `(batch, tokens + 1)`: ids then eos, right-padded with -100."""
        eos = self.tokenizer.eos_token_id
        ids = [self.tokenizer(answer, add_special_tokens=False)["input_ids"] + [eos] for answer in answers]
        width = max(len(row) for row in ids)
        return torch.tensor([row + [-100] * (width - len(row)) for row in ids], dtype=torch.long)

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


def default_feature_extractor(num_mel_bins: int = 64, max_length: int = 98, mean: float = -4.27, std: float = 4.57):
    """An `ASTFeatureExtractor` for 1 s of 16 kHz audio (98 filterbank frames); set `mean`/`std` from your data."""
    return ASTFeatureExtractor(
        num_mel_bins=num_mel_bins, max_length=max_length, sampling_rate=16000, mean=mean, std=std, do_normalize=True
    )


__all__ = ["TokComProcessor", "default_feature_extractor"]
