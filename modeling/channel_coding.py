"""SNR- and rate-adaptive channel coding-modulation T(.) / R(.) of UniToCom (eqs. 1-2 of `unitocom-genib.txt`).

`AdaptiveChannelCoder` maps continuous tokens to complex channel symbols, `z = T(t)` (eq. 1), sends them through the
project's one `TokenChannel` (`z^ = h z + n`, eq. 2) and maps the received symbols back, `t^ = R(z^)`. Both T and R
know the SNR [dB] of each sample (FiLM conditioning, as in SNR-adaptive deep JSCC), so one module serves every SNR.

Design choices (documented here once):
- Rate: `k` complex channel uses per token, chosen per call among `symbols_per_token_choices`. One shared residual
  trunk per side, one linear head per rate (encoder `hidden -> 2k` reals, decoder `2k -> hidden`).
- Tokens are coded independently of each other (a per-token code; the power normalization is per sample).
- Symbols are a complex64 tensor `(batch, tokens * k)`, token-major (symbol `i * k + j` is use `j` of token `i`).
- Power: analog symbols are normalized per sample to unit average energy, `(1/N) ||z||^2 = P = 1` with
  `N = tokens * k` (the `TokenChannel` convention: `snr_db` is Es/N0 per complex symbol). QAM symbols lie exactly on
  the unit-average-energy grid; a per-sample input gain, found by bisection, keeps `(1/N) ||z||^2 <= 1` (equality for
  4-QAM). `TokenChannel` then renormalizes each sample to unit energy, so the SNR holds exactly on the air.
- Channel: `TokenChannel` takes real tokens `(batch, tokens, dim)` and pairs consecutive reals into complex symbols,
  so the symbols travel as `(batch, tokens, 2k)` real pairs and come back the same way; nothing else is reimplemented.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .channel import TokenChannel, noise_power_from_snr_db

CONSTELLATIONS = ("analog", "qam4", "qam16", "qam64")
SNR_EMBED_RANGE_DB = (-20.0, 40.0)  # conditioning input is clamped here (inf -> 40 dB)


def qam_levels(constellation: str) -> torch.Tensor:
    """Per-dimension amplitudes of a square M-QAM with unit average energy per complex point, shape `(sqrt(M),)`."""
    if constellation not in CONSTELLATIONS[1:]:
        raise ValueError(f"`constellation` must be one of {CONSTELLATIONS[1:]} here, got {constellation!r}.")
    order = int(constellation[3:])
    side = math.isqrt(order)
    levels = torch.arange(-(side - 1), side, 2, dtype=torch.float32)
    return levels / math.sqrt(2.0 * (order - 1) / 3.0)


def _check_constellation(constellation) -> None:
    if not isinstance(constellation, str) or constellation not in CONSTELLATIONS:
        raise ValueError(f"`constellation` must be one of {CONSTELLATIONS}, got {constellation!r}.")


def _quantize(x: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Nearest PAM level per real dimension (monotone in `x`), no gradient."""
    step = levels[1] - levels[0]
    index = torch.round((x - levels[0]) / step).clamp(0, levels.numel() - 1)
    return levels[0] + index * step


def qam_straight_through(reals: torch.Tensor, constellation: str, iterations: int = 24,
                         symbol_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Map unit-energy real pairs `(batch, n, 2)` to the nearest QAM points with per-sample energy <= 1.

    `symbol_mask` `(batch, n)` (1 = sent): energy counts the sent symbols only; unsent ones come out as zeros.

    Forward: `q(a x)`, `q` = nearest constellation point per dimension and `a` the largest gain in `[0, 2]` with
    `(1/N) ||q(a x)||^2 <= 1` (bisection; `||q(a x)||` is non-decreasing in `a`). Backward: identity on `a x`
    (straight-through estimator, `a` is treated as a constant).
    """
    levels = qam_levels(constellation).to(reals.device)
    x = reals.detach().float()
    dims = tuple(range(1, x.dim()))
    weights = torch.ones_like(x[..., 0]) if symbol_mask is None else symbol_mask.to(x.device, torch.float32)
    num_symbols = weights.flatten(1).sum(1).clamp_min(1.0)

    def energy(gain):
        quantized = _quantize(x * gain.view(-1, *([1] * (x.dim() - 1))), levels)
        return (quantized.pow(2) * weights.unsqueeze(-1)).sum(dims) / num_symbols

    low = torch.zeros(x.shape[0], device=x.device)
    high = torch.full_like(low, 2.0)
    fits = energy(high) <= 1.0 + 1e-6
    low = torch.where(fits, high, low)
    for _ in range(iterations):
        mid = (low + high) / 2
        ok = energy(mid) <= 1.0 + 1e-6
        low, high = torch.where(ok, mid, low), torch.where(ok, high, mid)
    scaled = reals * low.view(-1, *([1] * (x.dim() - 1))).to(reals.dtype)
    hard = _quantize(scaled.detach().float(), levels).to(reals.dtype)
    out = scaled + (hard - scaled).detach()
    return out if symbol_mask is None else out * weights.unsqueeze(-1).to(out.dtype)


class _FiLMBlock(nn.Module):
    """Residual MLP block whose normalized input is scaled and shifted by the SNR embedding (FiLM)."""

    def __init__(self, hidden_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden_dim, elementwise_affine=False)
        self.film = nn.Linear(hidden_dim, 2 * hidden_dim)
        self.mlp = nn.Sequential(nn.Linear(hidden_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, hidden_dim))
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, h: torch.Tensor, snr_embedding: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.film(snr_embedding).unsqueeze(1).chunk(2, dim=-1)  # (batch, 1, hidden) each
        return h + self.mlp(self.norm(h) * (1 + gamma) + beta)


class AdaptiveChannelCoder(nn.Module):
    r"""SNR-adaptive, rate-adaptive channel coding-modulation T(.) (eq. 1) and demodulation-decoding R(.).

    Args:
        token_dim (`int`): dimension of the real tokens `(batch, tokens, token_dim)`.
        symbols_per_token_choices (`tuple[int]`, defaults to `(2, 4, 8, 16)`): selectable channel uses per token.
        hidden_dim (`int`, defaults to `128`): width of the shared trunks.
        num_layers (`int`, defaults to `2`): FiLM residual blocks per side.
        constellation (`str`, defaults to `"analog"`): `"analog"` or `"qam4"`/`"qam16"`/`"qam64"` (straight-through).

    Example:

    >>> import torch
    >>> from tokcom.modeling.channel import TokenChannel
    >>> coder = AdaptiveChannelCoder(16, symbols_per_token_choices=(4, 8), hidden_dim=32)
    >>> tokens = torch.randn(2, 5, 16)
    >>> coder.encode(tokens, snr_db=10.0, num_symbols_per_token=8).shape
    torch.Size([2, 40])
    >>> received = coder.transmit(tokens, torch.tensor([0.0, 20.0]), 4, TokenChannel(channel_type="rayleigh"))
    >>> received.shape
    torch.Size([2, 5, 16])
    """

    def __init__(
        self,
        token_dim: int,
        symbols_per_token_choices: tuple[int, ...] = (2, 4, 8, 16),
        hidden_dim: int = 128,
        num_layers: int = 2,
        constellation: str = "analog",
    ):
        super().__init__()
        for name, value in (("token_dim", token_dim), ("hidden_dim", hidden_dim), ("num_layers", num_layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive int, got {value!r}.")
        choices = tuple(symbols_per_token_choices)
        if not choices or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in choices):
            raise ValueError(f"`symbols_per_token_choices` must be positive ints, got {symbols_per_token_choices!r}.")
        _check_constellation(constellation)
        self.token_dim, self.symbols_per_token_choices, self.constellation = token_dim, choices, constellation
        self.snr_embed = nn.Sequential(nn.Linear(1, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, hidden_dim))
        self.encoder_in = nn.Linear(token_dim, hidden_dim)
        self.encoder_blocks = nn.ModuleList(_FiLMBlock(hidden_dim) for _ in range(num_layers))
        self.encoder_heads = nn.ModuleDict({str(k): nn.Linear(hidden_dim, 2 * k) for k in choices})
        self.decoder_heads = nn.ModuleDict({str(k): nn.Linear(2 * k, hidden_dim) for k in choices})
        self.decoder_blocks = nn.ModuleList(_FiLMBlock(hidden_dim) for _ in range(num_layers))
        self.decoder_out = nn.Linear(hidden_dim, token_dim)

    def extra_repr(self) -> str:
        rates = self.symbols_per_token_choices
        return f"token_dim={self.token_dim}, rates={rates}, constellation={self.constellation!r}"

    # -- checks ---------------------------------------------------------------------------------------------------
    def _check_rate(self, num_symbols_per_token) -> str:
        k, choices = num_symbols_per_token, self.symbols_per_token_choices
        if isinstance(k, bool) or not isinstance(k, int) or k not in choices:
            raise ValueError(f"`num_symbols_per_token` must be one of {choices}, got {k!r}.")
        return str(k)

    def _snr_embedding(self, snr_db, batch: int, device) -> torch.Tensor:
        """SNR [dB] (number or `(batch,)`, NaN/too low refused by the channel's check) -> `(batch, hidden)`."""
        noise_power_from_snr_db(snr_db, batch, device)  # validates: ValueError naming `snr_db`
        snr = torch.as_tensor(snr_db, dtype=torch.float32, device=device).expand(batch)
        snr = snr.clamp(*SNR_EMBED_RANGE_DB)
        return self.snr_embed(((snr - 10.0) / 20.0).unsqueeze(-1))

    # -- T(.) and R(.) --------------------------------------------------------------------------------------------
    def encode(self, tokens: torch.Tensor, snr_db, num_symbols_per_token: int, constellation: str | None = None,
               token_mask: torch.Tensor | None = None):
        r"""T(.) of eq. (1): tokens `(batch, tokens, token_dim)` -> complex64 symbols `(batch, tokens * k)`.

        `snr_db` [dB]: number or `(batch,)` tensor. Analog: `(1/N) ||z||^2 = 1` per sample; QAM: points on the grid,
        `(1/N) ||z||^2 <= 1` per sample. `token_mask` `(batch, tokens)` (1 = sent): padding tokens get zero symbols
        and N counts the sent tokens' symbols only, so a sample's symbols do not depend on how it was padded.
        """
        if not isinstance(tokens, torch.Tensor) or tokens.dim() != 3 or tokens.shape[-1] != self.token_dim:
            shape = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__
            raise ValueError(f"`tokens` must have shape (batch, tokens, {self.token_dim}), got {shape}.")
        key = self._check_rate(num_symbols_per_token)
        k = int(key)
        constellation = self.constellation if constellation is None else constellation
        _check_constellation(constellation)
        batch, num_tokens, _ = tokens.shape
        if token_mask is not None and tuple(token_mask.shape) != (batch, num_tokens):
            raise ValueError(f"`token_mask` must have shape ({batch}, {num_tokens}), got {tuple(token_mask.shape)}.")
        # 1. SNR embedding and the shared FiLM trunk
        embedding = self._snr_embedding(snr_db, batch, tokens.device)
        h = self.encoder_in(tokens.float())
        for block in self.encoder_blocks:
            h = block(h, embedding)
        # 2. rate head: 2k reals per token -> (batch, tokens * k, 2) real pairs
        reals = self.encoder_heads[key](h)
        num_symbols = torch.full((batch, 1, 1), float(reals.shape[1] * k), device=reals.device)
        if token_mask is not None:  # padding sends nothing
            reals = reals * token_mask.to(device=reals.device, dtype=reals.dtype).unsqueeze(-1)
            num_symbols = token_mask.float().sum(dim=1).clamp_min(1.0).mul(k).view(batch, 1, 1).to(reals.device)
        reals = reals.reshape(batch, -1, 2)
        # 3. power constraint of eq. (1), (1/N) ||z||^2 = P = 1 per sample
        reals = reals / reals.pow(2).sum(dim=(1, 2), keepdim=True).div(num_symbols).clamp_min(1e-12).sqrt()
        # 4. optional digital constellation (straight-through)
        if constellation != "analog":
            symbol_mask = None if token_mask is None else token_mask.to(reals.device).repeat_interleave(k, dim=1)
            reals = qam_straight_through(reals, constellation, symbol_mask=symbol_mask)
        return torch.view_as_complex(reals.contiguous())

    def decode(self, symbols: torch.Tensor, snr_db, num_symbols_per_token: int) -> torch.Tensor:
        r"""R(.): received complex symbols `(batch, tokens * k)` -> tokens `(batch, tokens, token_dim)` (float32)."""
        key = self._check_rate(num_symbols_per_token)
        k = int(key)
        is_symbols = isinstance(symbols, torch.Tensor) and symbols.is_complex() and symbols.dim() == 2
        if not is_symbols or symbols.shape[1] % k:
            shape = tuple(symbols.shape) if isinstance(symbols, torch.Tensor) else type(symbols).__name__
            raise ValueError(f"`symbols` must be a complex tensor of shape (batch, tokens * {k}), got {shape}.")
        batch = symbols.shape[0]
        embedding = self._snr_embedding(snr_db, batch, symbols.device)
        reals = torch.view_as_real(symbols).reshape(batch, -1, 2 * k).float()
        h = self.decoder_heads[key](reals)
        for block in self.decoder_blocks:
            h = block(h, embedding)
        return self.decoder_out(h)

    def transmit(
        self,
        tokens: torch.Tensor,
        snr_db,
        num_symbols_per_token: int,
        channel: TokenChannel,
        generator: torch.Generator | None = None,
        channel_type: str | None = None,
        constellation: str | None = None,
        token_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        r"""T -> `TokenChannel` (eq. 2) -> R: tokens `(batch, tokens, token_dim)` -> received tokens, same shape/dtype.

        `snr_db` [dB] (number or `(batch,)`) both conditions T/R and sets the channel noise; `channel_type` and
        `generator` are passed to `channel`. `token_mask` `(batch, tokens)` (1 = sent): padding is not sent and
        comes back as zeros.
        """
        if not isinstance(channel, nn.Module) or not hasattr(channel, "channel_type"):  # duck-typed: Hub copies differ
            raise ValueError(f"`channel` must be a TokenChannel, got {type(channel).__name__}.")
        k = int(self._check_rate(num_symbols_per_token))
        # 1. z = T(t), eq. (1)
        symbols = self.encode(tokens, snr_db, k, constellation=constellation, token_mask=token_mask)
        batch, num_tokens = tokens.shape[:2]
        # 2. z^ = h z + n, eq. (2): TokenChannel takes real pairs (batch, tokens, 2k)
        pairs = torch.view_as_real(symbols).reshape(batch, num_tokens, 2 * k)
        received = channel(pairs, snr_db=snr_db, generator=generator, channel_type=channel_type, token_mask=token_mask)
        received = torch.view_as_complex(received.float().reshape(batch, -1, 2).contiguous())
        # 3. t^ = R(z^)
        decoded = self.decode(received, snr_db, k)
        if token_mask is not None:
            decoded = decoded * token_mask.to(device=decoded.device, dtype=decoded.dtype).unsqueeze(-1)
        return decoded.to(tokens.dtype)


__all__ = ["CONSTELLATIONS", "AdaptiveChannelCoder", "qam_levels", "qam_straight_through"]
