"""One differentiable token channel for every tokcom model, plus the link-budget helpers (from `link_budget`).

The channel follows eqs. (4)-(6) of the TokCom letter (`tokcom-avqa-letter.txt`):
real token embeddings are reshaped into complex symbols (`C_m`, eq. 4), sent through
`y~ = h sqrt(p) y + n` (eq. 5) and demodulated back into token space (`C_m^-1`, eq. 6).
Transmit power is folded into the SNR: each sample's symbols are normalized to unit
average energy, so the noise power per complex symbol is `no = 10 ** (-snr_db / 10)`
(the Sionna convention).

Units live in names: `snr_db` [dB], `bandwidth_hz` [Hz], `power_w` [W], `power_dbm` [dBm],
`distance_km` [km], `noise_dbm_per_hz` [dBm/Hz], `gain` (linear power gain) and `gain_db` [dB].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import PreTrainedConfig
from transformers.utils import ModelOutput

from .link_budget import (  # noqa: F401  numpy-only link budget, re-exported here
    MIN_SNR_DB,
    NOISE_DBM_PER_HZ,
    check_snr_db,
    channel_gain,
    db_to_linear,
    dbm_to_w,
    linear_to_db,
    noise_power_w,
    path_loss_db,
    received_snr,
    received_snr_db,
    resolve_gain,
    shannon_rate_bps,
    w_to_dbm,
)
from .random_draws import randn

CHANNEL_TYPES = ("awgn", "rayleigh", "none")
FADING_TYPES = ("block", "fast")
EQUALIZERS = ("zf", "mmse")


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


@strict
class ChannelConfig(PreTrainedConfig):
    r"""Settings of the simulated wireless link, composed into every tokcom model config.

    Args:
        channel_type (`str`, defaults to `"awgn"`): one of `"awgn"`, `"rayleigh"`, `"none"`.
        snr_db (`float`, defaults to `20.0`): default SNR [dB] when a call gives none; `inf` is noiseless.
        fading (`str`, defaults to `"block"`): Rayleigh fading: `"block"` (one coefficient per sample and link)
            or `"fast"` (one per complex symbol).
        equalizer (`str`, defaults to `"zf"`): receiver equalization with perfect CSI, `"zf"` or `"mmse"`.

    Example:

    >>> config = ChannelConfig(channel_type="rayleigh", snr_db=10.0, equalizer="mmse")
    >>> config.channel_type
    'rayleigh'
    """

    model_type = "tokcom_channel"

    channel_type: Literal["awgn", "rayleigh", "none"] = "awgn"
    snr_db: float | int = 20.0
    fading: Literal["block", "fast"] = "block"
    equalizer: Literal["zf", "mmse"] = "zf"

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        # plain ValueErrors (strict's class validators would wrap them in a non-ValueError type)
        _check_choice("channel_type", self.channel_type, CHANNEL_TYPES)
        _check_choice("fading", self.fading, FADING_TYPES)
        _check_choice("equalizer", self.equalizer, EQUALIZERS)
        check_snr_db(self.snr_db)


def _check_choice(name: str, value, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"`{name}` must be one of {allowed}, got {value!r}.")


# ---------------------------------------------------------------------------------------------
# The channel
# ---------------------------------------------------------------------------------------------


@dataclass
class ChannelRealization(ModelOutput):
    """What `TokenChannel(..., return_channel=True)` returns beside the received tokens.

    Args:
        coefficients (`torch.Tensor` complex64 of shape `(batch, 1, 1)` (block) or `(batch, tokens, symbols)` (fast),
            or `None` for AWGN/none): the fading coefficients `h`.
        noise_power (`torch.Tensor` of shape `(batch,)`): linear noise power `no` per complex symbol
            (signals have unit average energy), `0` for noiseless links.
        signal_power (`torch.Tensor` of shape `(batch,)`): each sample's average energy per complex symbol
            before normalization (undone at the receiver).
    """

    coefficients: torch.Tensor | None = None
    noise_power: torch.Tensor | None = None
    signal_power: torch.Tensor | None = None


_CALL_KEYWORDS = ("snr_db", "generator", "return_channel", "channel_type", "token_mask")


class TokenChannel(nn.Module):
    r"""Differentiable wireless link for real token embeddings `(batch, tokens, dim)`.

    Steps (eqs. 4-6 of the TokCom letter):
      1. pair reals into complex symbols (`dim` odd: one zero is appended and removed at the receiver);
      2. normalize each sample to unit average symbol energy (transmit power constraint);
      3. `y = h s + n`, `n ~ CN(0, no)`, `no = 10 ** (-snr_db / 10)`; `h = 1` for AWGN, `h ~ CN(0, 1)` for Rayleigh;
      4. equalize with perfect CSI (ZF `y / h` or MMSE `conj(h) y / (|h|^2 + no)`);
      5. undo the normalization and unpair back to `(batch, tokens, dim)` in the input's dtype and device.

    The module has no trainable parameters; the math runs in float32/complex64.

    Example:

    >>> import torch
    >>> channel = TokenChannel(ChannelConfig(channel_type="rayleigh", fading="block"))
    >>> tokens = torch.randn(4, 16, 64)
    >>> received = channel(tokens, snr_db=torch.tensor([0.0, 10.0, 20.0, float("inf")]))
    >>> received.shape
    torch.Size([4, 16, 64])
    """

    def __init__(self, config: ChannelConfig | None = None, **overrides):
        super().__init__()
        config = ChannelConfig() if config is None else config
        unknown = sorted(set(overrides) - {"channel_type", "snr_db", "fading", "equalizer"})
        if unknown:
            raise ValueError(f"Unknown keyword argument(s) for TokenChannel: {unknown}.")
        settings = {k: getattr(config, k) for k in ("channel_type", "snr_db", "fading", "equalizer")}
        settings.update(overrides)
        _check_choice("channel_type", settings["channel_type"], CHANNEL_TYPES)
        _check_choice("fading", settings["fading"], FADING_TYPES)
        _check_choice("equalizer", settings["equalizer"], EQUALIZERS)
        self.channel_type = settings["channel_type"]
        self.default_snr_db = check_snr_db(settings["snr_db"])
        self.fading = settings["fading"]
        self.equalizer = settings["equalizer"]

    def extra_repr(self) -> str:
        return (
            f"channel_type={self.channel_type!r}, snr_db={self.default_snr_db}, "
            f"fading={self.fading!r}, equalizer={self.equalizer!r}"
        )

    def forward(self, tokens: torch.Tensor, snr_db=None, **kwargs):
        r"""Send `tokens` over the link.

        Args:
            tokens (`torch.Tensor` of shape `(batch, tokens, dim)`): real token embeddings.
            snr_db (`float` or `torch.Tensor` of shape `(batch,)`, *optional*): SNR [dB] per sample, in
                `(-inf, inf]` (`inf`: noiseless). Defaults to the config's `snr_db`.
            generator (`torch.Generator`, *optional*): source of the fading and noise draws.
            return_channel (`bool`, defaults to `False`): also return a `ChannelRealization`.
            channel_type (`str`, *optional*): override the configured channel for this call.
            token_mask (`torch.Tensor` of shape `(batch, tokens)`, *optional*): 1 for tokens that are sent, 0 for
                padding; padding is not sent (it carries no energy and comes back unchanged).

        Returns:
            `torch.Tensor` of shape `(batch, tokens, dim)`, or `(received, ChannelRealization)`.
        """
        unknown = sorted(set(kwargs) - set(_CALL_KEYWORDS))
        if unknown:
            raise ValueError(f"Unknown keyword argument(s) for TokenChannel.forward: {unknown}.")
        generator = kwargs.get("generator")
        return_channel = bool(kwargs.get("return_channel", False))
        channel_type = kwargs.get("channel_type") or self.channel_type
        _check_choice("channel_type", channel_type, CHANNEL_TYPES)
        if not isinstance(tokens, torch.Tensor) or tokens.dim() != 3:
            shape = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__
            raise ValueError(f"`tokens` must be a real tensor of shape (batch, tokens, dim), got {shape}.")
        if tokens.is_complex():
            raise ValueError("`tokens` must be real; complex symbols are formed inside the channel.")
        batch, num_tokens, dim = tokens.shape
        token_mask = kwargs.get("token_mask")
        if token_mask is not None and tuple(token_mask.shape) != (batch, num_tokens):
            raise ValueError(f"`token_mask` must have shape ({batch}, {num_tokens}), got {tuple(token_mask.shape)}.")
        no = noise_power_from_snr_db(self.default_snr_db if snr_db is None else snr_db, batch, tokens.device)

        if channel_type == "none" or tokens.numel() == 0:
            out = tokens
            realization = ChannelRealization(coefficients=None, noise_power=torch.zeros_like(no), signal_power=None)
            return (out, realization) if return_channel else out

        # 1. pair reals into complex symbols, C_m in eq. (4)
        x = tokens.float()
        if token_mask is not None:
            mask = token_mask.to(device=x.device, dtype=torch.float32).unsqueeze(-1)
            x = x * mask
        if dim % 2:
            x = nn.functional.pad(x, (0, 1))
        symbols = torch.view_as_complex(x.reshape(batch, num_tokens, -1, 2).contiguous())

        # 2. unit average energy per sample over its s_m * d_T / 2 symbols (pad excluded)
        sent_tokens = token_mask.float().sum(dim=1).clamp_min(1.0) if token_mask is not None else float(num_tokens)
        num_symbols = sent_tokens * dim / 2.0
        signal_power = x.pow(2).sum(dim=(1, 2)) / num_symbols  # (batch,)
        scale = signal_power.clamp_min(1e-20).sqrt().view(batch, 1, 1)
        symbols = symbols / scale

        # 3. y = h s + n, eq. (5) with p folded into the SNR
        coefficients = None
        if channel_type == "rayleigh":
            coeff_shape = (batch, 1, 1) if self.fading == "block" else symbols.shape
            coefficients = _complex_normal(coeff_shape, 1.0, generator, symbols.device)
            received = coefficients * symbols
        else:
            received = symbols
        noise = _complex_normal(symbols.shape, 1.0, generator, symbols.device) * no.sqrt().view(batch, 1, 1)
        received = received + noise

        # 4. equalize with perfect CSI
        if coefficients is not None:
            if self.equalizer == "zf":
                received = received / coefficients
            else:
                no_b = no.view(batch, 1, 1)
                received = coefficients.conj() * received / (coefficients.abs().pow(2) + no_b)

        # 5. demodulate and reshape back to token space, C_m^-1 in eq. (6)
        received = received * scale
        out = torch.view_as_real(received).reshape(batch, num_tokens, -1)[..., :dim]
        if token_mask is not None:
            out = torch.where(mask.bool(), out, tokens.float())
        out = out.to(tokens.dtype)
        if return_channel:
            return out, ChannelRealization(coefficients=coefficients, noise_power=no, signal_power=signal_power)
        return out


def noise_power_from_snr_db(snr_db, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Linear noise power per unit-energy complex symbol, `no = 10 ** (-snr_db / 10)`, as a `(batch,)` tensor.

    `snr_db` is a number or a tensor of shape `()` or `(batch,)` in `(-inf, inf]`; `inf` gives `no = 0`.
    """
    snr = torch.as_tensor(snr_db, dtype=torch.float32, device=device)
    if snr.dim() == 0:
        snr = snr.expand(batch)
    if snr.dim() != 1 or snr.shape[0] != batch:
        raise ValueError(f"`snr_db` must be a number or a tensor of shape ({batch},), got shape {tuple(snr.shape)}.")
    if torch.isnan(snr).any() or (snr < MIN_SNR_DB).any():
        bad = snr[torch.isnan(snr) | (snr < MIN_SNR_DB)][0].item()
        raise ValueError(f"`snr_db` must be a number in [{MIN_SNR_DB:g}, inf] dB (inf: noiseless), got {bad}.")
    return torch.pow(10.0, -snr / 10.0)


def _complex_normal(shape, variance: float, generator, device) -> torch.Tensor:
    """CN(0, variance) samples of `shape` (complex64) on `device`, drawn from `generator` when given (on the
    generator's own device, so a CPU generator drives a CUDA model with the same draws as on the CPU)."""
    parts = randn((*shape, 2), generator, device)
    return torch.view_as_complex(parts * math.sqrt(variance / 2.0))


__all__ = [
    "CHANNEL_TYPES",
    "NOISE_DBM_PER_HZ",
    "ChannelConfig",
    "ChannelRealization",
    "TokenChannel",
    "channel_gain",
    "db_to_linear",
    "dbm_to_w",
    "linear_to_db",
    "noise_power_from_snr_db",
    "noise_power_w",
    "path_loss_db",
    "received_snr",
    "received_snr_db",
    "resolve_gain",
    "shannon_rate_bps",
    "w_to_dbm",
]
