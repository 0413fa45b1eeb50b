"""KANLinear / KANProjector (TaiChi eqs. 8-10): B-spline properties, gradients, shapes, bounds, fitting, errors."""

import pytest
import torch
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel

from tokcom.modeling.kan import KANLinear, KANProjector, b_spline_bases

torch.set_num_threads(1)


@pytest.mark.parametrize(
    "grid_size,spline_order,grid_range", [(5, 3, (-1.0, 1.0)), (7, 2, (-3.0, 0.5)), (1, 0, (0, 1))]
)
def test_bases_partition_of_unity_inside_grid(grid_size, spline_order, grid_range):
    low, high = grid_range
    x = torch.linspace(low, high, 2001)[:-1].reshape(500, 4)  # [low, high): 2000 points
    bases = b_spline_bases(x, grid_size, spline_order, grid_range)
    assert bases.shape == (500, 4, grid_size + spline_order)
    assert bases.dtype == torch.float32
    assert (bases >= -1e-7).all()
    torch.testing.assert_close(bases.sum(-1), torch.ones(500, 4), atol=1e-5, rtol=0)
    # cubic splines stay a partition of unity at the right edge (continuity)
    if spline_order >= 1:
        edge = b_spline_bases(torch.tensor([[high]]), grid_size, spline_order, grid_range)
        torch.testing.assert_close(edge.sum(-1), torch.ones(1, 1), atol=1e-5, rtol=0)


def test_bases_match_closed_form_cubic_on_uniform_grid():
    # On a uniform grid with h = 1 the cubic B-spline starting at knot t_c is the standard 1/6 (u^3, ...) piece.
    x = torch.tensor([[0.5]])  # grid [-2, 2], G=4, h=1: knots -5..5; x lies in [0, 1)
    bases = b_spline_bases(x, 4, 3, (-2.0, 2.0))[0, 0]
    u = 0.5
    expected = torch.tensor(
        [(1 - u) ** 3 / 6, (3 * u**3 - 6 * u**2 + 4) / 6, (-3 * u**3 + 3 * u**2 + 3 * u + 1) / 6, u**3 / 6]
    )
    # the four nonzero bases start at knots -3, -2, -1, 0 -> indices 2..5
    torch.testing.assert_close(bases[2:6], expected)
    assert bases[:2].abs().max() == 0 and bases[6:].abs().max() == 0


def test_bases_zero_outside_extended_grid():
    grid_size, k, (low, high) = 5, 3, (-1.0, 1.0)
    h = (high - low) / grid_size
    x = torch.tensor([[low - k * h - 1e-3, high + k * h + 1e-3, -1e6, 1e6, high + k * h]])
    assert b_spline_bases(x, grid_size, k, (low, high)).abs().max() == 0
    # between grid_range and the extended edge some basis is still active, but no longer summing to one
    partial = b_spline_bases(torch.tensor([[high + 1.5 * h]]), grid_size, k, (low, high)).sum()
    assert 0 < partial < 1


def test_gradients_reach_coefficients_base_weights_and_input():
    torch.manual_seed(0)
    layer = KANLinear(6, 4)
    x = (torch.rand(16, 6) * 2 - 1).requires_grad_()
    layer(x).square().sum().backward()
    for name, param in layer.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0


def test_shapes_with_leading_dims_and_no_batch():
    layer = KANLinear(5, 3, grid_size=4, spline_order=2)
    assert layer(torch.rand(2, 3, 7, 5)).shape == (2, 3, 7, 3)
    assert layer(torch.rand(5)).shape == (3,)
    proj = KANProjector(5, 8, hidden_features=6, num_layers=3)
    assert proj(torch.randn(2, 11, 5)).shape == (2, 11, 8)
    assert [(m.in_features, m.out_features) for m in proj.layers] == [(5, 6), (6, 6), (6, 8)]


@pytest.mark.parametrize("bound", ["tanh", "layernorm"])
def test_projector_finite_for_huge_inputs(bound):
    torch.manual_seed(0)
    proj = KANProjector(8, 16, bound=bound)
    x = torch.randn(3, 5, 8) * 1e6
    y = proj(x)
    assert y.isfinite().all()
    # the bound keeps the spline branch alive: with huge inputs the output still depends on the coefficients
    with torch.no_grad():
        proj.layers[0].spline_weight.add_(1.0)
    assert not torch.allclose(proj(x), y)


def test_unbounded_spline_is_silent_beyond_extended_grid():
    # Why the projector bounds: 5 lies beyond the extended grid of [-1, 1] (edge 2.2), so the spline is silent.
    torch.manual_seed(0)
    layer = KANLinear(4, 2)
    x = torch.full((1, 4), 5.0)
    before = layer(x)
    with torch.no_grad():
        layer.spline_weight.add_(1.0)
    torch.testing.assert_close(layer(x), before)


def test_kan_fits_sin_better_than_linear():
    torch.manual_seed(0)
    x = torch.linspace(-1, 1, 256).unsqueeze(-1)
    y = torch.sin(3.14159 * x)
    kan = KANLinear(1, 1, grid_size=8, spline_order=3)
    linear = nn.Linear(1, 1)
    losses = {}
    for name, model in (("kan", kan), ("linear", linear)):
        opt = torch.optim.Adam(model.parameters(), lr=0.02)
        for _ in range(300):
            opt.zero_grad()
            loss = (model(x) - y).square().mean()
            loss.backward()
            opt.step()
        losses[name] = (model(x) - y).square().mean().item()
    assert losses["kan"] < 1e-3, losses
    assert losses["kan"] < 0.05 * losses["linear"], losses


@pytest.mark.parametrize("weights_dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("input_dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("bound", ["tanh", "layernorm"])
def test_dtype_follows_input(weights_dtype, input_dtype, bound):
    torch.manual_seed(0)
    proj = KANProjector(6, 4, bound=bound).to(weights_dtype)
    x = torch.randn(2, 3, 6, dtype=input_dtype)
    y = proj(x)
    assert y.dtype == input_dtype and y.isfinite().all()
    layer = KANLinear(6, 4).to(weights_dtype)
    assert layer(x).dtype == input_dtype


def test_initialization_deterministic_and_sensible():
    torch.manual_seed(123)
    a = KANLinear(32, 16)
    torch.manual_seed(123)
    b = KANLinear(32, 16)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, msg=name)
    assert a.base_weight.abs().max() <= 1 / 32**0.5 + 1e-6  # kaiming-uniform(a=sqrt(5)) bound = 1/sqrt(fan_in)
    assert 0 < a.spline_weight.abs().max() <= 0.1 / 32**0.5
    torch.testing.assert_close(a.spline_scaler, torch.ones(16, 32))
    assert KANLinear(3, 2, enable_spline_scaler=False).spline_scaler is None


class _TinyConfig(PreTrainedConfig):
    model_type = "kan-test"


class _TinyModel(PreTrainedModel):
    config_class = _TinyConfig

    def __init__(self, config):
        super().__init__(config)
        self.projector = KANProjector(8, 4, bound="layernorm")
        self.post_init()


def test_parameters_survive_post_init():
    torch.manual_seed(7)
    reference = KANProjector(8, 4, bound="layernorm")
    torch.manual_seed(7)
    model = _TinyModel(_TinyConfig())
    for (name, p), q in zip(model.projector.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, msg=name)
    x = torch.randn(2, 8)
    torch.testing.assert_close(model.projector(x), reference(x))


@pytest.mark.parametrize(
    "kwargs,argument",
    [
        ({"grid_size": 0}, "grid_size"),
        ({"spline_order": -1}, "spline_order"),
        ({"grid_range": (1.0, 1.0)}, "grid_range"),
        ({"grid_range": (2.0, -1.0)}, "grid_range"),
    ],
)
def test_bad_grid_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        KANLinear(3, 2, **kwargs)
    with pytest.raises(ValueError, match=argument):
        KANProjector(3, 2, **kwargs)


def test_bad_sizes_and_inputs():
    with pytest.raises(ValueError, match="in_features"):
        KANLinear(0, 2)
    with pytest.raises(ValueError, match="out_features"):
        KANLinear(2, 0)
    with pytest.raises(ValueError, match="num_layers"):
        KANProjector(3, 2, num_layers=0)
    with pytest.raises(ValueError, match="bound"):
        KANProjector(3, 2, bound="clamp")
    with pytest.raises(ValueError, match="in_features=3"):
        KANLinear(3, 2)(torch.zeros(4, 5))
    with pytest.raises(ValueError, match="in_features=3"):
        KANProjector(3, 2)(torch.zeros(4, 5))
