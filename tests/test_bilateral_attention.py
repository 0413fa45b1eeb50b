"""BAN (TaiChi eqs. 5-7): shapes, locality of the windowed attention, the eq. 7 fusion, gradients, bf16, errors,
and the token-budget pooling."""

import doctest

import pytest
import torch

import modeling.bilateral_attention as ban_module
from modeling.bilateral_attention import BilateralAttention, pool_tokens, pooled_grid

torch.set_num_threads(1)


def make(dim=16, heads=4, fine_dim=None, window=1, seed=0):
    torch.manual_seed(seed)
    return BilateralAttention(dim, num_heads=heads, fine_dim=fine_dim, coarse_window=window).eval()


def inputs(batch, coarse_grid, r, dim=16, fine_dim=None, seed=1):
    g = torch.Generator().manual_seed(seed)
    h, w = coarse_grid
    coarse = torch.randn(batch, h * w, dim, generator=g)
    fine = torch.randn(batch, h * r * w * r, fine_dim or dim, generator=g)
    return coarse, fine


def changed_cells(a, b, grid, atol=1e-6):
    """Set of (row, col) coarse cells whose fused token differs (batch 0)."""
    diff = (a - b).abs().amax(dim=-1)[0]
    return {divmod(i, grid[1]) for i in torch.nonzero(diff > atol).flatten().tolist()}


@pytest.mark.parametrize("r", [2, 4])
@pytest.mark.parametrize("window", [1, 3])
def test_output_shapes(r, window):
    grid = (3, 5)
    ban = make(fine_dim=8, window=window)
    coarse, fine = inputs(2, grid, r, fine_dim=8)
    out = ban(coarse, fine, coarse_grid=grid, fine_grid=(3 * r, 5 * r))
    assert out.fused.shape == (2, 15, 16)
    assert out[0] is out.fused
    assert out.coarse_attended.shape == (2, 15, 16) and out.fine_pooled.shape == (2, 15, 16)
    assert out.fine_attended.shape == (2, 15 * r * r, 16)
    assert torch.isfinite(out.fused).all()


def test_square_grids_are_inferred_and_default_window_is_3():
    assert BilateralAttention(16, num_heads=4).coarse_window == 3
    ban = make()
    coarse, fine = inputs(1, (4, 4), 2)
    torch.testing.assert_close(ban(coarse, fine).fused, ban(coarse, fine, (4, 4), (8, 8)).fused)


@pytest.mark.parametrize("window", [1, 3])
@pytest.mark.parametrize("r", [2, 4])
def test_fine_token_reaches_only_the_coarse_cell_above_it(window, r):
    grid = (4, 5)
    ban = make(window=window)
    coarse, fine = inputs(1, grid, r)
    fine_grid = (grid[0] * r, grid[1] * r)
    with torch.no_grad():
        base = ban(coarse, fine, grid, fine_grid)
        for fr, fc in [(0, 0), (r * 2 + 1, r * 3 + r - 1), (fine_grid[0] - 1, fine_grid[1] - 1)]:
            perturbed = fine.clone()
            perturbed[0, fr * fine_grid[1] + fc] += 3.0
            out = ban(coarse, perturbed, grid, fine_grid)
            assert changed_cells(base.fused, out.fused, grid) == {(fr // r, fc // r)}
            # V'_h (eq. 5): only the perturbed fine token's own output moves (through its query); with one key
            # (window 1) the softmax is 1 and V'_h does not depend on the fine tokens at all
            moved = (out.fine_attended - base.fine_attended).abs().amax(-1)[0] > 1e-6
            expected = [fr * fine_grid[1] + fc] if window > 1 else []
            assert torch.nonzero(moved).flatten().tolist() == expected


@pytest.mark.parametrize("window", [1, 3])
def test_coarse_token_reaches_only_its_window(window):
    grid, r = (5, 6), 2
    ban = make(window=window)
    coarse, fine = inputs(1, grid, r)
    with pytest.raises(ValueError, match="fine_grid"):  # 10x12 is not square: it must be passed
        ban(coarse, fine, grid)
    with torch.no_grad():
        base = ban(coarse, fine, grid, (10, 12))
        for cr, cc in [(2, 3), (0, 0), (4, 5)]:
            perturbed = coarse.clone()
            perturbed[0, cr * grid[1] + cc] += 3.0
            out = ban(perturbed, fine, grid, (10, 12))
            half = window // 2
            allowed = {(i, j) for i in range(cr - half, cr + half + 1) for j in range(cc - half, cc + half + 1)
                       if 0 <= i < grid[0] and 0 <= j < grid[1]}
            changed = changed_cells(base.fused, out.fused, grid)
            assert (cr, cc) in changed and changed <= allowed
            if window == 3:  # the neighbours really are reached through eq. 5
                assert changed == allowed


def test_fusion_is_eq_7():
    grid, r = (3, 4), 2
    ban = make(fine_dim=12, window=3)
    coarse, fine = inputs(2, grid, r, fine_dim=12)
    with torch.no_grad():
        out = ban(coarse, fine, grid, (6, 8))
    pooled = torch.nn.functional.avg_pool2d(out.fine_attended.transpose(1, 2).reshape(2, 16, 6, 8), r)
    pooled = pooled.flatten(2).transpose(1, 2)
    torch.testing.assert_close(out.fine_pooled, pooled)
    torch.testing.assert_close(out.fused, coarse + out.coarse_attended + pooled)


def test_window_one_is_the_projection_of_the_parent_token():
    """With one key the softmax is 1: eq. 5 gives W_V,h V_l at the parent cell for every fine token."""
    grid, r = (2, 3), 2
    ban = make()
    coarse, fine = inputs(1, grid, r)
    with torch.no_grad():
        out = ban(coarse, fine, grid, (4, 6))
        expected = ban.v_h(coarse).reshape(1, 2, 1, 3, 1, 16).expand(1, 2, r, 3, r, 16).reshape(1, 24, 16)
    torch.testing.assert_close(out.fine_attended, expected)


def test_bottom_up_matches_a_dense_reference():
    """Eq. 6 against a loop over coarse cells with torch's own multi-head attention maths."""
    grid, r, heads = (2, 2), 2, 4
    ban = make(heads=heads)
    coarse, fine = inputs(1, grid, r)
    with torch.no_grad():
        out = ban(coarse, fine, grid, (4, 4))
        fine_map = fine.reshape(1, 4, 4, 16)
        for i in range(2):
            for j in range(2):
                window = fine_map[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2].reshape(1, 4, 16)
                q = ban.q_l(coarse[:, i * 2 + j:i * 2 + j + 1]).reshape(1, 1, heads, 4).transpose(1, 2)
                k = ban.k_l(window).reshape(1, 4, heads, 4).transpose(1, 2)
                v = ban.v_l(window).reshape(1, 4, heads, 4).transpose(1, 2)
                ref = torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(1, 16)
                torch.testing.assert_close(out.coarse_attended[:, i * 2 + j], ref)


@pytest.mark.parametrize("window", [1, 3])
def test_gradients_reach_both_streams_and_all_projections(window):
    ban = make(fine_dim=8, window=window).train()
    coarse, fine = inputs(2, (3, 3), 2, fine_dim=8)
    coarse.requires_grad_(True)
    fine.requires_grad_(True)
    ban(coarse, fine).fused.square().mean().backward()
    assert coarse.grad.abs().sum() > 0 and fine.grad.abs().sum() > 0
    for name, p in ban.named_parameters():
        assert p.grad is not None, name
        if window == 1 and name.startswith(("q_h", "k_h")):  # one key: softmax == 1, no gradient (documented)
            assert p.grad.abs().sum() == 0, name
        else:
            assert p.grad.abs().sum() > 0, name


def test_bf16_forward_on_cpu():
    ban = make(window=3).to(torch.bfloat16)
    coarse, fine = inputs(2, (4, 4), 2)
    out = ban(coarse.bfloat16(), fine.bfloat16())
    assert out.fused.dtype == torch.bfloat16 and out.fine_attended.dtype == torch.bfloat16
    assert torch.isfinite(out.fused.float()).all()
    ref = make(window=3)(coarse, fine).fused
    assert (out.fused.float() - ref).abs().max() < 0.1 * ref.abs().max()
    pooled, grid = pool_tokens(out.fused, (4, 4), 4)
    assert pooled.dtype == torch.bfloat16 and grid == (2, 2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(dim=16, num_heads=3), "num_heads"),
        (dict(dim=0), "dim"),
        (dict(dim=16, fine_dim=-1), "fine_dim"),
        (dict(dim=16, coarse_window=2), "coarse_window"),
        (dict(dim=16, coarse_window=0), "coarse_window"),
    ],
)
def test_bad_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BilateralAttention(**kwargs)


def test_bad_inputs():
    ban = make(fine_dim=8)
    coarse, fine = inputs(2, (4, 4), 2, fine_dim=8)
    with pytest.raises(ValueError, match="dim=16"):
        ban(coarse[..., :12], fine)
    with pytest.raises(ValueError, match="fine_dim=8"):
        ban(coarse, torch.randn(2, 64, 16))
    with pytest.raises(ValueError, match="batch"):
        ban(coarse, fine[:1])
    with pytest.raises(ValueError, match="batch, tokens, dim"):
        ban(coarse[0], fine)
    with pytest.raises(ValueError, match="fine_grid"):  # non-integer ratio: 4x4 coarse, 6x6 fine
        ban(coarse, torch.randn(2, 36, 8))
    with pytest.raises(ValueError, match="fine_grid"):  # different ratios per axis
        ban(coarse, torch.randn(2, 128, 8), (4, 4), (8, 16))
    with pytest.raises(ValueError, match="coarse_grid"):  # grid does not hold the tokens
        ban(coarse, fine, (3, 4), (8, 8))
    with pytest.raises(ValueError, match="coarse_grid"):  # 15 tokens: not square, no grid given
        ban(coarse[:, :15], fine)
    with pytest.raises(ValueError, match="coarse_grid"):
        ban(coarse, fine, (4.0, 4), (8, 8))


@pytest.mark.parametrize(
    "grid, budget, expected",
    [((4, 4), 16, (4, 4)), ((4, 4), 100, (4, 4)), ((4, 4), 9, (3, 3)), ((4, 4), 10, (3, 3)),
     ((4, 4), 8, (4, 2)), ((4, 4), 5, (2, 2)), ((4, 4), 1, (1, 1)), ((3, 6), 8, (2, 4)), ((24, 24), 144, (12, 12))],
)
def test_pool_tokens_grid(grid, budget, expected):
    assert pooled_grid(grid, budget) == expected
    tokens = torch.randn(2, grid[0] * grid[1], 8)
    pooled, new_grid = pool_tokens(tokens, grid, budget)
    assert new_grid == expected and pooled.shape == (2, expected[0] * expected[1], 8)
    assert new_grid[0] * new_grid[1] <= budget
    if new_grid == grid:
        assert pooled is tokens


def test_pool_tokens_values_and_sequence_mode():
    tokens = torch.arange(16.0).reshape(1, 16, 1)  # 4x4 grid holding its raster index
    pooled, grid = pool_tokens(tokens, None, 4)
    assert grid == (2, 2)
    torch.testing.assert_close(pooled.flatten(), torch.tensor([2.5, 4.5, 10.5, 12.5]))
    pooled, grid = pool_tokens(tokens, (4, 4), 5, mode="sequence")
    assert grid == (1, 5) and pooled.shape == (1, 5, 1)
    pooled, grid = pool_tokens(tokens, (4, 4), 2, mode="sequence")
    torch.testing.assert_close(pooled.flatten(), torch.tensor([3.5, 11.5]))
    assert pool_tokens(tokens, (4, 4), 20, mode="sequence")[0] is tokens


def test_pool_tokens_errors():
    tokens = torch.randn(1, 16, 4)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="num_tokens"):
            pool_tokens(tokens, (4, 4), bad)
        with pytest.raises(ValueError, match="num_tokens"):
            pool_tokens(tokens, (4, 4), bad, mode="sequence")
    with pytest.raises(ValueError, match="mode"):
        pool_tokens(tokens, (4, 4), 4, mode="2d")
    with pytest.raises(ValueError, match="grid"):
        pool_tokens(tokens, (3, 4), 4)
    with pytest.raises(ValueError, match="tokens"):
        pool_tokens(tokens[0], (4, 4), 4)


def test_module_imports_only_torch_and_its_docstring_runs():
    source = open(ban_module.__file__).read()
    imports = {line.split()[1].split(".")[0] for line in source.splitlines()
               if line.startswith(("import ", "from "))}
    assert imports <= {"__future__", "math", "typing", "torch"}, imports
    result = doctest.testmod(ban_module)
    assert result.attempted > 0 and result.failed == 0
