"""A traditional digital link (5G NR LDPC or LTE Turbo + CRC + QAM, Sionna PHY 2.2) on the channel of `TokenChannel`.

Packets (bytes: a JPEG scan, an audio segment, a UTF-8 question; see `tokcom.pipelines.source_coding`) are sent
as transport blocks:

  1. segmentation (3GPP TS 38.212 Sec. 5.2.2): a packet of `B` bits is cut into `C = ceil(B / (K_max - 24))` code
     blocks of equal payload `ceil(B / C)` (zero filler bits), each block's size `K` (payload + CRC) rounded up to
     a multiple of 32 bits (a coarse stand-in for the TBS quantization of TS 38.214 Sec. 5.1.3.2);
  2. CRC24A per block (TS 38.212 Sec. 5.1; `sionna.phy.fec.crc`);
  3. 5G NR LDPC (TS 38.212 Sec. 5.3.2, `LDPC5GEncoder`), rate-matched to `n = Q_m ceil(K / (R Q_m))` coded bits
     (whole symbols), with `R` in [1/5, 948/1024] (the 5G range Sionna's encoder supports without repetition);
  4. Gray QAM with `Q_m` = 2, 4, 6 bits per symbol (TS 38.211 Sec. 5.1), unit average symbol energy;
  5. the channel, with `TokenChannel`'s convention: `snr_db` = Es/N0 per complex symbol, `no = 10**(-snr_db/10)`;
     `y = h x + n`, `h = 1` (AWGN) or one `h ~ CN(0, 1)` per transmission (Rayleigh block fading: one coefficient
     per sample and link, as `TokenChannel(fading="block")`), perfect CSI;
  6. equalization `y / h` with effective noise `no / |h|^2`, APP (LLR) demapping, belief-propagation decoding
     (20 iterations, sum-product), CRC check; a packet is received only if all its blocks pass.

Channel code (`channel_code`): `"ldpc"` (the default, steps 3 and 6 above) or `"turbo"`: the LTE Turbo code
(TS 36.212 Sec. 5.1.3.2; `sionna.phy.fec.turbo`, see `tokcom.pipelines.turbo_link`) at rate 1/3 (mother code,
`n = 3 K + 12` with the trellis tail) or 1/2 (Sionna's fixed puncturing, `n = 2 K + 8`), padded to whole symbols,
decoded by 6 iterations of BCJR ("map"). Segmentation, CRC24A per block, QAM, channel, SNR convention and APP
demapping are the same; UniToCom's baseline uses Turbo for text. Turbo runs only in `mode="full"`: the calibrated
BLER tables, `bler` and `select_mcs` are for LDPC, and asking for abstraction with Turbo raises a ValueError.

Two modes produce the same statistics at very different cost:
- `mode="full"`: steps 1-6 with Sionna on real bits (BP decoding ran at about 0.01-0.02 Mbit/s on one thread of
  this shared CPU; use `torch.set_num_threads(1)` there, two threads were 4x slower under load);
- `mode="abstraction"`: each block fails with probability `BLER(Q_m, R, K, snr_eff)`, from AWGN tables that
  `benchmarks/digital_link_calibration.py` measures with mode="full" (`tokcom.pipelines.bler_tables`). With block
  fading and perfect CSI a block sees AWGN at `snr_eff = snr_db + 10 log10 |h|^2`, so AWGN tables serve Rayleigh.

Channel uses (complex symbols on the air) are counted as on the token side: `sum over blocks of n / Q_m`, i.e.
`bits / (R Q_m)` including CRC and filler bits (`count_channel_uses`); with Turbo `sum of ceil(n / Q_m)`, i.e.
`bits / (R Q_m)` including CRC, filler, the tail and the padding to whole symbols. Shannon bound for `b` bits:
`b / log2(1 + SNR)` (AWGN) and `b / C_rayleigh` with the ergodic capacity `E[log2(1 + |h|^2 SNR)]`.

Adaptive MCS (`select_mcs`): the highest-spectral-efficiency entry of a subset of TS 38.214 Table 5.1.3.1-1 whose
calibrated BLER at the (effective) SNR is at most `target_bler` (0.1 is the CQI definition of TS 38.214 Sec.
5.2.2.1). With Rayleigh block fading the transmitter knows `|h|^2` (ideal CSI feedback) and adapts per transmission.

Sionna is imported lazily (inside functions) so `import tokcom` stays fast.

Example (abstraction mode, needs only numpy/torch and the shipped tables):

>>> import torch
>>> link = DigitalLink(modulation="16qam", code_rate=0.5)
>>> count_channel_uses(8000, code_rate=0.5, bits_per_symbol=4)
4096
>>> out = link.transmit([[b"is the piano playing?"]], snr_db=20.0, mode="abstraction",
...                     generator=torch.Generator().manual_seed(0))
>>> out.packets[0][0]
b'is the piano playing?'
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .turbo_link import TurboCoder, check_turbo_rate, turbo_symbols

MODULATIONS = {"qpsk": 2, "16qam": 4, "64qam": 6}
CHANNEL_TYPES = ("awgn", "rayleigh")
MODES = ("full", "abstraction")
CHANNEL_CODES = ("ldpc", "turbo")
CODE_RATE_MIN, CODE_RATE_MAX = 1 / 5, 948 / 1024  # TS 38.212 Sec. 5.4.2.1 upper bound; BG2 lowest rate
CRC_BITS = 24  # CRC24A
BLOCK_GRANULARITY_BITS = 32
MAX_BLOCK_BITS = 1024  # K_max incl. CRC (5G allows up to 3840 for BG2 / 8448 for BG1)
NUM_BP_ITERATIONS = 20
# Every other entry of TS 38.214 Table 5.1.3.1-1 (MCS index table 1) from index 3: (index, modulation, R x 1024),
# spectral efficiency 0.49 ... 5.33 bit/symbol in steps of about 1.5-2 dB (each entry costs a calibration run).
# Index 0-2 (R < 1/5) need repetition, which the LDPC encoder here does not do.
MCS_TABLE = (
    (3, "qpsk", 251), (7, "qpsk", 526), (11, "16qam", 378), (15, "16qam", 616),
    (19, "64qam", 517), (23, "64qam", 719), (27, "64qam", 910),
)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Argument checks, block sizes, channel uses, Shannon bound
# ---------------------------------------------------------------------------------------------


def bits_per_symbol_of(modulation: str) -> int:
    """`"qpsk" | "16qam" | "64qam"` -> 2, 4, 6."""
    if modulation not in MODULATIONS:
        raise ValueError(f"`modulation` must be one of {tuple(MODULATIONS)}, got {modulation!r}.")
    return MODULATIONS[modulation]


def check_code_rate(code_rate) -> float:
    """`code_rate` as a float in the 5G range [1/5, 948/1024], else a ValueError naming it."""
    if isinstance(code_rate, bool) or not isinstance(code_rate, (int, float, np.floating)):
        raise ValueError(f"`code_rate` must be a number in [1/5, 948/1024], got {code_rate!r}.")
    if not CODE_RATE_MIN - 1e-9 <= float(code_rate) <= CODE_RATE_MAX + 1e-9:
        raise ValueError(f"`code_rate` must be in the 5G LDPC range [1/5, 948/1024], got {code_rate}.")
    return float(code_rate)


def check_snr_db(snr_db) -> float:
    """A finite or +inf `snr_db` [dB] as float, else a ValueError naming it (NaN, -inf, non-numbers)."""
    if isinstance(snr_db, bool) or not isinstance(snr_db, (int, float, np.floating, np.integer)):
        raise ValueError(f"`snr_db` must be a number in (-inf, inf], got {snr_db!r}.")
    if math.isnan(snr_db) or snr_db == -math.inf:
        raise ValueError(f"`snr_db` must be a number in (-inf, inf], got {snr_db}.")
    return float(snr_db)


def check_channel_code(channel_code, code_rate):
    """`(channel_code, code_rate)` checked together: LDPC rates in [1/5, 948/1024], Turbo rates 1/3 or 1/2."""
    if channel_code not in CHANNEL_CODES:
        raise ValueError(f"`channel_code` must be one of {CHANNEL_CODES}, got {channel_code!r}.")
    return channel_code, check_turbo_rate(code_rate) if channel_code == "turbo" else check_code_rate(code_rate)


def _check_payload_bits(payload_bits) -> int:
    if isinstance(payload_bits, bool) or not isinstance(payload_bits, (int, np.integer)) or payload_bits < 1:
        raise ValueError(
            f"`payload_bits` must be a positive integer (empty payloads are not sent), got {payload_bits!r}."
        )
    return int(payload_bits)


def block_sizes(payload_bits: int, max_block_bits: int = MAX_BLOCK_BITS) -> tuple[int, int, int]:
    """Segmentation of one packet (step 1): `(num_blocks C, payload bits per block, block size K incl. CRC)`."""
    payload_bits = _check_payload_bits(payload_bits)
    if max_block_bits % BLOCK_GRANULARITY_BITS or not 64 <= max_block_bits <= 3840:
        raise ValueError(f"`max_block_bits` must be a multiple of 32 in [64, 3840], got {max_block_bits}.")
    num_blocks = math.ceil(payload_bits / (max_block_bits - CRC_BITS))
    per_block = math.ceil(payload_bits / num_blocks)
    size = BLOCK_GRANULARITY_BITS * math.ceil((per_block + CRC_BITS) / BLOCK_GRANULARITY_BITS)
    return num_blocks, per_block, size


def coded_bits(block_bits: int, code_rate: float, bits_per_symbol: int) -> int:
    """Rate-matched codeword length `n = Q_m ceil(K / (R Q_m))` (whole symbols; effective rate >= 1/5)."""
    n = bits_per_symbol * math.ceil(block_bits / (code_rate * bits_per_symbol) - 1e-9)
    while block_bits / n < CODE_RATE_MIN - 1e-12:
        n -= bits_per_symbol
    return n


def count_channel_uses(
    payload_bits: int, code_rate: float, bits_per_symbol: int, max_block_bits: int = MAX_BLOCK_BITS,
    channel_code: str = "ldpc",
) -> int:
    """Complex symbols to send one packet of `payload_bits`: `C n / Q_m` (CRC and filler included; with Turbo
    also the 12 tail bits (8 at rate 1/2) and the padding to whole symbols: `C ceil(n / Q_m)`)."""
    channel_code, code_rate = check_channel_code(channel_code, code_rate)
    if bits_per_symbol not in MODULATIONS.values():
        raise ValueError(f"`bits_per_symbol` must be one of {sorted(MODULATIONS.values())}, got {bits_per_symbol!r}.")
    num_blocks, _, size = block_sizes(payload_bits, max_block_bits)
    if channel_code == "turbo":
        return num_blocks * turbo_symbols(size, code_rate, bits_per_symbol)
    return num_blocks * coded_bits(size, code_rate, bits_per_symbol) // bits_per_symbol


def capacity_bits_per_use(snr_db, channel_type: str = "awgn") -> float:
    """Capacity [bit per complex channel use]: `log2(1 + SNR)` (AWGN) or the ergodic Rayleigh capacity
    `E[log2(1 + |h|^2 SNR)] = log2(e) exp(1/SNR) E1(1/SNR)`."""
    from scipy.special import exp1

    snr = 10.0 ** (check_snr_db(snr_db) / 10.0)
    if channel_type == "awgn":
        return float(np.log2(1.0 + snr))
    if channel_type == "rayleigh":
        return float(np.exp(1.0 / snr) * exp1(1.0 / snr) / np.log(2.0))
    raise ValueError(f"`channel_type` must be one of {CHANNEL_TYPES}, got {channel_type!r}.")


def shannon_channel_uses(payload_bits: int, snr_db: float, channel_type: str = "awgn") -> float:
    """Fewest channel uses any code needs for `payload_bits` at `snr_db`: `b / capacity`."""
    return _check_payload_bits(payload_bits) / capacity_bits_per_use(snr_db, channel_type)


def bytes_to_bits(packet: bytes) -> np.ndarray:
    """`bytes` -> uint8 bits `(8 len,)`, most significant bit first."""
    return np.unpackbits(np.frombuffer(packet, np.uint8))


def bits_to_bytes(bits: np.ndarray) -> bytes:
    return np.packbits(np.asarray(bits, np.uint8)).tobytes()


# ---------------------------------------------------------------------------------------------
# Block error model (abstraction) and adaptive MCS
# ---------------------------------------------------------------------------------------------


def mcs_key(modulation: str, code_rate: float) -> str:
    return f"{modulation}@{code_rate:.4f}"


def bler(modulation: str, code_rate: float, block_bits: int, snr_db):
    """Calibrated AWGN block error rate `Q((snr_db - snr50_db) / width_db)` (fit per block size, interpolated in
    log2 K and clamped at the calibrated sizes). `snr_db` a number or array; returns the same shape."""
    from scipy.special import ndtr

    from .bler_tables import BLER_TABLES

    bits_per_symbol_of(modulation)
    key = mcs_key(modulation, check_code_rate(code_rate))
    if key not in BLER_TABLES:
        raise ValueError(
            f"No calibrated BLER table for {key!r}; calibrated: {sorted(BLER_TABLES)}. "
            "Run benchmarks/digital_link_calibration.py or use mode='full'."
        )
    sizes = sorted(int(k) for k in BLER_TABLES[key])
    fits = np.array([BLER_TABLES[key][str(k)] for k in sizes])  # (sizes, 2): snr50_db, width_db
    x = np.clip(np.log2(block_bits), np.log2(sizes[0]), np.log2(sizes[-1]))
    snr50_db = np.interp(x, np.log2(sizes), fits[:, 0])
    width_db = np.interp(x, np.log2(sizes), fits[:, 1])
    return ndtr(-(np.asarray(snr_db, np.float64) - snr50_db) / width_db)


def select_mcs(snr_db: float, target_bler: float = 0.1, block_bits: int = MAX_BLOCK_BITS) -> tuple[int, str, float]:
    """Adaptive MCS: `(index, modulation, code_rate)` of the highest spectral efficiency entry of `MCS_TABLE` whose
    calibrated BLER at `snr_db` is `<= target_bler`; the most robust entry when none is."""
    snr_db = check_snr_db(snr_db)
    if not 0.0 < target_bler < 1.0:
        raise ValueError(f"`target_bler` must be in (0, 1), got {target_bler}.")
    best = MCS_TABLE[0]
    for entry in MCS_TABLE:
        index, modulation, rate_1024 = entry
        if bler(modulation, rate_1024 / 1024, block_bits, snr_db) <= target_bler:
            if MODULATIONS[modulation] * rate_1024 > MODULATIONS[best[1]] * best[2]:
                best = entry
    return best[0], best[1], best[2] / 1024


# ---------------------------------------------------------------------------------------------
# The link
# ---------------------------------------------------------------------------------------------


@dataclass
class LinkOutput:
    """What `DigitalLink.transmit` returns.

    Args:
        packets: per transmission, the received packets (`bytes`, or `None` where a block's CRC failed).
        channel_uses: per transmission, complex symbols sent.
        num_blocks / block_errors: per transmission, code blocks sent / failed.
        gain: per transmission, `|h|^2` (1 for AWGN).
        mode: `"full"` or `"abstraction"`.
    """

    packets: list = field(default_factory=list)
    channel_uses: list = field(default_factory=list)
    num_blocks: list = field(default_factory=list)
    block_errors: list = field(default_factory=list)
    gain: list = field(default_factory=list)
    mode: str = "full"


class DigitalLink:
    """Fixed-MCS digital link: `modulation`, `code_rate`, blocks of at most `max_block_bits` (incl. CRC), and
    `channel_code` `"ldpc"` (5G NR, rates [1/5, 948/1024]) or `"turbo"` (LTE, rate 1/3 or 1/2; full chain only).

    Example: see the module docstring. `transmit` is the only sending call.
    """

    def __init__(self, modulation: str = "16qam", code_rate: float = 0.5, max_block_bits: int = MAX_BLOCK_BITS,
                 num_bp_iterations: int = NUM_BP_ITERATIONS, channel_code: str = "ldpc"):  # fmt: skip
        self.modulation = modulation
        self.bits_per_symbol = bits_per_symbol_of(modulation)
        self.channel_code, self.code_rate = check_channel_code(channel_code, code_rate)
        block_sizes(1, max_block_bits)  # validates max_block_bits
        self.max_block_bits = int(max_block_bits)
        self.num_bp_iterations = int(num_bp_iterations)
        self._coders: dict = {}

    def __repr__(self) -> str:
        return (
            f"DigitalLink(modulation={self.modulation!r}, code_rate={self.code_rate:.4f}, "
            f"max_block_bits={self.max_block_bits}, channel_code={self.channel_code!r})"
        )

    def channel_uses(self, payload_bits: int) -> int:
        return count_channel_uses(
            payload_bits, self.code_rate, self.bits_per_symbol, self.max_block_bits, self.channel_code
        )

    def transmit(self, transmissions, snr_db, channel_type: str = "awgn", mode: str = "full", generator=None,
                 gains=None) -> LinkOutput:  # fmt: skip
        """Send each transmission (a list of non-empty `bytes` packets, e.g. one sample's frames) over its own
        channel realization.

        Args:
            transmissions (`list[list[bytes]]`): `(transmissions, packets)`.
            snr_db (`float` or sequence of `(transmissions,)`): Es/N0 [dB] per complex symbol, `(-inf, inf]`.
            channel_type (`str`): `"awgn"` or `"rayleigh"` (block fading, one `h` per transmission).
            mode (`str`): `"full"` (Sionna chain on real bits) or `"abstraction"` (calibrated LDPC BLER; not
                with `channel_code="turbo"`).
            generator (`torch.Generator`, *optional*): source of fading, noise and block-error draws.
            gains (sequence of `(transmissions,)`, *optional*): given `|h|^2` per transmission instead of drawing.
        """
        if channel_type not in CHANNEL_TYPES:
            raise ValueError(f"`channel_type` must be one of {CHANNEL_TYPES}, got {channel_type!r}.")
        if mode not in MODES:
            raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}.")
        if mode == "abstraction" and self.channel_code != "ldpc":
            raise ValueError(
                f"`mode`='abstraction' needs channel_code='ldpc' (the calibrated BLER tables are for 5G LDPC); "
                f"use mode='full' with channel_code={self.channel_code!r}."
            )
        count = len(transmissions)
        snrs = np.broadcast_to(np.asarray([check_snr_db(s) for s in np.atleast_1d(snr_db)], np.float64), (count,))
        for packets in transmissions:
            for packet in packets:
                if not isinstance(packet, (bytes, bytearray)) or not packet:
                    raise ValueError("Every packet must be non-empty `bytes` (an empty payload is not sent).")
        generator = torch.Generator().manual_seed(0) if generator is None else generator
        # 5. channel realization per transmission: h ~ CN(0, 1) -> |h|^2 ~ Exp(1)
        if gains is not None:
            gain = np.asarray(gains, np.float64).reshape(count)
        elif channel_type == "rayleigh":
            parts = torch.randn((count, 2), generator=generator, dtype=torch.float64) / math.sqrt(2.0)
            gain = parts.pow(2).sum(-1).numpy()
        else:
            gain = np.ones(count)
        with np.errstate(divide="ignore"):
            snr_eff_db = snrs + 10.0 * np.log10(gain)
        # 1. segmentation of every packet into blocks (transmission, packet, block) with their payload bits
        blocks = []
        for t, packets in enumerate(transmissions):
            for p, packet in enumerate(packets):
                bits = bytes_to_bits(bytes(packet))
                num_blocks, per_block, size = block_sizes(bits.size, self.max_block_bits)
                for b in range(num_blocks):
                    chunk = bits[b * per_block : (b + 1) * per_block]
                    blocks.append((t, p, size, chunk))
        if mode == "full":
            ok = self._decode_full(blocks, snr_eff_db, generator)
        else:
            sizes = np.array([size for _, _, size, _ in blocks])
            p_err = bler(self.modulation, self.code_rate, sizes, snr_eff_db[[t for t, *_ in blocks]])
            draws = torch.rand(len(blocks), generator=generator, dtype=torch.float64).numpy()
            ok = draws >= p_err
        out = LinkOutput(mode=mode, gain=gain.tolist())
        failed = [[False] * len(packets) for packets in transmissions]
        errors = [0] * count
        for (t, p, _, _), good in zip(blocks, ok):
            if not good:
                failed[t][p] = True
                errors[t] += 1
        for t, packets in enumerate(transmissions):
            out.packets.append([None if failed[t][p] else bytes(packet) for p, packet in enumerate(packets)])
            out.channel_uses.append(sum(self.channel_uses(8 * len(packet)) for packet in packets))
            out.num_blocks.append(sum(block_sizes(8 * len(packet), self.max_block_bits)[0] for packet in packets))
            out.block_errors.append(errors[t])
        return out

    # ------------------------------------------------------------------ full chain (Sionna)

    def _coder(self, size: int):
        """(CRC encoder, CRC decoder, channel encoder, channel decoder, mapper, demapper) for blocks of `size`
        bits: LDPC and BP, or Turbo (padded to whole symbols) and BCJR."""
        if size not in self._coders:
            import sionna.phy
            from sionna.phy.fec.crc import CRCDecoder, CRCEncoder
            from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPC5GEncoder
            from sionna.phy.mapping import Demapper, Mapper

            sionna.phy.config.device = "cpu"
            crc_encoder = CRCEncoder("CRC24A", k=size - CRC_BITS)
            if self.channel_code == "turbo":
                turbo = TurboCoder(size, self.code_rate, self.bits_per_symbol)
                encoder, decoder = turbo.encode, turbo.decode
            else:
                encoder = LDPC5GEncoder(size, coded_bits(size, self.code_rate, self.bits_per_symbol))
                decoder = LDPC5GDecoder(encoder, num_iter=self.num_bp_iterations, hard_out=True)
            self._coders[size] = (
                crc_encoder, CRCDecoder(crc_encoder), encoder, decoder,
                Mapper("qam", self.bits_per_symbol), Demapper("app", "qam", self.bits_per_symbol),
            )  # fmt: skip
        return self._coders[size]

    @torch.no_grad()
    def run_blocks(self, payload: torch.Tensor, snr_eff_db, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Steps 2-6 on blocks of equal size: payload bits `(blocks, K - 24)` (0/1 floats) at effective SNRs
        `(blocks,)` [dB] -> (decoded payload bits `(blocks, K - 24)`, CRC pass flags `(blocks,)` bool)."""
        size = payload.shape[-1] + CRC_BITS
        if size % BLOCK_GRANULARITY_BITS or size > self.max_block_bits:
            raise ValueError(f"Block size K = {size} must be a multiple of 32 and <= {self.max_block_bits}.")
        crc_encoder, crc_decoder, encoder, decoder, mapper, demapper = self._coder(size)
        generator = torch.Generator().manual_seed(0) if generator is None else generator
        # 2.-4. CRC24A, LDPC or Turbo, QAM: (blocks, n / Q_m) complex64 with unit average energy
        symbols = mapper(encoder(crc_encoder(payload.float())))
        # 5.-6. y / h = x + n / h: AWGN at no_eff = no / |h|^2 per block, APP demapping, BP (or BCJR), CRC
        snr = torch.as_tensor(np.broadcast_to(snr_eff_db, (payload.shape[0],)).copy(), dtype=torch.float32)
        no_eff = torch.pow(10.0, -snr / 10.0).clamp(min=1e-12, max=1e12).unsqueeze(-1)  # (blocks, 1)
        noise = torch.randn((*symbols.shape, 2), generator=generator, dtype=torch.float32)
        received = symbols + torch.view_as_complex(noise.contiguous()) * torch.sqrt(no_eff / 2.0)
        llr = demapper(received, no_eff.expand(symbols.shape))
        decoded, crc_valid = crc_decoder(decoder(llr))
        return decoded, crc_valid.reshape(-1).bool()

    def _decode_full(self, blocks, snr_eff_db: np.ndarray, generator) -> np.ndarray:
        """`run_blocks` for every block, batched by block size; returns CRC pass flags `(blocks,)`."""
        ok = np.zeros(len(blocks), bool)
        by_size: dict[int, list[int]] = {}
        for index, (_, _, size, _) in enumerate(blocks):
            by_size.setdefault(size, []).append(index)
        for size in sorted(by_size):
            indices = by_size[size]
            payload = np.zeros((len(indices), size - CRC_BITS), np.float32)  # zero filler bits
            for row, index in enumerate(indices):
                chunk = blocks[index][3]
                payload[row, : chunk.size] = chunk
            snr = snr_eff_db[[blocks[i][0] for i in indices]]
            _, crc_valid = self.run_blocks(torch.from_numpy(payload), snr, generator)
            ok[indices] = crc_valid.numpy()
        return ok


def uncoded_ber(modulation: str, snr_db: float, num_symbols: int, generator=None) -> float:
    """Bit error rate of uncoded Gray QAM on AWGN (Sionna mapper + max-log hard decisions) at Es/N0 `snr_db`."""
    from sionna.phy.mapping import Demapper, Mapper

    bits_per_symbol = bits_per_symbol_of(modulation)
    no = 10.0 ** (-check_snr_db(snr_db) / 10.0)
    generator = torch.Generator().manual_seed(0) if generator is None else generator
    bits = torch.randint(0, 2, (num_symbols * bits_per_symbol,), generator=generator).float()
    symbols = Mapper("qam", bits_per_symbol, device="cpu")(bits)
    noise = torch.view_as_complex(torch.randn((*symbols.shape, 2), generator=generator).contiguous())
    demapper = Demapper("maxlog", "qam", bits_per_symbol, device="cpu")
    llr = demapper(symbols + noise * math.sqrt(no / 2.0), torch.tensor(no))
    return float(((llr > 0).float() != bits).float().mean())


def qam16_ber_closed_form(snr_db: float) -> float:
    """Exact BER of Gray 16-QAM on AWGN at Es/N0 `snr_db`: per real dimension Gray 4-PAM with levels
    `{+-1, +-3} a`, `a = sqrt(Es / 10)`, noise std `sqrt(no / 2)`: sign bit `(Q(a/s) + Q(3a/s)) / 2`, inner bit
    `(2 Q(a/s) + Q(3a/s) - Q(5a/s)) / 2`; BER is their mean."""
    from scipy.special import ndtr

    no = 10.0 ** (-check_snr_db(snr_db) / 10.0)
    r = math.sqrt(1.0 / 10.0) / math.sqrt(no / 2.0)
    q = lambda x: float(ndtr(-x))  # noqa: E731
    sign_bit = (q(r) + q(3 * r)) / 2
    inner_bit = (2 * q(r) + q(3 * r) - q(5 * r)) / 2
    return (sign_bit + inner_bit) / 2


__all__ = [
    "CHANNEL_CODES",
    "CHANNEL_TYPES",
    "CODE_RATE_MAX",
    "CODE_RATE_MIN",
    "DigitalLink",
    "LinkOutput",
    "MCS_TABLE",
    "MODULATIONS",
    "bits_per_symbol_of",
    "bler",
    "block_sizes",
    "capacity_bits_per_use",
    "check_channel_code",
    "check_code_rate",
    "coded_bits",
    "count_channel_uses",
    "qam16_ber_closed_form",
    "select_mcs",
    "shannon_channel_uses",
    "uncoded_ber",
]
