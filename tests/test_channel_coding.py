"""AdaptiveChannelCoder (issue 15, eqs. 1-2 of unitocom-genib): power, QAM grid, STE, rates, a real learning check."""

import doctest
import math
import time

import pytest
import torch

import tokcom.modeling.channel_coding as channel_coding
from tokcom.modeling.channel import TokenChannel
from tokcom.modeling.channel_coding import AdaptiveChannelCoder, qam_levels, qam_straight_through

torch.set_num_threads(1)

RATES = (4, 8, 16)


def energy_per_sample(symbols: torch.Tensor) -> torch.Tensor:
    return symbols.abs().pow(2).mean(dim=1)


@pytest.mark.parametrize("k", RATES)
def test_analog_power_is_unit_per_sample(k):
    torch.manual_seed(0)
    coder = AdaptiveChannelCoder(16, RATES, hidden_dim=32)
    tokens = torch.randn(6, 5, 16) * torch.tensor([0.01, 0.1, 1.0, 10.0, 100.0, 1.0]).view(6, 1, 1)
    for snr_db in (torch.tensor([0.0, 5.0, 10.0, 20.0, -10.0, float("inf")]), 7.0):
        symbols = coder.encode(tokens, snr_db, k)
        assert symbols.dtype == torch.complex64 and symbols.shape == (6, 5 * k)
        torch.testing.assert_close(energy_per_sample(symbols), torch.ones(6), atol=1e-5, rtol=0)


@pytest.mark.parametrize("constellation", ["qam4", "qam16", "qam64"])
def test_qam_symbols_lie_on_the_grid_and_respect_the_power_constraint(constellation):
    levels = qam_levels(constellation)
    grid = torch.cartesian_prod(levels, levels)
    assert grid.pow(2).sum(-1).mean().item() == pytest.approx(1.0, abs=1e-6)  # unit average energy grid
    torch.manual_seed(1)
    coder = AdaptiveChannelCoder(16, RATES, hidden_dim=32, constellation=constellation)
    tokens = torch.randn(32, 6, 16) * torch.rand(32, 1, 1).mul(10)
    for k in RATES:
        symbols = coder.encode(tokens, torch.rand(32) * 20, k)
        parts = torch.view_as_real(symbols).reshape(-1, 1)
        assert (parts - levels).abs().min(dim=1).values.max().item() < 1e-6  # every part exactly on a level
        energy = energy_per_sample(symbols)
        assert (energy <= 1.0 + 1e-5).all(), energy.max()
        assert energy.min() > 0.5  # the gain search uses the budget instead of collapsing to inner points
        if constellation == "qam4":
            torch.testing.assert_close(energy, torch.ones(32), atol=1e-5, rtol=0)


def test_straight_through_estimator_passes_gradients():
    reals = torch.randn(4, 10, 2, requires_grad=True)
    unit = reals / reals.pow(2).sum(dim=(1, 2), keepdim=True).div(10).sqrt()
    out = qam_straight_through(unit, "qam16")
    weights = torch.randn_like(out)
    (out * weights).sum().backward()
    assert reals.grad is not None and reals.grad.abs().sum() > 0 and torch.isfinite(reals.grad).all()

    coder = AdaptiveChannelCoder(16, RATES, hidden_dim=32, constellation="qam64")
    symbols = coder.encode(torch.randn(3, 4, 16), 10.0, 8)
    torch.view_as_real(symbols).pow(3).sum().backward()
    for param in (coder.encoder_in.weight, coder.encoder_heads["8"].weight, coder.encoder_blocks[0].film.weight):
        assert param.grad is not None and param.grad.abs().sum() > 0


@pytest.mark.parametrize("k", RATES)
def test_shapes_per_rate_and_dtype(k):
    coder = AdaptiveChannelCoder(16, RATES, hidden_dim=32)
    tokens = torch.randn(3, 7, 16, dtype=torch.float64)
    symbols = coder.encode(tokens, 10.0, k)
    assert symbols.shape == (3, 7 * k)
    assert coder.decode(symbols, torch.tensor([0.0, 10.0, 20.0]), k).shape == (3, 7, 16)
    channel = TokenChannel(channel_type="awgn")
    received = coder.transmit(tokens, torch.tensor([0.0, 10.0, float("inf")]), k, channel)
    assert received.shape == tokens.shape and received.dtype == torch.float64


@pytest.mark.parametrize("fading", ["block", "fast"])
def test_rayleigh_path_runs_and_is_reproducible(fading):
    coder = AdaptiveChannelCoder(16, RATES, hidden_dim=32, constellation="qam16")
    tokens = torch.randn(4, 5, 16)
    channel = TokenChannel(channel_type="awgn", fading=fading, equalizer="mmse")
    out = [
        coder.transmit(tokens, torch.tensor([0.0, 5.0, 10.0, 20.0]), 8, channel,
                       generator=torch.Generator().manual_seed(3), channel_type="rayleigh")
        for _ in range(2)
    ]
    assert out[0].shape == tokens.shape and torch.isfinite(out[0]).all()
    torch.testing.assert_close(out[0], out[1])
    awgn = coder.transmit(tokens, 5.0, 8, channel, generator=torch.Generator().manual_seed(3))
    assert not torch.allclose(awgn, out[0])  # the override really switched the channel


def test_bad_inputs_raise_value_errors_naming_the_argument():
    for bad in (0, -3, 1.5, True, None):
        with pytest.raises(ValueError, match="token_dim"):
            AdaptiveChannelCoder(bad)
    for bad in ((), (0, 4), (2.5,)):
        with pytest.raises(ValueError, match="symbols_per_token_choices"):
            AdaptiveChannelCoder(16, bad)
    with pytest.raises(ValueError, match="constellation"):
        AdaptiveChannelCoder(16, constellation="qam32")
    coder = AdaptiveChannelCoder(16, RATES, hidden_dim=32)
    tokens, channel = torch.randn(2, 3, 16), TokenChannel()
    with pytest.raises(ValueError, match="num_symbols_per_token"):
        coder.encode(tokens, 10.0, 5)
    with pytest.raises(ValueError, match="num_symbols_per_token"):
        coder.transmit(tokens, 10.0, 2, channel)
    with pytest.raises(ValueError, match="constellation"):
        coder.encode(tokens, 10.0, 4, constellation="psk8")
    with pytest.raises(ValueError, match="constellation"):
        qam_levels("analog")
    with pytest.raises(ValueError, match="tokens"):
        coder.encode(torch.randn(2, 3, 15), 10.0, 4)
    with pytest.raises(ValueError, match="tokens"):
        coder.encode(torch.randn(3, 16), 10.0, 4)
    with pytest.raises(ValueError, match="snr_db"):
        coder.encode(tokens, float("nan"), 4)
    with pytest.raises(ValueError, match="snr_db"):
        coder.transmit(tokens, torch.tensor([10.0, float("nan")]), 4, channel)
    with pytest.raises(ValueError, match="snr_db"):
        coder.encode(tokens, torch.tensor([1.0, 2.0, 3.0]), 4)
    with pytest.raises(ValueError, match="symbols"):
        coder.decode(torch.randn(2, 12), 10.0, 4)  # real, not complex
    with pytest.raises(ValueError, match="symbols"):
        coder.decode(torch.randn(2, 10, dtype=torch.complex64), 10.0, 4)  # not a multiple of k
    with pytest.raises(ValueError, match="channel"):
        coder.transmit(tokens, 10.0, 4, lambda x, **_: x)


def test_module_imports_only_torch_and_siblings_and_its_docstring_runs():
    source = open(channel_coding.__file__).read()
    imports = {line.split()[1] for line in source.splitlines() if line.startswith(("import ", "from "))}
    assert imports <= {"__future__", "math", "torch", ".channel"}, imports
    assert len(source.splitlines()) < 300
    result = doctest.testmod(channel_coding)
    assert result.attempted > 0 and result.failed == 0


# ---------------------------------------------------------------------------------------------------------------
# A learning check that can fail: Gaussian tokens (dim 16) over AWGN, SNR ~ U[0, 20] dB, all rates in one module.
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    coder = AdaptiveChannelCoder(16, RATES, hidden_dim=64, num_layers=2)
    channel = TokenChannel(channel_type="awgn")
    steps = 360
    optimizer = torch.optim.Adam(coder.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    start = time.perf_counter()
    for step in range(steps):
        tokens = torch.randn(64, 8, 16, generator=generator)
        snr_db = torch.rand(64, generator=generator) * 20.0
        received = coder.transmit(tokens, snr_db, RATES[step % len(RATES)], channel, generator=generator)
        loss = (received - tokens).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return coder.eval(), channel, time.perf_counter() - start


def evaluate_mse(coder, channel, k, snr_db, told_snr_db=None, num=512):
    """Token MSE when the channel runs at `snr_db` and T/R are told `told_snr_db` (default: the truth)."""
    generator = torch.Generator().manual_seed(7)
    tokens = torch.randn(num, 8, 16, generator=generator)
    told = snr_db if told_snr_db is None else told_snr_db
    with torch.no_grad():
        symbols = coder.encode(tokens, told, k)
        pairs = channel(torch.view_as_real(symbols).reshape(num, 8, 2 * k), snr_db=snr_db, generator=generator)
        received = torch.view_as_complex(pairs.reshape(num, -1, 2).contiguous())
        return (coder.decode(received, told, k) - tokens).pow(2).mean().item()


def test_learning_snr_rate_and_conditioning(trained):
    coder, channel, seconds = trained
    assert seconds < 25.0, f"training took {seconds:.1f} s"
    mse = {(k, s): evaluate_mse(coder, channel, k, s) for k in RATES for s in (0.0, 10.0, 20.0)}
    # 1. quality improves with SNR (k = 8 complex uses = 16 reals: uncoded optimum is 1 / (1 + snr))
    for k in RATES:
        assert mse[k, 20.0] < 0.75 * mse[k, 0.0], mse
    assert mse[8, 20.0] < 0.1 and mse[8, 0.0] < 0.65, mse
    # 2. more channel uses per token -> lower MSE at the same SNR
    for snr in (0.0, 10.0, 20.0):
        assert mse[16, snr] < 0.9 * mse[8, snr] < 0.9 * 0.9 * mse[4, snr], mse
    # 3. SNR conditioning helps: told 20 dB while the channel is at 0 dB is worse than told the truth
    for k in RATES:
        lied = evaluate_mse(coder, channel, k, 0.0, told_snr_db=20.0)
        assert lied > 1.1 * mse[k, 0.0], (k, lied, mse[k, 0.0])
    assert math.isfinite(sum(mse.values()))


@pytest.mark.parametrize("constellation", ["analog", "qam16"])
def test_token_mask_makes_a_sample_independent_of_its_padding(constellation):
    torch.manual_seed(0)
    coder = AdaptiveChannelCoder(8, symbols_per_token_choices=(4,), hidden_dim=16, constellation=constellation)
    tokens = torch.randn(1, 3, 8)
    padded = torch.cat([torch.randn(1, 2, 8), tokens], dim=1)  # two left-padding tokens of garbage
    mask = torch.tensor([[0, 0, 1, 1, 1]])
    alone = coder.encode(tokens, 10.0, 4)
    with_pad = coder.encode(padded, 10.0, 4, token_mask=mask)
    assert torch.allclose(with_pad[:, 8:], alone, atol=1e-5)
    assert with_pad[:, :8].abs().max() == 0  # padding sends nothing
    channel = TokenChannel(channel_type="none")
    received = coder.transmit(padded, 10.0, 4, channel, token_mask=mask)
    assert torch.allclose(received[:, 2:], coder.transmit(tokens, 10.0, 4, channel), atol=1e-5)
    assert received[:, :2].abs().max() == 0
    with pytest.raises(ValueError, match="token_mask"):
        coder.encode(padded, 10.0, 4, token_mask=mask[:, :3])
