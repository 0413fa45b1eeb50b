"""TaiChi's Bilateral Attention Network (BAN, Sec. III-B, eqs. 5-7 of `taichi-vlm-tokencom.txt`) and token pooling.

Reading of eqs. 5-7 (the prose calls `V_h` "high-level" and `V_l` "low-level detailed" features, which
contradicts Sec. III-A, where the LR ViT gives the global "what" and the HR CNN the detail; the equations are
unambiguous only under this reading):

- subscripts name the *resolution*: `V_l` are the coarse tokens of the LR tokenizer (eqs. 1-3, global
  concepts) on an `H_l x W_l` grid, `V_h` the fine tokens of the HR tokenizer (eq. 4, local detail) on an
  `H_h x W_h = r H_l x r W_l` grid. Eq. 7 pools `V'_h` "to align spatial resolutions" with `V_l`, so `V'_h`
  lives on the fine grid and the output on the coarse grid: only this reading makes eq. 7 well-formed.
- eq. 5 (called "top-down" in the paper): each fine token `V_h,i` is the query; its keys and values are the
  coarse token(s) spatially aligned with it: the coarse token above it (`coarse_window=1`) or that token's
  `k x k` coarse neighbourhood (`coarse_window=k`, odd; positions outside the grid are masked). Output
  `V'_h`: one token per fine position, in the coarse width `dim`.
  With `coarse_window=1` (the paper's literal one-to-one correspondence) there is a single key, the softmax is
  1, and eq. 5 reduces to `W_V,h V_l,parent(i)`: `V'_h` ignores the fine tokens and `W_Q,h`, `W_K,h` get no
  gradient. The default is therefore `coarse_window=3`, where each fine token chooses among 9 coarse keys.
- eq. 6 ("bottom-up"): each coarse token `V_l,i` is the query; its keys and values are the `r x r` fine tokens
  under it. Output `V'_l` on the coarse grid.
- eq. 7: `V = V_l + V'_l + Pool(V'_h)`, with `Pool` the average over each `r x r` fine window.

Consequences (tested): a fine token reaches the fused output only at the coarse position above it (through its
own keys in eq. 6 and its own query in eq. 5), whatever `coarse_window`; a coarse token reaches the fused output
at its own position, and with `coarse_window=k` also at the `k x k` coarse positions around it (through eq. 5).

Heads: both branches are multi-head (`num_heads` heads of `dim // num_heads` channels each, concatenated);
there is no output projection `W_O`, as in eqs. 5-6. The fine stream may have its own width `fine_dim`
(CLIP-L 1024 vs ConvNeXt-L 1536); `W_Q,h`, `W_K,l` and `W_V,l` take it to `dim`. Tokens enter as given: strip
CLS tokens and flatten channel-first CNN maps (`(batch, C, H, W)` -> `flatten(2).transpose(1, 2)`, raster
order) before calling. No normalization is applied (the paper has none in eqs. 5-7).

Only `torch` is imported: this file ships as Hub remote code.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BilateralAttention", "BilateralAttentionOutput", "pool_tokens", "pooled_grid"]


class BilateralAttentionOutput(NamedTuple):
    """Outputs of `BilateralAttention`; index 0 is the fused token set.

    fused: `(batch, H_l*W_l, dim)`, `V` of eq. 7.
    coarse_attended: `(batch, H_l*W_l, dim)`, `V'_l` of eq. 6.
    fine_attended: `(batch, H_h*W_h, dim)`, `V'_h` of eq. 5 (the updated fine tokens, raster order).
    fine_pooled: `(batch, H_l*W_l, dim)`, `Pool(V'_h)` of eq. 7.
    """

    fused: torch.Tensor
    coarse_attended: torch.Tensor
    fine_attended: torch.Tensor
    fine_pooled: torch.Tensor


def _square_grid(num_tokens: int, name: str) -> tuple[int, int]:
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise ValueError(f"{name} must be given: {num_tokens} tokens do not form a square grid")
    return side, side


def _check_grid(grid, num_tokens: int, name: str) -> tuple[int, int]:
    if grid is None:
        return _square_grid(num_tokens, name)
    if len(grid) != 2 or any(isinstance(g, bool) or not isinstance(g, int) or g < 1 for g in grid):
        raise ValueError(f"{name} must be two positive ints (height, width), got {grid!r}")
    if grid[0] * grid[1] != num_tokens:
        raise ValueError(f"{name}={tuple(grid)} holds {grid[0] * grid[1]} tokens, but the input has {num_tokens}")
    return int(grid[0]), int(grid[1])


class BilateralAttention(nn.Module):
    """Localized bilateral attention between coarse (LR) and fine (HR) visual tokens, eqs. 5-7.

    Args:
        dim: width `d` of the coarse tokens `V_l` and of every output.
        num_heads: attention heads; must divide `dim`.
        fine_dim: width of the fine tokens `V_h` (default `dim`).
        coarse_window: odd `k`; each fine token attends to the `k x k` coarse tokens centred on the one above
            it. 1 is the paper's one-to-one correspondence, where eq. 5 degenerates to a linear map of the
            parent coarse token (see the module docstring); default 3.
        bias: biases in the projections.

    Shapes: `coarse` `(batch, H_l*W_l, dim)`, `fine` `(batch, H_h*W_h, fine_dim)` with `H_h = r H_l`,
    `W_h = r W_l`, `r` a positive integer, both in raster (row-major) order. Returns a
    `BilateralAttentionOutput`; `out.fused` is `(batch, H_l*W_l, dim)`. Cost is `O(H_h W_h (r^2 + k^2) dim)`.

    Example:
        >>> ban = BilateralAttention(dim=64, num_heads=4, fine_dim=32, coarse_window=3)
        >>> v_l, v_h = torch.randn(2, 16, 64), torch.randn(2, 64, 32)  # 4x4 coarse, 8x8 fine grid (r = 2)
        >>> out = ban(v_l, v_h, coarse_grid=(4, 4), fine_grid=(8, 8))
        >>> tuple(out.fused.shape), tuple(out.fine_attended.shape)
        ((2, 16, 64), (2, 64, 64))
        >>> tokens, grid = pool_tokens(out.fused, (4, 4), num_tokens=9)
        >>> tuple(tokens.shape), grid
        ((2, 9, 64), (3, 3))
    """

    def __init__(self, dim: int, num_heads: int = 8, fine_dim: int | None = None, coarse_window: int = 3,
                 bias: bool = True):
        super().__init__()
        fine_dim = dim if fine_dim is None else fine_dim
        for name, value in (("dim", dim), ("num_heads", num_heads), ("fine_dim", fine_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if dim % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide dim={dim}")
        if isinstance(coarse_window, bool) or not isinstance(coarse_window, int) or coarse_window < 1 \
                or coarse_window % 2 == 0:
            raise ValueError(f"coarse_window must be a positive odd int (1, 3, ...), got {coarse_window!r}")
        self.dim, self.fine_dim, self.num_heads, self.coarse_window = dim, fine_dim, num_heads, coarse_window
        self.head_dim = dim // num_heads
        # eq. 5 (fine queries the coarse tokens aligned with it): W_Q,h, W_K,h, W_V,h
        self.q_h = nn.Linear(fine_dim, dim, bias=bias)
        self.k_h = nn.Linear(dim, dim, bias=bias)
        self.v_h = nn.Linear(dim, dim, bias=bias)
        # eq. 6 (coarse queries the r x r fine tokens under it): W_Q,l, W_K,l, W_V,l
        self.q_l = nn.Linear(dim, dim, bias=bias)
        self.k_l = nn.Linear(fine_dim, dim, bias=bias)
        self.v_l = nn.Linear(fine_dim, dim, bias=bias)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None):
        """Softmax(q k^T / sqrt(d_k)) v per head. q `(..., Lq, dim)`, k/v `(..., Lk, dim)` -> `(..., Lq, dim)`."""
        h, c = self.num_heads, self.head_dim
        q = q.unflatten(-1, (h, c)).transpose(-2, -3)  # (..., heads, Lq, c)
        k = k.unflatten(-1, (h, c)).transpose(-2, -3)
        v = v.unflatten(-1, (h, c)).transpose(-2, -3)
        scores = (q @ k.transpose(-1, -2)).float() / math.sqrt(c)  # softmax in float32, cast back
        if mask is not None:  # mask: (..., Lk) True where the key exists
            scores = scores.masked_fill(~mask.unsqueeze(-2).unsqueeze(-2), float("-inf"))
        out = scores.softmax(dim=-1).to(v.dtype) @ v
        return out.transpose(-2, -3).flatten(-2)

    def forward(self, coarse: torch.Tensor, fine: torch.Tensor, coarse_grid: tuple[int, int] | None = None,
                fine_grid: tuple[int, int] | None = None) -> BilateralAttentionOutput:
        """Fuse `coarse` (`V_l`, `(batch, H_l*W_l, dim)`) and `fine` (`V_h`, `(batch, H_h*W_h, fine_dim)`).

        Grids default to square ones. Raises `ValueError` on wrong ranks, widths, batch sizes or grids.
        """
        if coarse.dim() != 3 or fine.dim() != 3:
            raise ValueError(f"coarse and fine must be (batch, tokens, dim), got {tuple(coarse.shape)} and "
                             f"{tuple(fine.shape)}")
        if coarse.shape[-1] != self.dim:
            raise ValueError(f"coarse has width {coarse.shape[-1]}, expected dim={self.dim}")
        if fine.shape[-1] != self.fine_dim:
            raise ValueError(f"fine has width {fine.shape[-1]}, expected fine_dim={self.fine_dim}")
        if coarse.shape[0] != fine.shape[0]:
            raise ValueError(f"fine has batch {fine.shape[0]} but coarse has batch {coarse.shape[0]}")
        h_l, w_l = _check_grid(coarse_grid, coarse.shape[1], "coarse_grid")
        h_h, w_h = _check_grid(fine_grid, fine.shape[1], "fine_grid")
        if h_h % h_l or w_h % w_l or h_h // h_l != w_h // w_l:
            raise ValueError(f"fine_grid={(h_h, w_h)} must be r times coarse_grid={(h_l, w_l)} for one integer r")
        r, b, d, k = h_h // h_l, coarse.shape[0], self.dim, self.coarse_window

        # 1. fine tokens grouped by the coarse cell above them: (batch, H_l*W_l, r*r, fine_dim)
        windows = fine.reshape(b, h_l, r, w_l, r, -1).permute(0, 1, 3, 2, 4, 5).reshape(b, h_l * w_l, r * r, -1)

        # 2. eq. 6: each coarse token queries the r x r fine tokens under it -> V'_l (batch, H_l*W_l, dim)
        coarse_attended = self._attend(self.q_l(coarse).unsqueeze(-2), self.k_l(windows),
                                       self.v_l(windows)).squeeze(-2)

        # 3. eq. 5: each fine token queries the k x k coarse neighbourhood of its coarse cell -> V'_h
        keys, values, mask = self.k_h(coarse), self.v_h(coarse), None
        if k > 1:  # gather neighbourhoods with unfold: (batch, H_l*W_l, k*k, dim); off-grid keys masked
            def neighbourhoods(x: torch.Tensor) -> torch.Tensor:
                x = x.transpose(1, 2).reshape(b, d, h_l, w_l)
                return F.unfold(x, k, padding=k // 2).reshape(b, d, k * k, h_l * w_l).permute(0, 3, 2, 1)
            keys, values = neighbourhoods(keys), neighbourhoods(values)
            ones = torch.ones(1, 1, h_l, w_l, device=coarse.device)
            mask = F.unfold(ones, k, padding=k // 2).transpose(1, 2) > 0  # (1, H_l*W_l, k*k)
        else:
            keys, values = keys.unsqueeze(-2), values.unsqueeze(-2)  # (batch, H_l*W_l, 1, dim)
        fine_by_cell = self._attend(self.q_h(windows), keys, values, mask)  # (batch, H_l*W_l, r*r, dim)
        fine_attended = (fine_by_cell.reshape(b, h_l, w_l, r, r, d).permute(0, 1, 3, 2, 4, 5)
                         .reshape(b, h_h * w_h, d))

        # 4. eq. 7: V = V_l + V'_l + Pool(V'_h), Pool = mean over each r x r window
        fine_pooled = fine_by_cell.mean(dim=-2)
        fused = coarse + coarse_attended + fine_pooled
        return BilateralAttentionOutput(fused, coarse_attended, fine_attended, fine_pooled)


def pooled_grid(grid: tuple[int, int], num_tokens: int) -> tuple[int, int]:
    """The `(h, w)` with `h <= H`, `w <= W`, `h*w <= num_tokens` holding the most tokens; ties go to the aspect
    ratio closest to `H/W`, then to more rows. `grid` itself when it already fits."""
    if isinstance(num_tokens, bool) or not isinstance(num_tokens, int) or num_tokens < 1:
        raise ValueError(f"num_tokens must be a positive int, got {num_tokens!r}")
    rows, cols = grid
    best = None
    for h in range(1, rows + 1):
        w = min(cols, num_tokens // h)
        if w < 1:
            break
        key = (h * w, -abs(math.log(h / w) - math.log(rows / cols)), h)
        if best is None or key > best[0]:
            best = (key, (h, w))
    return best[1]


def pool_tokens(tokens: torch.Tensor, grid: tuple[int, int] | None, num_tokens: int,
                mode: str = "grid") -> tuple[torch.Tensor, tuple[int, int]]:
    """Reduce a token grid to a budget of at most `num_tokens` tokens by adaptive average pooling.

    Args:
        tokens: `(batch, H*W, dim)` in raster order, e.g. `BilateralAttention(...)(...).fused`.
        grid: `(H, W)`; `None` for a square grid.
        num_tokens: the budget (>= 1), the number of visual tokens the caller wants to send.
        mode: `"grid"` (2-D adaptive average pooling to `pooled_grid(grid, num_tokens)`, which keeps the spatial
            layout and may give fewer than `num_tokens` tokens, e.g. 8 for a budget of 8 on 4x4 but 9 (3x3) for
            10) or `"sequence"` (1-D adaptive average pooling of the raster sequence to exactly
            `min(num_tokens, H*W)` tokens; windows can straddle row ends).

    Returns:
        `(pooled, new_grid)`: `pooled` `(batch, h*w, dim)` and its grid (`(1, n)` in `"sequence"` mode). The
        input is returned unchanged when it already fits the budget. dtype and device follow `tokens`.
    """
    if mode not in ("grid", "sequence"):
        raise ValueError(f"mode must be 'grid' or 'sequence', got {mode!r}")
    if tokens.dim() != 3:
        raise ValueError(f"tokens must be (batch, tokens, dim), got {tuple(tokens.shape)}")
    rows, cols = _check_grid(grid, tokens.shape[1], "grid")
    if mode == "sequence":
        if isinstance(num_tokens, bool) or not isinstance(num_tokens, int) or num_tokens < 1:
            raise ValueError(f"num_tokens must be a positive int, got {num_tokens!r}")
        if num_tokens >= rows * cols:
            return tokens, (rows, cols)
        pooled = F.adaptive_avg_pool1d(tokens.transpose(1, 2), num_tokens).transpose(1, 2)
        return pooled, (1, num_tokens)
    h, w = pooled_grid((rows, cols), num_tokens)
    if (h, w) == (rows, cols):
        return tokens, (rows, cols)
    x = tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], rows, cols)
    pooled = F.adaptive_avg_pool2d(x, (h, w)).flatten(2).transpose(1, 2)
    return pooled, (h, w)
