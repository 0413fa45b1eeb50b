"""The traditional digital link (Sionna 5G LDPC + CRC + QAM) and its source codecs: fast, seeded checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytest.importorskip("sionna.phy")

from tokcom.pipelines.digital_link import (  # noqa: E402
    CRC_BITS,
    DigitalLink,
    block_sizes,
    capacity_bits_per_use,
    count_channel_uses,
    qam16_ber_closed_form,
    select_mcs,
    shannon_channel_uses,
    uncoded_ber,
)
from tokcom.pipelines.source_coding import (  # noqa: E402
    AudioCodec,
    JpegCodec,
    conceal_frames,
    decode_text,
    encode_text,
)


pytestmark = pytest.mark.usefixtures("one_thread")  # BP decoding of small batches is fastest on one thread


def _generator(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("snr_db", [0.0, 6.0, 10.0])
def test_uncoded_16qam_ber_matches_closed_form(snr_db):
    num_symbols = 50_000
    measured = uncoded_ber("16qam", snr_db, num_symbols, _generator(1))
    expected = qam16_ber_closed_form(snr_db)
    # bits within a symbol are correlated; 5 sigma on the symbol count is still a tight check
    sigma = math.sqrt(expected * (1 - expected) / num_symbols)
    assert abs(measured - expected) < 5 * sigma, (measured, expected)


def test_coded_ber_is_zero_above_threshold_and_high_below():
    link = DigitalLink("16qam", 0.5)
    payload = torch.randint(0, 2, (32, 256 - CRC_BITS), generator=_generator(2)).float()
    decoded, crc_valid = link.run_blocks(payload, 12.0, _generator(3))
    assert (decoded == payload).all() and crc_valid.all()
    decoded, crc_valid = link.run_blocks(payload, 2.0, _generator(3))
    assert (decoded != payload).float().mean() > 0.1 and not crc_valid.any()


def test_crc_flags_exactly_the_damaged_blocks():
    link = DigitalLink("16qam", 0.5)
    payload = torch.randint(0, 2, (64, 256 - CRC_BITS), generator=_generator(4)).float()
    decoded, crc_valid = link.run_blocks(payload, 6.3, _generator(5))  # in the waterfall: some blocks fail
    damaged = (decoded != payload).any(-1)
    assert 0 < damaged.sum() < 64
    assert torch.equal(~crc_valid, damaged)


def test_channel_use_counts_are_exact():
    # 1000 bytes at LDPC 1/2 + 16-QAM: 8 blocks of 1000 + 24 CRC bits -> 8 x 2048 coded bits -> 4096 symbols,
    # i.e. bits / (R Q_m) including CRC: (8000 + 8 x 24) / (0.5 x 4)
    assert block_sizes(8000) == (8, 1000, 1024)
    assert count_channel_uses(8000, code_rate=0.5, bits_per_symbol=4) == 4096 == (8000 + 8 * 24) / (0.5 * 4)
    # 200 bits at QPSK 1/2: one block of 224 bits -> 448 coded bits -> 224 symbols
    assert count_channel_uses(200, code_rate=0.5, bits_per_symbol=2) == 224
    link = DigitalLink("16qam", 0.5)
    out = link.transmit([[bytes(1000), b"x" * 25]], snr_db=30.0, mode="abstraction", generator=_generator())
    assert out.channel_uses == [4096 + count_channel_uses(200, 0.5, 4)]
    assert out.packets == [[bytes(1000), b"x" * 25]] and out.block_errors == [0]


def test_shannon_bound():
    assert shannon_channel_uses(1000, 0.0) == pytest.approx(1000.0)  # log2(1 + 1) = 1 bit per use
    gains = np.random.default_rng(0).exponential(size=400_000)
    monte_carlo = np.log2(1 + gains * 10.0).mean()
    assert capacity_bits_per_use(10.0, "rayleigh") == pytest.approx(monte_carlo, rel=5e-3)
    assert capacity_bits_per_use(10.0, "rayleigh") < capacity_bits_per_use(10.0, "awgn")


def test_full_chain_delivers_packets_and_loses_them_at_low_snr():
    link = DigitalLink("16qam", 0.5)
    packets = [[b"is the piano playing?", bytes(range(100))]]
    good = link.transmit(packets, snr_db=15.0, mode="full", generator=_generator())
    assert good.packets == packets and good.mode == "full"
    bad = link.transmit(packets, snr_db=0.0, mode="full", generator=_generator())
    assert bad.packets == [[None, None]] and bad.block_errors == [2]


def test_abstraction_is_seeded_and_tracks_the_calibrated_threshold():
    link = DigitalLink("16qam", 0.5)
    packets = [[bytes(100)] for _ in range(200)]
    first = link.transmit(packets, snr_db=6.0, channel_type="rayleigh", mode="abstraction", generator=_generator(7))
    again = link.transmit(packets, snr_db=6.0, channel_type="rayleigh", mode="abstraction", generator=_generator(7))
    assert first.packets == again.packets and first.gain == again.gain
    high = link.transmit(packets, snr_db=20.0, mode="abstraction", generator=_generator())
    low = link.transmit(packets, snr_db=0.0, mode="abstraction", generator=_generator())
    assert sum(high.block_errors) == 0 and sum(low.block_errors) == 200
    index, modulation, code_rate = select_mcs(20.0)
    assert modulation == "64qam" and select_mcs(-5.0)[1] == "qpsk"


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: DigitalLink("16qam", 0.5).transmit([[b"a"]], snr_db=float("nan"), mode="abstraction"), "snr_db"),
        (lambda: DigitalLink("32qam", 0.5), "modulation"),
        (lambda: DigitalLink("16qam", 0.1), "code_rate"),
        (lambda: DigitalLink("16qam", 0.97), "code_rate"),
        (lambda: count_channel_uses(0, 0.5, 4), "payload_bits"),
        (lambda: DigitalLink("16qam", 0.5).transmit([[b""]], snr_db=10.0, mode="abstraction"), "empty"),
        (lambda: DigitalLink("16qam", 0.5).transmit([[b"a"]], snr_db=10.0, channel_type="fading"), "channel_type"),
        (lambda: DigitalLink("16qam", 0.5).transmit([[b"a"]], snr_db=10.0, mode="fast"), "mode"),
        (lambda: encode_text(""), "text"),
        (lambda: JpegCodec(quality=0), "quality"),
        (lambda: AudioCodec("amr"), "codec"),
    ],
)
def test_bad_input_raises_a_value_error_naming_it(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_source_codecs_round_trip_and_conceal():
    assert decode_text(encode_text("which instrument sounds first?")) == "which instrument sounds first?"
    assert decode_text(None) is None
    ramp = np.linspace(0, 255, 32)
    frames = np.stack([np.stack(np.broadcast_arrays(ramp[:, None], ramp[None, :], np.full((32, 32), 80.0 * k)), -1)
                       for k in range(3)]).astype(np.uint8)  # (3, 32, 32, 3) smooth frames  # fmt: skip
    codec = JpegCodec(quality=90)
    decoded = [codec.decode(codec.encode(f), f.shape) for f in frames]
    assert all(np.abs(d.astype(int) - f).mean() < 4 for d, f in zip(decoded, frames))
    concealed = conceal_frames([None, decoded[1], None], frames[0].shape)
    assert (concealed[0] == 128).all() and (concealed[2] == decoded[1]).all()
    assert codec.decode(b"\x00\x01", frames[0].shape) is None  # a damaged scan never crashes the receiver
    audio = (0.1 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.float32)
    flac = AudioCodec("flac")
    packets, headers = flac.encode(audio, 16000)
    assert len(packets) == 4 and np.abs(flac.decode(packets, headers, 16000, 16000) - audio).max() < 1e-4
    opus = AudioCodec("opus", bitrate_kbps=24)
    packets, headers = opus.encode(audio, 16000)
    assert 8 * sum(map(len, packets)) < 40_000  # about 24 kbit/s plus Ogg page overhead
    received = opus.decode([packets[0], None, packets[2], packets[3]], headers, 16000, 16000)
    assert received.shape == (16000,) and (received[4000:8000] == 0).all() and np.abs(received[:4000]).max() > 0.01


# ---------------------------------------------------------------------------------------------
# LTE Turbo coding (channel_code="turbo", full chain only)
# ---------------------------------------------------------------------------------------------


def test_turbo_coded_ber_is_zero_above_threshold_and_high_below():
    link = DigitalLink("16qam", 0.5, channel_code="turbo")
    payload = torch.randint(0, 2, (16, 256 - CRC_BITS), generator=_generator(2)).float()
    decoded, crc_valid = link.run_blocks(payload, 12.0, _generator(3))  # measured: BER 0 from 8 dB
    assert (decoded == payload).all() and crc_valid.all()
    decoded, crc_valid = link.run_blocks(payload, 2.0, _generator(3))  # measured: BER 0.24
    assert (decoded != payload).float().mean() > 0.1 and not crc_valid.any()


def test_turbo_crc_flags_exactly_the_damaged_blocks():
    link = DigitalLink("16qam", 0.5, channel_code="turbo")
    payload = torch.randint(0, 2, (16, 256 - CRC_BITS), generator=_generator(2)).float()
    decoded, crc_valid = link.run_blocks(payload, 6.0, _generator(3))  # in the waterfall: some blocks fail
    damaged = (decoded != payload).any(-1)
    assert 0 < damaged.sum() < 16
    assert torch.equal(~crc_valid, damaged)


def test_turbo_channel_use_counts_are_exact():
    # 1000 bytes: 8 blocks of K = 1000 + 24 CRC bits; rate 1/3: n = 3 K + 12 = 3084 coded bits (tail included)
    # -> 771 16-QAM symbols per block, i.e. bits / (R Q_m) with CRC and the 4 tail bits per block
    assert count_channel_uses(8000, 1 / 3, 4, channel_code="turbo") == 6168 == (8000 + 8 * 24 + 8 * 4) * 3 / 4
    # rate 1/2 (punctured): n = 2 K + 8 = 2056 -> 514 symbols per block
    assert count_channel_uses(8000, 0.5, 4, channel_code="turbo") == 4112 == (8000 + 8 * 24 + 8 * 4) / (0.5 * 4)
    # 5 bytes at 64-QAM 1/2: K = 64, n = 136 coded bits -> padded to 138 = 23 symbols
    assert count_channel_uses(40, 0.5, 6, channel_code="turbo") == 23
    link = DigitalLink("64qam", 0.5, channel_code="turbo")
    assert link.channel_uses(40) == 23 and DigitalLink().channel_code == "ldpc"
    out = link.transmit([[b"piano"], [b"cello"]], snr_db=[20.0, -5.0], mode="full", generator=_generator())
    assert out.channel_uses == [23, 23] and out.num_blocks == [1, 1] and out.mode == "full"
    assert out.packets == [[b"piano"], [None]] and out.block_errors == [0, 1]


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: DigitalLink("16qam", 0.5, channel_code="polar"), "channel_code"),
        (lambda: DigitalLink("16qam", 0.75, channel_code="turbo"), "code_rate"),
        (lambda: count_channel_uses(800, 0.25, 4, channel_code="turbo"), "code_rate"),
        (lambda: count_channel_uses(800, 0.5, 4, channel_code="conv"), "channel_code"),
        (lambda: DigitalLink(channel_code="turbo").transmit([[b"a"]], snr_db=10.0, mode="abstraction"), "mode"),
        (lambda: DigitalLink(channel_code="turbo").transmit([[b"a"]], snr_db=float("nan")), "snr_db"),
        (lambda: DigitalLink(channel_code="turbo").transmit([[b""]], snr_db=10.0), "empty"),
    ],
)
def test_turbo_bad_input_raises_a_value_error_naming_it(call, name):
    with pytest.raises(ValueError, match=name):
        call()
