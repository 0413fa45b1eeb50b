"""Configurations of UniToCom (`unitocom-genib.txt`): the per-modality sigma-GenIB / VAE tokenizers (Sec. III) with
their adaptive channel coding-modulation (eqs. 1-2). The MLLM's `UniToComConfig` (Sec. IV) will live here too.
"""

from __future__ import annotations

import math
from typing import Literal

from transformers import PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .channel import ChannelConfig

TOKENIZER_MODALITIES = ("image", "audio")
BOTTLENECKS = ("sigma_genib", "vae")
RECONSTRUCTION_LOSSES = ("mse", "l1")
LINK_CONSTELLATIONS = ("analog", "qam4", "qam16", "qam64")  # `channel_coding.CONSTELLATIONS`


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}.")


def _choice(name: str, value, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"`{name}` must be one of {allowed}, got {value!r}.")


def _finite(name: str, value, low: float, high: float = math.inf) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and low <= value <= high
    if not ok:
        raise ValueError(f"`{name}` must be a finite number in [{low:g}, {high:g}], got {value!r}.")


class UniToComTokenizerConfig(PreTrainedConfig):
    r"""Configuration of [`UniToComTokenizerModel`]: tokenizer F_alpha, de-tokenizer F_beta and the adaptive
    channel coding-modulation T/R of one modality.

    Args:
        modality (`str`, defaults to `"image"`): `"image"` (RGB `(batch, 3, image_size, image_size)` in [0, 1]) or
            `"audio"` (log-mel `(batch, num_frames, num_mel_bins)` [dB] of `sampling_rate` speech).
        bottleneck (`str`, defaults to `"sigma_genib"`): `"sigma_genib"` (fixed-variance tokens, eqs. 13-14) or
            `"vae"` (the "UniToCom+VAE" baseline: learned variance, standard KL).
        num_tokens (`int`, defaults to 32): S_m, continuous tokens per input (the paper sweeps 16/32/64/128).
        token_dim (`int`, defaults to 8): dimension of each token.
        hidden_size, intermediate_size, num_attention_heads (`int`): the Transformer widths (both sides).
        num_encoder_layers, num_decoder_layers (`int`): depth of F_alpha and F_beta (paper: 6 each).
        image_size, num_channels, patch_size (`int`): image input; `image_size` divisible by `patch_size`.
        sampling_rate [Hz], n_fft, win_length, hop_length [samples], num_mel_bins, f_min, f_max [Hz] (`int`/`float`):
            the log-mel front end of the audio tokenizer (and of its Griffin-Lim inversion).
        num_frames (`int`, defaults to 96): mel frames per input (96 x 10 ms = 0.96 s), divisible by
            `frames_per_patch`.
        frames_per_patch (`int`, defaults to 4): mel frames per audio patch.
        mel_mean_db, mel_std_db (`float`): normalization of the log-mel input [dB].
        c_sigma (`float`, defaults to 0.5): C_sigma, the standard deviation of the zero-mean Gaussian each sample's
            noise scale sigma is drawn from (sigma-GenIB; not learned).
        num_samples (`int`, defaults to 2): K of eq. (14).
        stochastic_weight (`float`, defaults to 0.5): lambda of eq. (13), in [0, 1].
        rate_weight (`float`, defaults to 1e-3): xi of eq. (13) (both bottlenecks).
        reconstruction_loss (`str`, defaults to `"mse"`): `"mse"` or `"l1"` on normalized pixels / mels (the paper's
            note below eq. (14): the conditional entropy is solved with MSE or cross-entropy).
        channel_config (`dict` or `ChannelConfig`): the wireless link (eq. 2).
        link_symbols_per_token_choices (`list[int]`, defaults to `[2, 4, 8]`): selectable channel uses per token.
        link_hidden_size, link_num_layers (`int`): width and depth of the coding-modulation trunks.
        link_constellation (`str`, defaults to `"analog"`): default constellation of T (`"qam16"` etc.: digital).
        initializer_range (`float`, defaults to 0.02).

    Example:

    >>> config = UniToComTokenizerConfig.tiny(num_tokens=16)
    >>> config.num_tokens, config.num_patches, config.patch_dim
    (16, 64, 48)
    >>> UniToComTokenizerConfig.tiny(modality="audio").num_patches
    24
    """

    model_type = "unitocom_tokenizer"

    sub_configs_defaults = {"channel_config": SubConfigSpec(config_class=ChannelConfig)}

    modality: Literal["image", "audio"] = "image"
    bottleneck: Literal["sigma_genib", "vae"] = "sigma_genib"
    num_tokens: int = 32
    token_dim: int = 8
    hidden_size: int = 64
    intermediate_size: int = 128
    num_attention_heads: int = 4
    num_encoder_layers: int = 2
    num_decoder_layers: int = 2
    image_size: int = 32
    num_channels: int = 3
    patch_size: int = 4
    sampling_rate: int = 16000
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    num_mel_bins: int = 40
    f_min: float = 20.0
    f_max: float = 8000.0
    num_frames: int = 96
    frames_per_patch: int = 4
    mel_mean_db: float = -35.0
    mel_std_db: float = 20.0
    c_sigma: float = 0.5
    num_samples: int = 2
    stochastic_weight: float = 0.5
    rate_weight: float = 1e-3
    reconstruction_loss: Literal["mse", "l1"] = "mse"
    channel_config: dict | PreTrainedConfig | None = None
    link_symbols_per_token_choices: list[int] | None = None
    link_hidden_size: int = 64
    link_num_layers: int = 2
    link_constellation: Literal["analog", "qam4", "qam16", "qam64"] = "analog"
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        _choice("modality", self.modality, TOKENIZER_MODALITIES)
        _choice("bottleneck", self.bottleneck, BOTTLENECKS)
        _choice("reconstruction_loss", self.reconstruction_loss, RECONSTRUCTION_LOSSES)
        _choice("link_constellation", self.link_constellation, LINK_CONSTELLATIONS)
        for name in ("num_tokens", "token_dim", "hidden_size", "intermediate_size", "num_attention_heads",
                     "num_encoder_layers", "num_decoder_layers", "image_size", "num_channels", "patch_size",
                     "sampling_rate", "n_fft", "win_length", "hop_length", "num_mel_bins", "num_frames",
                     "frames_per_patch", "num_samples", "link_hidden_size", "link_num_layers"):  # fmt: skip
            _positive_int(name, getattr(self, name))
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"`hidden_size` ({self.hidden_size}) must be divisible by `num_attention_heads` ({self.num_attention_heads})."
            )
        if self.image_size % self.patch_size:
            raise ValueError(f"`image_size` ({self.image_size}) must be divisible by `patch_size` ({self.patch_size}).")
        if self.num_frames % self.frames_per_patch:
            raise ValueError(
                f"`num_frames` ({self.num_frames}) must be divisible by `frames_per_patch` ({self.frames_per_patch})."
            )
        if self.win_length > self.n_fft:
            raise ValueError(f"`win_length` ({self.win_length}) must be <= `n_fft` ({self.n_fft}).")
        _finite("f_min", self.f_min, 0.0)
        _finite("f_max", self.f_max, self.f_min + 1e-6, self.sampling_rate / 2)
        _finite("mel_mean_db", self.mel_mean_db, -math.inf)
        _finite("mel_std_db", self.mel_std_db, 1e-6)
        _finite("c_sigma", self.c_sigma, 0.0)
        _finite("stochastic_weight", self.stochastic_weight, 0.0, 1.0)
        _finite("rate_weight", self.rate_weight, 0.0)
        _finite("initializer_range", self.initializer_range, 0.0)
        if self.link_symbols_per_token_choices is None:
            self.link_symbols_per_token_choices = [2, 4, 8]
        choices = self.link_symbols_per_token_choices
        if not isinstance(choices, (list, tuple)) or not choices:
            raise ValueError(f"`link_symbols_per_token_choices` must be a non-empty list of ints, got {choices!r}.")
        for k in choices:
            _positive_int("link_symbols_per_token_choices", k)
        self.link_symbols_per_token_choices = [int(k) for k in choices]

    @property
    def num_patches(self) -> int:
        """Input patches the Transformers see: `(image_size / patch_size)^2` or `num_frames / frames_per_patch`."""
        if self.modality == "image":
            return (self.image_size // self.patch_size) ** 2
        return self.num_frames // self.frames_per_patch

    @property
    def patch_dim(self) -> int:
        """Reals per patch: `num_channels * patch_size^2` or `frames_per_patch * num_mel_bins`."""
        if self.modality == "image":
            return self.num_channels * self.patch_size**2
        return self.frames_per_patch * self.num_mel_bins

    @property
    def num_waveform_samples(self) -> int:
        """Samples of audio that `num_frames` centred STFT frames cover: `(num_frames - 1) * hop_length`."""
        return (self.num_frames - 1) * self.hop_length

    @classmethod
    def tiny(cls, **kwargs) -> UniToComTokenizerConfig:
        """Tests and the embedded default: 2 + 2 layers of width 64 (about 0.2 M parameters), 32x32 images or
        0.96 s of 16 kHz audio as 40 mel bins, S_m = 32 tokens of dimension 8."""
        return cls(**kwargs)

    @classmethod
    def paper(cls, **kwargs) -> UniToComTokenizerConfig:
        """The paper's sizes (Sec. V): 6 + 6 Transformer layers, 256x256 images, 24 kHz audio. The width, the token
        dimension, the mel front end and C_sigma are not given in the paper; these are LatentLM-like choices."""
        defaults = {
            "hidden_size": 512, "intermediate_size": 2048, "num_attention_heads": 8, "num_encoder_layers": 6,
            "num_decoder_layers": 6, "image_size": 256, "patch_size": 16, "num_tokens": 32, "token_dim": 16,
            "sampling_rate": 24000, "n_fft": 1024, "win_length": 1024, "hop_length": 256, "num_mel_bins": 100,
            "f_max": 12000.0, "num_frames": 200, "frames_per_patch": 4, "link_hidden_size": 256,
        }  # fmt: skip
        defaults.update(kwargs)
        return cls(**defaults)


__all__ = ["BOTTLENECKS", "RECONSTRUCTION_LOSSES", "TOKENIZER_MODALITIES", "UniToComTokenizerConfig"]
