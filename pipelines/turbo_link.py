"""LTE Turbo coding for `DigitalLink(channel_code="turbo")` (Sionna PHY 2.2, `sionna.phy.fec.turbo`).

The code is the 3GPP LTE Turbo code of TS 36.212 Sec. 5.1.3.2 as Sionna builds it: two rate-1/2 recursive
systematic convolutional encoders with constraint length 4 (generators `('1011', '1101')`, i.e. feedback
`1 + D^2 + D^3` and feedforward `1 + D + D^3`), the LTE QPP internal interleaver (`interleaver_type="3GPP"`,
block sizes up to 6144 bits; every multiple of 32 up to 1024, the block sizes `DigitalLink` uses, is an LTE size)
and trellis termination of both encoders (12 tail bits). Supported rates (`TURBO_RATES`):

- `1/3`, the mother code: `n = 3 K + 12` coded bits for a block of `K` bits (payload + CRC24A);
- `1/2`, Sionna's fixed puncturing of the mother code (every systematic bit, the two encoders' parity bits
  alternately; the tail is punctured the same way): `n = 2 K + 8`. This is not LTE's circular-buffer rate
  matching, which can reach any rate; Sionna 2.2 offers only these two.

`n` is padded with zero bits to whole QAM symbols (`Q_m ceil(n / Q_m)`; only rate 1/2 with 64-QAM ever needs
it); the padding is sent, counted as channel uses, and ignored by the receiver. Decoding: iterative BCJR (exact
"map" algorithm), `TURBO_NUM_ITERATIONS` = 6 iterations (a usual LTE receiver setting), hard decisions.

Measured on this CPU (one thread): about 4 kbit/s of payload (16 blocks of K = 256 in about 1 s), 5-10x slower than
BP LDPC on the same blocks. Turbo runs only in `mode="full"`: the calibrated BLER tables (`bler_tables`) are for
LDPC, and no Turbo tables were measured.
"""

from __future__ import annotations

import math

import numpy as np

TURBO_RATES = (1 / 3, 1 / 2)
TURBO_CONSTRAINT_LENGTH = 4  # LTE: 8-state RSC encoders
TURBO_TAIL_BITS = 12  # 3 tail symbols x (systematic + parity) x 2 encoders, before puncturing
TURBO_NUM_ITERATIONS = 6


def check_turbo_rate(code_rate) -> float:
    """`code_rate` as exactly 1/3 or 1/2 (within 1e-3, so `0.333` is 1/3), else a ValueError naming it."""
    if isinstance(code_rate, bool) or not isinstance(code_rate, (int, float, np.floating)):
        raise ValueError(f"`code_rate` must be 1/3 or 1/2 for channel_code='turbo', got {code_rate!r}.")
    for rate in TURBO_RATES:
        if abs(float(code_rate) - rate) < 1e-3:
            return rate
    raise ValueError(
        f"`code_rate` must be 1/3 or 1/2 for channel_code='turbo' (the rates Sionna's Turbo encoder supports), "
        f"got {code_rate}."
    )


def turbo_coded_bits(block_bits: int, code_rate: float) -> int:
    """Turbo codeword length for a block of `K = block_bits` bits, tail included: `3 K + 12` (1/3), `2 K + 8` (1/2)."""
    rate = check_turbo_rate(code_rate)
    return int(round(block_bits / rate + TURBO_TAIL_BITS * (1 / 3) / rate))


def turbo_symbols(block_bits: int, code_rate: float, bits_per_symbol: int) -> int:
    """Complex symbols per Turbo block: `ceil(n / Q_m)` (zero padding to whole symbols)."""
    return math.ceil(turbo_coded_bits(block_bits, code_rate) / bits_per_symbol)


class TurboCoder:
    """Sionna's LTE Turbo encoder and decoder for blocks of `block_bits` bits at `code_rate`, padded to whole
    symbols of `bits_per_symbol` bits. `encode(bits (..., K)) -> (..., Q_m ceil(n / Q_m))`;
    `decode(llr (..., Q_m ceil(n / Q_m))) -> hard bits (..., K)` (the padding's LLRs are dropped)."""

    def __init__(self, block_bits: int, code_rate: float, bits_per_symbol: int,
                 num_iterations: int = TURBO_NUM_ITERATIONS):  # fmt: skip
        from sionna.phy.fec.turbo import TurboDecoder, TurboEncoder

        self.rate = check_turbo_rate(code_rate)
        self.n = turbo_coded_bits(block_bits, self.rate)
        self.padded = bits_per_symbol * turbo_symbols(block_bits, self.rate, bits_per_symbol)
        self.encoder = TurboEncoder(
            rate=self.rate, constraint_length=TURBO_CONSTRAINT_LENGTH, terminate=True, interleaver_type="3GPP"
        )
        self.decoder = TurboDecoder(self.encoder, num_iter=int(num_iterations), hard_out=True, algorithm="map")

    def encode(self, bits):
        import torch

        codeword = self.encoder(bits)
        if codeword.shape[-1] != self.n:  # guards the n formula above against a Sionna change
            raise RuntimeError(f"Turbo codeword has {codeword.shape[-1]} bits, expected {self.n}.")
        padding = torch.zeros((*codeword.shape[:-1], self.padded - self.n), dtype=codeword.dtype)
        return torch.cat([codeword, padding], dim=-1)

    def decode(self, llr):
        return self.decoder(llr[..., : self.n])


__all__ = ["TURBO_RATES", "TurboCoder", "check_turbo_rate", "turbo_coded_bits", "turbo_symbols"]
