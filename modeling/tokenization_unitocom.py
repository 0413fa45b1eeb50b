r"""UniToCom's tokenizers (Sec. III of `unitocom-genib.txt`): sigma-GenIB and the "UniToCom+VAE" baseline, per
modality (image, audio log-mel), with the adaptive channel coding-modulation of eqs. (1)-(2) and Algorithm 1's loss.

`UniToComTokenizerModel` holds
- F_alpha (`UniToComTokenEncoder`): input patches -> Transformer -> learned resampling onto S_m positions -> the
  means `mu` of S_m continuous tokens `(batch, S_m, token_dim)` (and, for the VAE, their log-variances);
- F_beta (`UniToComTokenDecoder`): tokens -> learned resampling onto the patch positions -> Transformer -> patches;
- T/R (`AdaptiveChannelCoder`, SNR- and rate-adaptive, analog or QAM) around the one `TokenChannel`.

sigma-GenIB (eqs. 12-14), with `p_alpha(t|x) = N(t | mu, sigma^2 I)`:

    t = mu + sigma * eps,   eps ~ N(0, I),   sigma ~ N(0, C_sigma^2)   (one sigma per sample, not learned)

The rate term is eq. (8), KL(N(mu, sigma^2) || N(0, I)) = 1/2 sum_i (mu_i^2 + sigma^2 - 1 - log sigma^2). sigma
does not depend on alpha, so every term but `mu_i^2` is a constant of the optimization: the KL of eq. (13)
reduces to the L2 pull `1/2 ||mu||^2` (the constant is dropped; its expectation over sigma is finite). The
distortion of eq. (13) is `lambda * (1/K) sum_k d(F_beta(t_k), x) + (1 - lambda) d(F_beta(mu), x)` (eq. 14 for
the expectation), with `d` the MSE (default) or L1 on normalized pixels ([-1, 1]) or normalized log-mels: the
paper's note below eq. (14) solves the conditional entropy `-log q_beta(x|t)` with MSE (a Gaussian decoder) or CE.

The VAE baseline learns `log sigma_i^2(x)` per dimension; its rate is the full KL above and its distortion the
usual `(1/K) sum_k d(F_beta(t_k), x)` (no deterministic term). Both rates are averaged per latent element and both
distortions per input element, so `rate_weight` (xi) means the same for both.

The audio front end (`log_mel_spectrogram`) and its inverse for listening (`griffin_lim`) are here too; the mel
filter bank is transformers' `audio_utils.mel_filter_bank` (Slaney), the STFT torch's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.audio_utils import mel_filter_bank
from transformers.utils import ModelOutput

from .channel import TokenChannel
from .random_draws import rand, randn
from .channel_coding import AdaptiveChannelCoder
from .configuration_unitocom import UniToComTokenizerConfig

LOGVAR_RANGE = (-30.0, 20.0)  # the VAE's log-variance is clamped here before exp (numerical safety only)
MEL_FLOOR_DB = -60.0  # log-mel floor [dB]: digital silence (espeak-ng pauses) would otherwise sit at -inf


# ---------------------------------------------------------------------------------------------
# Audio front end: log-mel [dB] and Griffin-Lim back to a waveform
# ---------------------------------------------------------------------------------------------


def mel_filters(config: UniToComTokenizerConfig) -> torch.Tensor:
    """The Slaney mel filter bank `(n_fft // 2 + 1, num_mel_bins)` of `config` (float32)."""
    bank = mel_filter_bank(
        num_frequency_bins=config.n_fft // 2 + 1, num_mel_filters=config.num_mel_bins, min_frequency=config.f_min,
        max_frequency=config.f_max, sampling_rate=config.sampling_rate, norm="slaney", mel_scale="slaney",
    )  # fmt: skip
    return torch.from_numpy(bank).float()


def _stft(waveform: torch.Tensor, config: UniToComTokenizerConfig) -> torch.Tensor:
    window = torch.hann_window(config.win_length, device=waveform.device)
    return torch.stft(waveform, config.n_fft, config.hop_length, config.win_length, window, center=True,
                      return_complex=True)  # fmt: skip


def log_mel_spectrogram(waveform, config: UniToComTokenizerConfig, filters: torch.Tensor | None = None) -> torch.Tensor:
    """Mono waveform(s) at `config.sampling_rate` `(samples,)` or `(batch, samples)` -> log-mel power [dB]
    `(batch, 1 + samples // hop_length, num_mel_bins)` (centred Hann-windowed STFT, floor `MEL_FLOOR_DB`)."""
    wave = torch.as_tensor(waveform, dtype=torch.float32)
    if wave.dim() == 1:
        wave = wave.unsqueeze(0)
    shortest = config.n_fft // 2 + 1  # the centred STFT reflects n_fft // 2 samples at each end
    if wave.dim() != 2 or wave.shape[1] < shortest:
        raise ValueError(f"`waveform` must have shape (samples,) or (batch, samples) with samples >= {shortest} "
                         f"(n_fft // 2 + 1), got {tuple(wave.shape)}.")  # fmt: skip
    if not torch.isfinite(wave).all():
        raise ValueError("`waveform` must be finite (no NaN or inf samples).")
    filters = mel_filters(config).to(wave.device) if filters is None else filters
    power = _stft(wave, config).abs().pow(2)  # (batch, freq, frames)
    mel = torch.einsum("bft,fm->btm", power, filters)
    return 10.0 * torch.log10(mel.clamp_min(10.0 ** (MEL_FLOOR_DB / 10.0)))


def mel_to_linear_power(mel_power: torch.Tensor, filters: torch.Tensor, num_iterations: int = 50) -> torch.Tensor:
    """Mel power `(batch, mel, frames)` -> a non-negative linear power `(batch, freq, frames)` whose mel projection
    matches it: least squares under `power >= 0`, by multiplicative updates (Lee & Seung) from the clamped
    pseudo-inverse (the clamped pseudo-inverse alone is about 5 dB off on a chirp; this, about 2 dB)."""
    basis = filters.T  # (mel, freq)
    power = (torch.linalg.pinv(basis) @ mel_power).clamp_min(0.0) + 1e-8 * mel_power.amax(dim=(1, 2), keepdim=True)
    target = basis.T @ mel_power  # (batch, freq, frames)
    gram = basis.T @ basis  # (freq, freq)
    for _ in range(num_iterations):
        power = power * target / (gram @ power).clamp_min(1e-20)
    return power


def griffin_lim(log_mel_db: torch.Tensor, config: UniToComTokenizerConfig, num_iterations: int = 32,
                momentum: float = 0.99, generator: torch.Generator | None = None,
                filters: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """Log-mel [dB] `(batch, frames, num_mel_bins)` -> waveform `(batch, (frames - 1) * hop_length)` for listening.

    1. mel power -> linear-frequency power (`mel_to_linear_power`); magnitude = sqrt;
    2. fast Griffin-Lim (Perraudin et al. 2013): alternate iSTFT / STFT keeping the magnitude, with `momentum`,
       starting from random phases drawn from `generator`.
    """
    if not isinstance(log_mel_db, torch.Tensor) or log_mel_db.dim() != 3 or log_mel_db.shape[-1] != config.num_mel_bins:
        shape = tuple(log_mel_db.shape) if isinstance(log_mel_db, torch.Tensor) else type(log_mel_db).__name__
        raise ValueError(f"`log_mel_db` must have shape (batch, frames, {config.num_mel_bins}), got {shape}.")
    if log_mel_db.shape[1] < 2 or not torch.isfinite(log_mel_db).all():
        raise ValueError("`log_mel_db` must hold at least 2 frames of finite values.")
    if isinstance(num_iterations, bool) or not isinstance(num_iterations, int) or num_iterations < 1:
        raise ValueError(f"`num_iterations` must be an integer >= 1, got {num_iterations!r}.")
    device = log_mel_db.device
    filters = mel_filters(config).to(device) if filters is None else filters
    # 1. magnitude spectrogram (batch, freq, frames)
    mel_power = torch.pow(10.0, log_mel_db.float() / 10.0).transpose(1, 2)  # (batch, mel, frames)
    magnitude = mel_to_linear_power(mel_power, filters).sqrt()
    length = (log_mel_db.shape[1] - 1) * config.hop_length
    window = torch.hann_window(config.win_length, device=device)

    def istft(spectrum):
        return torch.istft(spectrum, config.n_fft, config.hop_length, config.win_length, window, center=True, length=length)

    # 2. fast Griffin-Lim
    phase = rand(magnitude.shape, generator, device) * (2 * torch.pi)
    angles = torch.polar(torch.ones_like(magnitude), phase)
    previous = torch.zeros_like(angles)
    for _ in range(num_iterations):
        rebuilt = _stft(istft(magnitude * angles), config)[..., : magnitude.shape[-1]]
        angles = rebuilt - (momentum / (1 + momentum)) * previous
        angles = angles / angles.abs().clamp_min(1e-16)
        previous = rebuilt
    return istft(magnitude * angles)


# ---------------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------------


@dataclass
class UniToComTokenizerEncoderOutput(ModelOutput):
    r"""F_alpha's output.

    Args:
        mean (`torch.FloatTensor` of shape `(batch, num_tokens, token_dim)`): mu, the deterministic tokens.
        logvar (`torch.FloatTensor` of shape `(batch, num_tokens, token_dim)`, *optional*): the VAE's learned
            log-variance (None for sigma-GenIB, whose variance is fixed).
    """

    mean: torch.FloatTensor | None = None
    logvar: torch.FloatTensor | None = None


@dataclass
class UniToComTokenizerOutput(ModelOutput):
    r"""Output of [`UniToComTokenizerModel.forward`] (Algorithm 1, one step).

    Args:
        loss (`torch.FloatTensor` of shape `()`): eq. (13), `rate_weight * rate_loss + reconstruction_loss`.
        reconstruction_loss (`torch.FloatTensor` of shape `()`): the distortion term of eq. (13) with eq. (14).
        rate_loss (`torch.FloatTensor` of shape `()`): the KL of eq. (8), per latent element.
        reconstruction (`torch.FloatTensor`): F_beta of the (received) mean tokens, in data units: images
            `(batch, channels, size, size)` in [0, 1], log-mels `(batch, frames, mel)` [dB].
        mean, logvar (`torch.FloatTensor` of shape `(batch, num_tokens, token_dim)`): F_alpha's output.
        tokens (`torch.FloatTensor` of shape `(K, batch, num_tokens, token_dim)`): the sampled t_k.
        received_mean (`torch.FloatTensor` of shape `(batch, num_tokens, token_dim)`, *optional*): R(h T(mu) + n)
            when a channel was used (Algorithm 1, steps 7-8).
    """

    loss: torch.FloatTensor | None = None
    reconstruction_loss: torch.FloatTensor | None = None
    rate_loss: torch.FloatTensor | None = None
    reconstruction: torch.FloatTensor | None = None
    mean: torch.FloatTensor | None = None
    logvar: torch.FloatTensor | None = None
    tokens: torch.FloatTensor | None = None
    received_mean: torch.FloatTensor | None = None


# ---------------------------------------------------------------------------------------------
# F_alpha and F_beta
# ---------------------------------------------------------------------------------------------


class _PatchTransformer(nn.Module):
    """A pre-norm Transformer over the `num_patches` patch positions (learned position embeddings added first)."""

    def __init__(self, config: UniToComTokenizerConfig, num_layers: int):
        super().__init__()
        self.positions = nn.Parameter(torch.zeros(1, config.num_patches, config.hidden_size))
        layer = nn.TransformerEncoderLayer(
            config.hidden_size, config.num_attention_heads, config.intermediate_size, dropout=0.0, activation="gelu",
            batch_first=True, norm_first=True,
        )  # fmt: skip
        self.transformer = nn.TransformerEncoder(layer, num_layers, norm=nn.LayerNorm(config.hidden_size),
                                                 enable_nested_tensor=False)  # fmt: skip

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.transformer(h + self.positions)


class UniToComTokenEncoder(nn.Module):
    """F_alpha: patches `(batch, num_patches, patch_dim)` -> Transformer over the patches -> a learned linear map of
    the patch axis onto S_m token positions -> mu (and the VAE's log-variance) `(batch, S_m, token_dim)`.

    (A 1-D tokenizer: any S_m, independent of the patch grid. Learned latent queries attending to the patches
    (TiTok-style) were tried first: on this CPU budget they stayed near the mean image; the linear resampling
    learns several times faster and costs the same for every S_m.)
    """

    def __init__(self, config: UniToComTokenizerConfig):
        super().__init__()
        self.embed = nn.Linear(config.patch_dim, config.hidden_size)
        self.body = _PatchTransformer(config, config.num_encoder_layers)
        self.to_tokens = nn.Linear(config.num_patches, config.num_tokens)  # over the sequence axis
        self.to_mean = nn.Linear(config.hidden_size, config.token_dim)
        self.to_logvar = nn.Linear(config.hidden_size, config.token_dim) if config.bottleneck == "vae" else None

    def forward(self, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.body(self.embed(patches))  # (batch, num_patches, hidden)
        latent = self.to_tokens(h.transpose(1, 2)).transpose(1, 2)  # (batch, S_m, hidden)
        logvar = None if self.to_logvar is None else self.to_logvar(latent).clamp(*LOGVAR_RANGE)
        return self.to_mean(latent), logvar


def patches_to_image(patches: torch.Tensor, image_size: int, patch_size: int) -> torch.Tensor:
    """`(batch, (image_size / patch_size)^2, channels * patch_size^2)` -> `(batch, channels, image_size, image_size)`
    (the patch layout of `UniToComTokenizerModel.patchify`: row-major patches, channel-major pixels)."""
    batch, n, p = patches.shape[0], image_size // patch_size, patch_size
    channels = patches.shape[-1] // (p * p)
    x = patches.reshape(batch, n, n, channels, p, p).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(batch, channels, image_size, image_size)


def image_to_patches(image: torch.Tensor, patch_size: int) -> torch.Tensor:
    """The inverse of `patches_to_image`: `(batch, channels, size, size)` -> `(batch, patches, channels * p^2)`."""
    batch, channels, size, p = image.shape[0], image.shape[1], image.shape[-1], patch_size
    n = size // p
    x = image.reshape(batch, channels, n, p, n, p).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(batch, n * n, channels * p * p)


class UniToComTokenDecoder(nn.Module):
    """F_beta: tokens `(batch, S_m, token_dim)` -> a learned linear map of the token axis onto the patch positions
    -> Transformer over the patches -> patches `(batch, num_patches, patch_dim)` (normalized units).

    With `decoder_conv_channels` = C > 0 (images), the last linear map gives C features per pixel of its patch
    instead of RGB, and `refine` (3x3 convolution, GELU, 3x3 convolution to RGB, over the whole image, so across
    patch borders) renders the pixels. A linear head draws each patch from `hidden_size` basis patches (a rank
    limit that blurs small objects at 8x8 patches); the convolutions render locally and nonlinearly, at the cost
    of two convolutions at full resolution.
    """

    def __init__(self, config: UniToComTokenizerConfig):
        super().__init__()
        self.image_size, self.patch_size = config.image_size, config.patch_size
        channels = config.decoder_conv_channels
        self.embed = nn.Linear(config.token_dim, config.hidden_size)
        self.to_patches = nn.Linear(config.num_tokens, config.num_patches)  # over the sequence axis
        self.body = _PatchTransformer(config, config.num_decoder_layers)
        self.to_patch = nn.Linear(config.hidden_size, channels * config.patch_size**2 if channels else config.patch_dim)
        self.refine = None
        if channels:
            self.refine = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.GELU(),
                                        nn.Conv2d(channels, config.num_channels, 3, padding=1))  # fmt: skip

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.to_patches(self.embed(tokens).transpose(1, 2)).transpose(1, 2)  # (batch, num_patches, hidden)
        patches = self.to_patch(self.body(h))
        if self.refine is None:
            return patches
        image = self.refine(patches_to_image(patches, self.image_size, self.patch_size))  # (batch, 3, size, size)
        return image_to_patches(image, self.patch_size)


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------


class UniToComTokenizerPreTrainedModel(PreTrainedModel):
    config_class = UniToComTokenizerConfig
    base_model_prefix = "unitocom_tokenizer"
    main_input_name = "pixel_values"
    supports_gradient_checkpointing = False

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        std = self.config.initializer_range
        if isinstance(module, _PatchTransformer):
            init.normal_(module.positions, std=std)


class UniToComTokenizerModel(UniToComTokenizerPreTrainedModel):
    r"""sigma-GenIB (or VAE) tokenizer F_alpha, de-tokenizer F_beta and adaptive coding-modulation of one modality.

    Inputs: `pixel_values` `(batch, num_channels, image_size, image_size)` in [0, 1] (image) or `input_features`
    `(batch, num_frames, num_mel_bins)` log-mel [dB] (audio, `log_mel_spectrogram`).

    Example:

    >>> import torch
    >>> model = UniToComTokenizerModel(UniToComTokenizerConfig.tiny(num_tokens=16))
    >>> images = torch.rand(2, 3, 32, 32)
    >>> out = model(pixel_values=images, generator=torch.Generator().manual_seed(0))
    >>> out.mean.shape, out.tokens.shape, out.reconstruction.shape
    (torch.Size([2, 16, 8]), torch.Size([2, 2, 16, 8]), torch.Size([2, 3, 32, 32]))
    >>> sent = model(pixel_values=images, snr_db=torch.tensor([0.0, 10.0]), channel_type="rayleigh")
    >>> sent.received_mean.shape
    torch.Size([2, 16, 8])
    """

    def __init__(self, config: UniToComTokenizerConfig):
        super().__init__(config)
        self.main_input_name = "pixel_values" if config.modality == "image" else "input_features"
        self.encoder = UniToComTokenEncoder(config)  # F_alpha
        self.decoder = UniToComTokenDecoder(config)  # F_beta
        self.link = AdaptiveChannelCoder(  # T(.) and R(.), eq. (1)
            config.token_dim, tuple(config.link_symbols_per_token_choices), config.link_hidden_size,
            config.link_num_layers, config.link_constellation,
        )  # fmt: skip
        self.channel = TokenChannel(config.channel_config)  # eq. (2); no parameters
        if config.modality == "audio":
            self.register_buffer("mel_filters", mel_filters(config), persistent=False)
        self.post_init()

    # -- data <-> normalized patches --------------------------------------------------------------------------------
    def _check_inputs(self, pixel_values, input_features) -> torch.Tensor:
        config = self.config
        if config.modality == "image":
            name, value, wanted = "pixel_values", pixel_values, (config.num_channels, config.image_size, config.image_size)
            other = input_features
        else:
            name, value, wanted = "input_features", input_features, (config.num_frames, config.num_mel_bins)
            other = pixel_values
        if other is not None:
            wrong = "input_features" if config.modality == "image" else "pixel_values"
            raise ValueError(f"This is an {config.modality} tokenizer: pass `{name}`, not `{wrong}`.")
        if not isinstance(value, torch.Tensor) or value.dim() != len(wanted) + 1 or tuple(value.shape[1:]) != wanted:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"`{name}` must be a tensor of shape (batch, {', '.join(map(str, wanted))}), got {shape}.")
        if value.shape[0] < 1 or value.is_complex() or not value.is_floating_point():
            raise ValueError(f"`{name}` must be a non-empty real floating-point tensor, got dtype {value.dtype}.")
        if not torch.isfinite(value).all():
            raise ValueError(f"`{name}` must be finite (no NaN or inf).")
        return value

    def patchify(self, inputs: torch.Tensor) -> torch.Tensor:
        """Data -> normalized patches `(batch, num_patches, patch_dim)`: pixels in [-1, 1], mels `(x - mean) / std`."""
        config, batch = self.config, inputs.shape[0]
        if config.modality == "image":
            return image_to_patches(inputs.float() * 2.0 - 1.0, config.patch_size)
        x = (inputs.float() - config.mel_mean_db) / config.mel_std_db
        return x.reshape(batch, config.num_patches, config.patch_dim)

    def unpatchify(self, patches: torch.Tensor) -> torch.Tensor:
        """Normalized patches -> data units: images in [0, 1] (clamped), log-mels [dB]."""
        config, batch = self.config, patches.shape[0]
        if config.modality == "image":
            x = patches_to_image(patches, config.image_size, config.patch_size)
            return ((x + 1.0) / 2.0).clamp(0.0, 1.0)
        x = patches.reshape(batch, config.num_frames, config.num_mel_bins)
        return x * config.mel_std_db + config.mel_mean_db

    # -- F_alpha, sampling, F_beta ------------------------------------------------------------------------------------
    def encode(self, pixel_values=None, input_features=None) -> UniToComTokenizerEncoderOutput:
        """F_alpha (Algorithm 1, step 4): mu `(batch, S_m, token_dim)` and, for the VAE, the log-variance."""
        inputs = self._check_inputs(pixel_values, input_features)
        mean, logvar = self.encoder(self.patchify(inputs))
        return UniToComTokenizerEncoderOutput(mean=mean, logvar=logvar)

    def sample_tokens(self, mean: torch.Tensor, logvar: torch.Tensor | None = None, num_samples: int = 1,
                      generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
        """K token draws `(K, batch, S_m, token_dim)` (Algorithm 1, step 6).

        sigma-GenIB: `t = mu + sigma * eps`, one `sigma ~ N(0, C_sigma^2)` per sample and draw, `eps ~ N(0, I)`
        (Sec. III-C); VAE: `t = mu + exp(logvar / 2) * eps`.
        """
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"`num_samples` must be an integer >= 1, got {num_samples!r}.")
        shape = (num_samples, *mean.shape)
        eps = randn(shape, generator, mean.device, mean.dtype)
        if self.config.bottleneck == "vae":
            if logvar is None:
                raise ValueError("The VAE tokenizer needs `logvar` to sample tokens.")
            return mean + torch.exp(0.5 * logvar) * eps
        sigma = self.config.c_sigma * randn((num_samples, mean.shape[0], 1, 1), generator, mean.device, mean.dtype)
        return mean + sigma * eps

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """F_beta^{-1} (Algorithm 1, step 9): tokens `(batch, S_m, token_dim)` -> data units (see `unpatchify`)."""
        self._check_tokens(tokens, "tokens")
        return self.unpatchify(self.decoder(tokens.float()))

    def _check_tokens(self, tokens, name: str) -> None:
        wanted = (self.config.num_tokens, self.config.token_dim)
        if not isinstance(tokens, torch.Tensor) or tokens.dim() != 3 or tuple(tokens.shape[1:]) != wanted:
            shape = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__
            raise ValueError(f"`{name}` must have shape (batch, {wanted[0]}, {wanted[1]}), got {shape}.")
        if not torch.isfinite(tokens).all():
            raise ValueError(f"`{name}` must be finite (no NaN or inf).")

    # -- the link -------------------------------------------------------------------------------------------------------
    def transmit(self, tokens: torch.Tensor, snr_db, num_symbols_per_token: int | None = None,
                 channel_type: str | None = None, constellation: str | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
        """`R(h T(t) + n)` (eqs. 1-2, Algorithm 1 steps 7-8): tokens `(batch, S_m, token_dim)` -> received tokens.

        `snr_db` [dB], a number or `(batch,)`; `num_symbols_per_token` among `link_symbols_per_token_choices`
        (default: the largest); `channel_type` `"awgn"`/`"rayleigh"` (default: the config's); `constellation`
        `"analog"` or a QAM (default: `link_constellation`).
        """
        self._check_tokens(tokens, "tokens")
        k = max(self.config.link_symbols_per_token_choices) if num_symbols_per_token is None else num_symbols_per_token
        return self.link.transmit(tokens, snr_db, k, self.channel, generator=generator, channel_type=channel_type,
                                  constellation=constellation)  # fmt: skip

    # -- eq. (13) -------------------------------------------------------------------------------------------------------
    def rate_loss(self, mean: torch.Tensor, logvar: torch.Tensor | None = None) -> torch.Tensor:
        """The KL of eq. (8) per latent element (mean over batch, tokens and dimensions).

        VAE: `1/2 (mu^2 + exp(logvar) - 1 - logvar)`. sigma-GenIB: `1/2 mu^2` (fixed sigma: the rest is a constant).
        """
        if self.config.bottleneck == "vae":
            return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
        return 0.5 * mean.pow(2).mean()

    def distortion(self, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """`d(F_beta(t), x)` per sample `(batch,)`: MSE or L1 over normalized patch elements."""
        error = predicted - target
        error = error.pow(2) if self.config.reconstruction_loss == "mse" else error.abs()
        return error.flatten(1).mean(dim=1)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        snr_db=None,
        channel_type: str | None = None,
        num_symbols_per_token: int | None = None,
        constellation: str | None = None,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
    ) -> UniToComTokenizerOutput | tuple:
        r"""One step of Algorithm 1: the loss of eq. (13) (optionally through the channel) and the reconstruction.

        Args:
            pixel_values, input_features: the input (see the class docstring).
            snr_db (`float` or `torch.Tensor` of shape `(batch,)`, *optional*): when given, the tokens (mu and the
                K samples) go through T, the channel (eq. 2) and R before F_beta (steps 7-8); else F_beta sees them.
            channel_type, num_symbols_per_token, constellation: see `transmit`.
            generator (`torch.Generator`, *optional*): the token and channel draws.
        """
        config = self.config
        # 1. mu = F_alpha(x) (step 4) and the rate of eq. (8) (step 5)
        inputs = self._check_inputs(pixel_values, input_features)
        target = self.patchify(inputs)
        mean, logvar = self.encoder(target)
        rate = self.rate_loss(mean, logvar)
        # 2. K stochastic tokens (step 6)
        tokens = self.sample_tokens(mean, logvar, config.num_samples, generator)
        batch, k = mean.shape[0], config.num_samples
        decoder_inputs = torch.cat([mean.unsqueeze(0), tokens], dim=0).reshape(-1, *mean.shape[1:])  # (K + 1) * batch
        # 3. optional coding-modulation, channel and decoding (steps 7-8)
        received_mean = None
        if snr_db is not None:
            snr = torch.as_tensor(snr_db, dtype=torch.float32, device=mean.device)
            snr = snr.expand(batch) if snr.dim() == 0 else snr
            decoder_inputs = self.transmit(decoder_inputs, snr.repeat(k + 1), num_symbols_per_token, channel_type,
                                           constellation, generator)  # fmt: skip
            received_mean = decoder_inputs[:batch]
        # 4. F_beta (step 9) and the distortion of eqs. (13)-(14) (step 10)
        predicted = self.decoder(decoder_inputs).reshape(k + 1, batch, *target.shape[1:])
        deterministic = self.distortion(predicted[0], target).mean()
        stochastic = torch.stack([self.distortion(predicted[i + 1], target).mean() for i in range(k)]).mean()  # eq. (14)
        if config.bottleneck == "vae":
            reconstruction_loss = stochastic
        else:
            lam = config.stochastic_weight
            reconstruction_loss = lam * stochastic + (1.0 - lam) * deterministic
        # 5. total loss, eq. (13) (step 11)
        loss = config.rate_weight * rate + reconstruction_loss
        output = UniToComTokenizerOutput(
            loss=loss, reconstruction_loss=reconstruction_loss, rate_loss=rate,
            reconstruction=self.unpatchify(predicted[0]), mean=mean, logvar=logvar, tokens=tokens,
            received_mean=received_mean,
        )  # fmt: skip
        return output if return_dict else output.to_tuple()

    # -- listening ------------------------------------------------------------------------------------------------------
    def to_waveform(self, log_mel_db: torch.Tensor, num_iterations: int = 32,
                    generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
        """Log-mel [dB] `(batch, num_frames, num_mel_bins)` (e.g. `decode(...)`) -> waveform
        `(batch, num_waveform_samples)` at `sampling_rate` by Griffin-Lim (audio tokenizers only)."""
        if self.config.modality != "audio":
            raise ValueError("`to_waveform` needs an audio tokenizer (`modality='audio'`).")
        return griffin_lim(log_mel_db, self.config, num_iterations, generator=generator, filters=self.mel_filters)


__all__ = [
    "UniToComTokenDecoder",
    "UniToComTokenEncoder",
    "UniToComTokenizerEncoderOutput",
    "UniToComTokenizerModel",
    "UniToComTokenizerOutput",
    "UniToComTokenizerPreTrainedModel",
    "MEL_FLOOR_DB",
    "griffin_lim",
    "log_mel_spectrogram",
    "mel_filters",
    "mel_to_linear_power",
]
