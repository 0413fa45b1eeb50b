"""Configurations of UniToCom (`unitocom-genib.txt`): the per-modality sigma-GenIB / VAE tokenizers (Sec. III) with
their adaptive channel coding-modulation (eqs. 1-2), and the whole system's `UniToComConfig`: the latent MLLM with its
LM head and per-token diffusion head (Sec. IV), composing the tokenizers' configs and the channel's.
"""

from __future__ import annotations

import math
from typing import Literal

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .channel import ChannelConfig
from .configuration_taichi import TINY_TEXT_CONFIG

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
        decoder_conv_channels (`int`, defaults to 0): images only. 0: F_beta ends in a linear map of each patch
            position's state onto its pixels (ViT-style). > 0: that map gives `decoder_conv_channels` features per
            pixel instead, and two 3x3 convolutions over the whole image turn them into RGB (a convolutional
            refinement head, not in the paper; see `UniToComTokenDecoder`).
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
    decoder_conv_channels: int = 0
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
        if isinstance(self.decoder_conv_channels, bool) or not isinstance(self.decoder_conv_channels, int) \
                or self.decoder_conv_channels < 0:
            raise ValueError(f"`decoder_conv_channels` must be an integer >= 0, got {self.decoder_conv_channels!r}.")
        if self.decoder_conv_channels and self.modality != "image":
            raise ValueError("`decoder_conv_channels` > 0 is for image tokenizers only (modality 'image').")
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



# ---------------------------------------------------------------------------------------------
# The system: tokenizers + link (Sec. III) and the latent MLLM (Sec. IV)
# ---------------------------------------------------------------------------------------------

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")  # diffusers' DDPMScheduler schedules
TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")

# The tiny MLLM (tests and the embedded default; built from a config, nothing downloaded): TaiChi's tiny Qwen2 over a
# word tokenizer's vocabulary (`tokcom.training.tokenization`: <pad>=0, <unk>=1, <eos>=2), with 2 layers. The last two
# ids of the vocabulary are the placeholders of image and audio tokens.
TINY_MLLM_TEXT_CONFIG = {**TINY_TEXT_CONFIG, "num_hidden_layers": 2}
# The paper's backbone (Sec. V): "a pretrained Transformer-based MLLM ... 1.4B, hidden size 2048, 24 layers" (the
# LatentLM of its ref. [7]); a Qwen2 architecture of that size with Qwen2's vocabulary (about 1.5 B parameters).
PAPER_MLLM_TEXT_CONFIG = {
    "vocab_size": 151936,
    "hidden_size": 2048,
    "intermediate_size": 5632,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "num_key_value_heads": 16,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": True,
    "pad_token_id": 151643,
    "bos_token_id": None,
    "eos_token_id": 151645,
}


class UniToComConfig(PreTrainedConfig):
    r"""Configuration of [`UniToComModel`]: the latent MLLM (Sec. IV) over the tokens the UniToCom tokenizers send.

    Args:
        text_config (`dict` or `PreTrainedConfig`): the causal Transformer and its vocabulary (Qwen2 architecture;
            the paper's is 1.4B, hidden 2048, 24 layers). Its final norm gives `[h_1, ..., h_{N+M}] = Norm(T^L)`.
        image_tokenizer_config, audio_tokenizer_config (`dict` or `UniToComTokenizerConfig`): F_m, F_m^{-1} and the
            adaptive link of each continuous modality (Sec. III); their `token_dim` is the size of the continuous
            tokens the MLLM reads (image and audio) and generates (image).
        channel_config (`dict` or `ChannelConfig`): the system's default link settings (channel type, SNR) for a
            call that gives none; each tokenizer's link uses its own `channel_config` for fading and equalizer.
        image_token_id, audio_token_id (`int`, *optional*): the placeholder ids that mark where continuous image /
            audio tokens sit in `input_ids`; default the last two ids of the vocabulary.
        diffusion_hidden_size (`int`, defaults to 256), diffusion_num_layers (`int`, defaults to 3),
            diffusion_mlp_ratio (`float`, defaults to 4.0): the per-token diffusion head epsilon_psi (eq. 19).
        beta_schedule (`str`, defaults to `"squaredcos_cap_v2"`): the noise schedule phi_r of the forward process
            (eq. 18), a `diffusers.DDPMScheduler` `beta_schedule`.
        num_train_timesteps (`int`, defaults to 1000): R, diffusion steps of the forward process.
        num_inference_steps (`int`, defaults to 10): solver steps per generated token (DPM-Solver++).
        timestep_spacing (`str`, defaults to `"leading"`): the sampler's step spacing ("leading": the default
            "linspace" starts at r = R - 1 where the cosine schedule's omega_r is about 2e-9; see `sample_tokens`).
        num_noise_draws (`int`, defaults to 4): noise draws per condition h_i in the diffusion loss.
        diffusion_loss_weight (`float`, defaults to 1.0): weight of L_Diff (eq. 19) next to L_LM (eq. 16).
        max_new_tokens (`int`, defaults to 16): answer / transcript budget of `generate_text`.
        tie_word_embeddings (`bool`, defaults to `True`): W_v of eq. (15) is the input embedding matrix.
        initializer_range (`float`, defaults to 0.02).

    Example:

    >>> config = UniToComConfig.tiny()
    >>> config.text_config.hidden_size, config.image_token_id, config.audio_token_id
    (128, 510, 511)
    >>> config.image_tokenizer_config.token_dim, config.audio_tokenizer_config.modality
    (8, 'audio')
    >>> config.scheduler_config["beta_schedule"]
    'squaredcos_cap_v2'
    """

    model_type = "unitocom"

    sub_configs_defaults = {
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="qwen2", init_kwargs=TINY_MLLM_TEXT_CONFIG),
        "image_tokenizer_config": SubConfigSpec(config_class=UniToComTokenizerConfig, init_kwargs={"modality": "image"}),
        "audio_tokenizer_config": SubConfigSpec(config_class=UniToComTokenizerConfig, init_kwargs={"modality": "audio"}),
        "channel_config": SubConfigSpec(config_class=ChannelConfig),
    }

    text_config: dict | PreTrainedConfig | None = None
    image_tokenizer_config: dict | PreTrainedConfig | None = None
    audio_tokenizer_config: dict | PreTrainedConfig | None = None
    channel_config: dict | PreTrainedConfig | None = None
    image_token_id: int | None = None
    audio_token_id: int | None = None
    diffusion_hidden_size: int = 256
    diffusion_num_layers: int = 3
    diffusion_mlp_ratio: float = 4.0
    beta_schedule: str = "squaredcos_cap_v2"
    num_train_timesteps: int = 1000
    num_inference_steps: int = 10
    timestep_spacing: str = "leading"
    num_noise_draws: int = 4
    diffusion_loss_weight: float = 1.0
    max_new_tokens: int = 16
    tie_word_embeddings: bool = True
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        for name, modality in (("image_tokenizer_config", "image"), ("audio_tokenizer_config", "audio")):
            if getattr(self, name).modality != modality:
                raise ValueError(f"`{name}` must have modality {modality!r}, got {getattr(self, name).modality!r}.")
        vocab = self.text_config.vocab_size
        if self.image_token_id is None:
            self.image_token_id = vocab - 2
        if self.audio_token_id is None:
            self.audio_token_id = vocab - 1
        for name in ("image_token_id", "audio_token_id"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < vocab:
                raise ValueError(f"`{name}` must be an integer in [0, {vocab - 1}] (the vocabulary), got {value!r}.")
        if self.image_token_id == self.audio_token_id:
            raise ValueError(f"`image_token_id` and `audio_token_id` must differ, both are {self.image_token_id}.")
        specials = {self.text_config.pad_token_id, self.text_config.eos_token_id} - {None}
        for name in ("image_token_id", "audio_token_id"):
            if getattr(self, name) in specials:
                raise ValueError(f"`{name}` ({getattr(self, name)}) must not be the pad or eos id {sorted(specials)}.")
        for name in ("diffusion_hidden_size", "diffusion_num_layers", "num_train_timesteps", "num_inference_steps",
                     "num_noise_draws", "max_new_tokens"):  # fmt: skip
            _positive_int(name, getattr(self, name))
        if self.num_inference_steps > self.num_train_timesteps:
            raise ValueError(
                f"`num_inference_steps` must be in [1, {self.num_train_timesteps}] (`num_train_timesteps`), "
                f"got {self.num_inference_steps}."
            )
        _choice("beta_schedule", self.beta_schedule, BETA_SCHEDULES)
        _choice("timestep_spacing", self.timestep_spacing, TIMESTEP_SPACINGS)
        _finite("diffusion_mlp_ratio", self.diffusion_mlp_ratio, 1e-6)
        _finite("diffusion_loss_weight", self.diffusion_loss_weight, 0.0)
        _finite("initializer_range", self.initializer_range, 0.0)

    @property
    def scheduler_config(self) -> dict:
        """The training scheduler's settings: `diffusers.DDPMScheduler(**config.scheduler_config)` (eq. 18,
        epsilon prediction of eq. 19). The sampler is DPM-Solver++ built from it with `timestep_spacing`."""
        return {"num_train_timesteps": self.num_train_timesteps, "beta_schedule": self.beta_schedule,
                "prediction_type": "epsilon"}  # fmt: skip

    @classmethod
    def tiny(cls, **kwargs) -> UniToComConfig:
        """Tests and the embedded default: a 2-layer width-128 Qwen2 over a 512-word vocabulary, the tiny tokenizers
        (32 image tokens of 32x32 images, 32 audio tokens of 0.96 s, dimension 8) and a 2-block width-128 diffusion
        head (about 1.3 M parameters in all). Sub-config dicts merge into the tiny defaults."""
        defaults = {"text_config": TINY_MLLM_TEXT_CONFIG, "image_tokenizer_config": {"modality": "image"},
                    "audio_tokenizer_config": {"modality": "audio"}}  # fmt: skip
        for key, values in defaults.items():
            if kwargs.get(key) is None or isinstance(kwargs[key], dict):
                kwargs[key] = {**values, **(kwargs.get(key) or {})}
        return cls(**{"diffusion_hidden_size": 128, "diffusion_num_layers": 2, **kwargs})

    @classmethod
    def paper(cls, **kwargs) -> UniToComConfig:
        """The paper's sizes (Sec. V): a 1.4B-class MLLM (Qwen2 architecture, hidden 2048, 24 layers), the paper
        tokenizers (`UniToComTokenizerConfig.paper`), a diffusion head of width 1024 (LatentLM's head size; the paper
        gives none). Built from configs only: pretrained weights are the user's to load."""
        defaults = {
            "text_config": dict(PAPER_MLLM_TEXT_CONFIG),
            "image_tokenizer_config": UniToComTokenizerConfig.paper(modality="image").to_dict(),
            "audio_tokenizer_config": UniToComTokenizerConfig.paper(modality="audio").to_dict(),
            "diffusion_hidden_size": 1024,
            "diffusion_num_layers": 3,
        }
        for key in ("text_config", "image_tokenizer_config", "audio_tokenizer_config"):
            if isinstance(kwargs.get(key), dict):
                kwargs[key] = {**defaults[key], **kwargs[key]}
        defaults.update(kwargs)
        return cls(**defaults)


__all__ = [
    "BETA_SCHEDULES",
    "BOTTLENECKS",
    "RECONSTRUCTION_LOSSES",
    "TOKENIZER_MODALITIES",
    "UniToComConfig",
    "UniToComTokenizerConfig",
]
