"""TokenChannel and link budget: measured against the numbers they promise."""

import math

import pytest
import torch

from tokcom.modeling.channel import (
    ChannelConfig,
    TokenChannel,
    channel_gain,
    dbm_to_w,
    noise_power_w,
    path_loss_db,
    received_snr_db,
    shannon_rate_bps,
    w_to_dbm,
)


def measured_snr_db(sent: torch.Tensor, received: torch.Tensor) -> float:
    """SNR in token space: signal energy over error energy, both summed over all elements."""
    return 10 * math.log10(sent.pow(2).sum().item() / (received - sent).pow(2).sum().item())


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0])
def test_awgn_measured_snr_matches_request(snr_db):
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randn(8, 128, 256, generator=generator)  # 131,072 complex symbols
    received = TokenChannel(ChannelConfig(channel_type="awgn"))(tokens, snr_db=snr_db, generator=generator)
    assert abs(measured_snr_db(tokens, received) - snr_db) < 0.2


def test_per_sample_snr_tensor_mixes_conditions():
    generator = torch.Generator().manual_seed(1)
    tokens = torch.randn(3, 256, 256, generator=generator)
    snr_db = torch.tensor([0.0, 10.0, 20.0])
    received = TokenChannel()(tokens, snr_db=snr_db, generator=generator)
    for i in range(3):
        assert abs(measured_snr_db(tokens[i], received[i]) - snr_db[i].item()) < 0.2


def test_snr_is_relative_to_each_samples_power():
    generator = torch.Generator().manual_seed(2)
    tokens = torch.randn(2, 128, 256, generator=generator) * torch.tensor([0.01, 100.0]).view(2, 1, 1)
    received = TokenChannel()(tokens, snr_db=10.0, generator=generator)
    for i in range(2):
        assert abs(measured_snr_db(tokens[i], received[i]) - 10.0) < 0.2


def test_rayleigh_unit_average_power_and_shapes():
    tokens = torch.zeros(200_000, 1, 2)
    channel = TokenChannel(ChannelConfig(channel_type="rayleigh", fading="block"))
    _, realization = channel(tokens + 1.0, snr_db=30.0, return_channel=True, generator=torch.Generator().manual_seed(3))
    h = realization.coefficients
    assert h.shape == (200_000, 1, 1) and h.is_complex()
    assert abs(h.abs().pow(2).mean().item() - 1.0) < 0.02

    fast = TokenChannel(channel_type="rayleigh", fading="fast")
    _, realization = fast(torch.randn(4, 10, 6), snr_db=10.0, return_channel=True)
    assert realization.coefficients.shape == (4, 10, 3)


@pytest.mark.parametrize("fading", ["block", "fast"])
@pytest.mark.parametrize("equalizer", ["zf", "mmse"])
def test_rayleigh_recovers_tokens_exactly_at_infinite_snr(fading, equalizer):
    tokens = torch.randn(4, 16, 33, dtype=torch.float64)  # odd dim exercises the padding
    channel = TokenChannel(channel_type="rayleigh", fading=fading, equalizer=equalizer)
    received = channel(tokens, snr_db=float("inf"))
    assert received.dtype == torch.float64
    torch.testing.assert_close(received, tokens, atol=1e-4, rtol=1e-4)


def test_mmse_beats_zf_on_fast_rayleigh_at_low_snr():
    tokens = torch.randn(8, 64, 64)
    errors = {}
    for equalizer in ("zf", "mmse"):
        channel = TokenChannel(channel_type="rayleigh", fading="fast", equalizer=equalizer)
        received = channel(tokens, snr_db=0.0, generator=torch.Generator().manual_seed(4))
        errors[equalizer] = (received - tokens).pow(2).mean().item()
    assert errors["mmse"] < errors["zf"]


def test_none_channel_is_identity_and_awgn_inf_is_noiseless():
    tokens = torch.randn(2, 5, 7)
    assert torch.equal(TokenChannel(channel_type="none")(tokens, snr_db=-5.0), tokens)
    torch.testing.assert_close(TokenChannel()(tokens, snr_db=float("inf")), tokens)


def test_gradients_flow_through_channel():
    for channel_type in ("awgn", "rayleigh"):
        tokens = torch.randn(2, 4, 8, requires_grad=True)
        TokenChannel(channel_type=channel_type)(tokens, snr_db=10.0).sum().backward()
        assert tokens.grad is not None and torch.isfinite(tokens.grad).all() and tokens.grad.abs().sum() > 0


def test_same_generator_seed_same_output_and_dtype_device_follow_input():
    tokens = torch.randn(2, 4, 8).to(torch.bfloat16)
    channel = TokenChannel(channel_type="rayleigh")
    a = channel(tokens, snr_db=5.0, generator=torch.Generator().manual_seed(7))
    b = channel(tokens, snr_db=5.0, generator=torch.Generator().manual_seed(7))
    c = channel(tokens, snr_db=5.0, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.dtype == torch.bfloat16 and a.device == tokens.device


def test_channel_has_no_parameters_and_config_round_trips(tmp_path):
    config = ChannelConfig(channel_type="rayleigh", snr_db=5.0, fading="fast", equalizer="mmse")
    assert len(list(TokenChannel(config).parameters())) == 0
    config.save_pretrained(tmp_path)
    loaded = ChannelConfig.from_pretrained(tmp_path)
    assert (loaded.channel_type, loaded.snr_db, loaded.fading, loaded.equalizer) == ("rayleigh", 5.0, "fast", "mmse")


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: TokenChannel()(torch.randn(2, 4, 8), snr_db=float("nan")), "snr_db"),
        (lambda: TokenChannel()(torch.randn(2, 4, 8), snr_db=torch.tensor([1.0, float("nan")])), "snr_db"),
        (lambda: TokenChannel()(torch.randn(2, 4, 8), snr_db=float("-inf")), "snr_db"),
        (lambda: TokenChannel()(torch.randn(2, 4, 8), snr_db=torch.zeros(3)), "snr_db"),
        (lambda: TokenChannel()(torch.randn(4, 8), snr_db=10.0), "tokens"),
        (lambda: TokenChannel()(torch.randn(2, 4, 8), snr_db=10.0, noise=1), "noise"),
        (lambda: TokenChannel(channel_type="rician"), "channel_type"),
        (lambda: TokenChannel(fading="slow"), "fading"),
        (lambda: TokenChannel(equalizer="ml"), "equalizer"),
        (lambda: TokenChannel(snr=3), "snr"),
        (lambda: ChannelConfig(channel_type="rician"), "channel_type"),
        (lambda: ChannelConfig(snr_db=float("nan")), "snr_db"),
        (lambda: noise_power_w(-1.0), "bandwidth_hz"),
        (lambda: received_snr_db(-0.1, 1e6, distance_km=0.4), "power_w"),
        (lambda: received_snr_db(0.1, 1e6, distance_km=-0.4), "distance_km"),
        (lambda: received_snr_db(0.1, 1e6), "distance_km"),
        (lambda: path_loss_db(float("nan")), "distance_km"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_link_budget_matches_hand_computed_table_i_values():
    # Table I: PL(d) = 128.1 + 37.6 log10(d_km), N0 = -174 dBm/Hz. d = 0.4 km, p = 20 dBm, B = 1.5 MHz.
    # PL = 128.1 + 37.6 * (-0.397940) = 113.1374 dB
    assert path_loss_db(0.4) == pytest.approx(113.1374, abs=1e-3)
    assert path_loss_db(1.0) == pytest.approx(128.1)
    assert channel_gain(0.4) == pytest.approx(10 ** (-11.31374), rel=1e-4)
    # N0 B = -174 + 10 log10(1.5e6) = -174 + 61.7609 = -112.2391 dBm
    assert w_to_dbm(noise_power_w(1.5e6)) == pytest.approx(-112.2391, abs=1e-3)
    assert dbm_to_w(20) == pytest.approx(0.1) and dbm_to_w(23) == pytest.approx(0.19953, rel=1e-4)
    # SNR = 20 - 113.1374 + 112.2391 = 19.1017 dB
    assert received_snr_db(dbm_to_w(20), 1.5e6, distance_km=0.4) == pytest.approx(19.1017, abs=1e-3)
    assert received_snr_db(0.1, 1.5e6, gain_db=-113.1374) == pytest.approx(19.1017, abs=1e-3)
    # rate = B log2(1 + 10^1.91017) = 1.5e6 * log2(82.36) = 9.548 Mbit/s
    assert shannon_rate_bps(0.1, 1.5e6, channel_gain(0.4)) == pytest.approx(1.5e6 * math.log2(1 + 10**1.91017), rel=1e-4)


def test_token_mask_excludes_padding_from_power_and_transmission():
    generator = torch.Generator().manual_seed(5)
    tokens = torch.randn(2, 512, 128, generator=generator)
    mask = torch.ones(2, 512, dtype=torch.long)
    mask[1, 256:] = 0
    tokens[1, 256:] = 50.0  # padding with large values must neither count as signal energy nor be changed
    received = TokenChannel()(tokens, snr_db=10.0, token_mask=mask, generator=generator)
    assert torch.equal(received[1, 256:], tokens[1, 256:])
    assert abs(measured_snr_db(tokens[1, :256], received[1, :256]) - 10.0) < 0.2
    assert abs(measured_snr_db(tokens[0], received[0]) - 10.0) < 0.2
    with pytest.raises(ValueError, match="token_mask"):
        TokenChannel()(tokens, snr_db=10.0, token_mask=mask[:, :10])


def test_draws_come_from_the_generators_device_and_land_on_the_models():
    """A CPU generator (the training engine's) drives a model on another device: the draw happens on the
    generator's device and moves (here to `meta`, which CI has; a GPU run is in results/gpu_check.json)."""
    import doctest

    import tokcom.modeling.random_draws as random_draws
    from tokcom.modeling.random_draws import rand, randint, randn

    assert doctest.testmod(random_draws).failed == 0
    for draw, expected in ((lambda g, d: randn((3, 2), g, d), lambda g: torch.randn((3, 2), generator=g)),
                           (lambda g, d: rand((3,), g, d), lambda g: torch.rand((3,), generator=g)),
                           (lambda g, d: randint(0, 9, (4,), g, d), lambda g: torch.randint(0, 9, (4,), generator=g))):  # fmt: skip
        assert draw(torch.Generator().manual_seed(3), "meta").device.type == "meta"
        assert torch.equal(draw(torch.Generator().manual_seed(3), "cpu"), expected(torch.Generator().manual_seed(3)))
    assert randn((2,), None, "meta").device.type == "meta"  # no generator: drawn where it is used
