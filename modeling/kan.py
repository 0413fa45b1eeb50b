"""Kolmogorov-Arnold layers and the KAN projector of TaiChi (Sec. III-C, eqs. 8-10 of `taichi-vlm-tokencom.txt`).

A KA layer (eq. 8) maps `x` of width `d_in` to `f(x)_j = sum_i phi_{j,i}(x_i)`, one learnable univariate function per
edge. Each edge function is (eqs. 9-10)

    phi(x) = w_b SiLU(x) + w_s sum_c c_c B_c(x),

where `B_c` are B-spline bases of order `spline_order` (degree k) on a uniform grid of `grid_size` (G) intervals over
`grid_range`, extended by k knots on each side, so there are G + k bases per input feature. The bases are evaluated by
the Cox-de Boor recursion. Summing over `i` turns both branches into plain matrix products, which is how `KANLinear`
computes eq. 8 without ever building a `(batch, out, in)` tensor.

Outside the extended grid every basis is zero, and only inside `grid_range` do the bases sum to one (partition of
unity), so `KANProjector` bounds the input of each KA layer into `grid_range` first (see its docstring).

Shapes use named dimensions: `...` any leading dims, `in` = `in_features`, `out` = `out_features`, `n_bases` =
`grid_size + spline_order`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["KANLinear", "KANProjector", "b_spline_bases"]


def _check_grid(grid_size: int, spline_order: int, grid_range: tuple[float, float]) -> tuple[float, float]:
    if not isinstance(grid_size, int) or grid_size < 1:
        raise ValueError(f"grid_size must be an integer >= 1, got {grid_size!r}")
    if not isinstance(spline_order, int) or spline_order < 0:
        raise ValueError(f"spline_order must be an integer >= 0, got {spline_order!r}")
    if len(grid_range) != 2 or not float(grid_range[0]) < float(grid_range[1]):
        raise ValueError(f"grid_range must be (low, high) with low < high, got {grid_range!r}")
    return float(grid_range[0]), float(grid_range[1])


def b_spline_bases(x: torch.Tensor, grid_size: int, spline_order: int, grid_range: tuple[float, float]) -> torch.Tensor:
    """B-spline bases `B_c(x)` of eq. (10) by the Cox-de Boor recursion, computed in float32.

    Args:
        x: `(batch, in)` inputs.
    Returns:
        `(batch, in, grid_size + spline_order)` float32 bases; they sum to one for x in `grid_range` and are all zero
        outside the extended grid `[low - k h, high + k h)`, `h = (high - low) / grid_size`.
    """
    low, high = _check_grid(grid_size, spline_order, grid_range)
    k, h = spline_order, (high - low) / grid_size
    # 1. Uniform knots t_0 < ... < t_{G+2k}: the grid over [low, high] extended by k knots each side.
    knots = low + h * torch.arange(-k, grid_size + k + 1, device=x.device, dtype=torch.float32)
    x = x.to(torch.float32).unsqueeze(-1)  # (batch, in, 1)
    # 2. Order 0: indicator of the half-open knot interval [t_c, t_{c+1}), G + 2k of them.
    bases = ((x >= knots[:-1]) & (x < knots[1:])).to(torch.float32)
    # 3. Cox-de Boor: B_{c,p} = (x - t_c) / (t_{c+p} - t_c) B_{c,p-1}
    #                           + (t_{c+p+1} - x) / (t_{c+p+1} - t_{c+1}) B_{c+1,p-1};
    #    on a uniform grid both denominators are p h. Each step drops one basis, leaving G + k after k steps.
    for p in range(1, k + 1):
        left = (x - knots[: -(p + 1)]) / (p * h) * bases[..., :-1]
        right = (knots[p + 1 :] - x) / (p * h) * bases[..., 1:]
        bases = left + right
    return bases


class KANLinear(nn.Module):
    """One Kolmogorov-Arnold layer (eq. 8) with edge functions phi = w_b SiLU + w_s Spline (eqs. 9-10).

    `y = F.linear(SiLU(x), base_weight) + F.linear(bases(x).flatten, (spline_weight * spline_scaler).flatten)`:
    `base_weight` `(out, in)` is w_b, `spline_weight` `(out, in, n_bases)` the coefficients c, `spline_scaler`
    `(out, in)` the per-edge w_s (absent with `enable_spline_scaler=False`). No bias, as in eq. 8.

    Args:
        in_features, out_features: widths `d_in`, `d_out`.
        grid_size: number of grid intervals G (>= 1). spline_order: B-spline order k (>= 0; 3 = cubic).
        grid_range: `(low, high)`; the spline only acts on inputs in this range (zero beyond `k h` outside it).
        base_activation: module class for the base branch (SiLU, eq. 10).
        scale_noise: half-width of the uniform noise on the spline coefficients, divided by sqrt(in_features).
    Shapes: `(..., in)` -> `(..., out)`; output dtype = input dtype (compute in the weights' dtype, bases in float32).

    Example:
        >>> import torch
        >>> layer = KANLinear(4, 3, grid_size=5, spline_order=3)
        >>> layer(torch.rand(2, 7, 4) * 2 - 1).shape
        torch.Size([2, 7, 3])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        grid_size: int = 5,
        spline_order: int = 3,
        grid_range: tuple[float, float] = (-1.0, 1.0),
        base_activation: type[nn.Module] = nn.SiLU,
        scale_noise: float = 0.1,
        enable_spline_scaler: bool = True,
    ):
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.grid_range = _check_grid(grid_size, spline_order, grid_range)
        self.in_features, self.out_features = in_features, out_features
        self.grid_size, self.spline_order = grid_size, spline_order
        self.scale_noise = float(scale_noise)
        self.base_activation = base_activation()
        n_bases = grid_size + spline_order
        self.base_weight = nn.Parameter(torch.empty(out_features, in_features))
        self.spline_weight = nn.Parameter(torch.empty(out_features, in_features, n_bases))
        self.spline_scaler = nn.Parameter(torch.empty(out_features, in_features)) if enable_spline_scaler else None
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """w_b as `nn.Linear` (kaiming-uniform), c ~ U(-a, a) with a = scale_noise / sqrt(in), w_s = 1."""
        nn.init.kaiming_uniform_(self.base_weight, a=math.sqrt(5))
        bound = self.scale_noise / math.sqrt(self.in_features)
        nn.init.uniform_(self.spline_weight, -bound, bound)
        if self.spline_scaler is not None:
            nn.init.ones_(self.spline_scaler)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, grid_size={self.grid_size}, "
            f"spline_order={self.spline_order}, grid_range={self.grid_range}"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"x must have last dim in_features={self.in_features}, got shape {tuple(x.shape)}")
        lead, dtype = x.shape[:-1], self.base_weight.dtype
        flat = x.reshape(-1, self.in_features)
        # 1. Base branch of eq. (9): sum_i w_b[j, i] SiLU(x_i).
        base = F.linear(self.base_activation(flat.to(dtype)), self.base_weight)
        # 2. Spline branch of eqs. (9)-(10): sum_i w_s[j, i] sum_c c[j, i, c] B_c(x_i).
        bases = b_spline_bases(flat, self.grid_size, self.spline_order, self.grid_range).to(dtype)
        weight = self.spline_weight
        if self.spline_scaler is not None:
            weight = weight * self.spline_scaler.unsqueeze(-1)
        spline = F.linear(bases.flatten(1), weight.flatten(1))
        # 3. Eq. (8): the sum over inputs is done by both matmuls; restore the leading dims.
        return (base + spline).reshape(*lead, self.out_features).to(x.dtype)


class KANProjector(nn.Module):
    """TaiChi's modality projector P_zeta (eq. 11): a stack of `num_layers` KA layers (eq. 8) from the fused visual
    features to the LLM embedding width, each KA layer preceded by an input bound.

    The bound: every spline is zero outside the extended grid and the bases only form a partition of unity inside
    `grid_range`, so each KA layer sees `u = center + half_width * tanh(v)`, strictly inside `grid_range` for any
    finite input (exactly on its edge in float once tanh saturates, where the bases still sum to one for
    `spline_order >= 1`). With `bound="layernorm"`, `v = LayerNorm(x)` (learnable affine, one per layer) so typical
    features spread over the grid instead of piling up at its edges; with `bound="tanh"`, `v = x`.

    Args:
        in_features: visual feature width. out_features: LLM hidden width.
        hidden_features: width between KA layers (default `out_features`). num_layers: KA layers (>= 1).
        grid_size, spline_order, grid_range: as in `KANLinear`. bound: `"tanh"` or `"layernorm"`.
    Shapes: `(batch, n_tokens, in)` (or any `(..., in)`) -> `(..., out)`; output dtype = input dtype.

    Example:
        >>> import torch
        >>> proj = KANProjector(16, 32, num_layers=2, bound="layernorm")
        >>> proj(torch.randn(2, 9, 16) * 1e6).isfinite().all().item()
        True
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden_features: int | None = None,
        num_layers: int = 2,
        grid_size: int = 5,
        spline_order: int = 3,
        grid_range: tuple[float, float] = (-1.0, 1.0),
        bound: str = "tanh",
    ):
        super().__init__()
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"num_layers must be an integer >= 1, got {num_layers!r}")
        if bound not in ("tanh", "layernorm"):
            raise ValueError(f"bound must be 'tanh' or 'layernorm', got {bound!r}")
        low, high = _check_grid(grid_size, spline_order, grid_range)
        self.in_features, self.out_features, self.bound = in_features, out_features, bound
        self.center, self.half_width = (low + high) / 2, (high - low) / 2
        hidden = out_features if hidden_features is None else hidden_features
        widths = [in_features] + [hidden] * (num_layers - 1) + [out_features]
        self.norms = nn.ModuleList(
            nn.LayerNorm(w) if bound == "layernorm" else nn.Identity() for w in widths[:-1]
        )
        self.layers = nn.ModuleList(
            KANLinear(w_in, w_out, grid_size, spline_order, (low, high)) for w_in, w_out in zip(widths[:-1], widths[1:])
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"x must have last dim in_features={self.in_features}, got shape {tuple(x.shape)}")
        dtype, x = x.dtype, x.to(self.layers[0].base_weight.dtype)
        for norm, layer in zip(self.norms, self.layers):
            # 1. Bound into grid_range (LayerNorm optional), 2. one KA layer (eqs. 8-10).
            x = layer(self.center + self.half_width * torch.tanh(norm(x)))
        return x.to(dtype)
