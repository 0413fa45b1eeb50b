"""Monte-Carlo BLER calibration of the digital link's full chain (Sionna 5G LDPC + CRC24A + QAM on AWGN).

For each configuration (the fixed 16-QAM + LDPC 1/2 and every `MCS_TABLE` entry) and block size K:
  1. coarse probe: 16 blocks per point, 1 dB steps up from the Shannon SNR `10 log10(2^(R Q_m) - 1)`, until
     fewer than all blocks fail;
  2. fine grid: `--blocks` blocks per point, 0.5 dB steps from 0.5 dB below that point, until two points in a row
     have no block error;
  3. maximum-likelihood fit of `BLER = Q((snr_db - snr50_db) / width_db)` to all points (binomial counts).

Writes `results/semantic_vs_digital/bler_awgn.json` (raw counts, fits, seconds) and `pipelines/bler_tables.py`
(the fits the abstraction mode reads). Rayleigh block fading uses the same tables at the effective SNR.

    python benchmarks/digital_link_calibration.py [--blocks 64] [--sizes 256 1024] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import math
import pprint
import time
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import minimize
from scipy.special import ndtr

from tokcom.pipelines.digital_link import CRC_BITS, MCS_TABLE, DigitalLink, mcs_key

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "results" / "semantic_vs_digital" / "bler_awgn.json"
TABLES = ROOT / "pipelines" / "bler_tables.py"
FIXED = ("16qam", 0.5)


def configurations() -> list[tuple[str, float]]:
    return [FIXED] + [(modulation, rate / 1024) for _, modulation, rate in MCS_TABLE]


def measure(link: DigitalLink, size: int, snr_db: float, num_blocks: int, generator: torch.Generator) -> dict:
    payload = torch.randint(0, 2, (num_blocks, size - CRC_BITS), generator=generator).float()
    decoded, crc_valid = link.run_blocks(payload, snr_db, generator)
    damaged = (decoded != payload).any(-1)
    return {
        "snr_db": snr_db,
        "blocks": num_blocks,
        "block_errors": int((~crc_valid).sum()),
        "bit_errors": int((decoded != payload).sum()),
        "undetected": int((damaged & crc_valid).sum()),  # damaged blocks the CRC passed
    }


def fit(points: list[dict]) -> tuple[float, float]:
    """ML fit of `Q((s - snr50) / width)`; returns `(snr50_db, width_db)`."""
    snr = np.array([p["snr_db"] for p in points])
    errors = np.array([p["block_errors"] for p in points])
    total = np.array([p["blocks"] for p in points])

    def nll(theta):
        p = np.clip(ndtr(-(snr - theta[0]) / math.exp(theta[1])), 1e-12, 1 - 1e-12)
        return -np.sum(errors * np.log(p) + (total - errors) * np.log(1 - p))

    mid = snr[np.argmin(np.abs(errors / total - 0.5))]
    best = minimize(nll, x0=[mid, math.log(0.3)], method="Nelder-Mead", options={"xatol": 1e-4, "fatol": 1e-6})
    return float(best.x[0]), float(max(math.exp(best.x[1]), 0.02))


def calibrate(modulation: str, code_rate: float, size: int, num_blocks: int, generator) -> dict:
    link = DigitalLink(modulation, code_rate)
    start = 10 * math.log10(2 ** (code_rate * link.bits_per_symbol) - 1)
    points = []
    snr = round(start * 2) / 2  # 1. coarse probe
    while True:
        point = measure(link, size, snr, 16, generator)
        points.append(point)
        if point["block_errors"] < point["blocks"] or snr > start + 10:
            break
        snr += 1.0
    snr -= 0.5  # 2. fine grid
    clean = 0
    while clean < 2 and snr < start + 12:
        point = measure(link, size, snr, num_blocks, generator)
        points.append(point)
        clean = clean + 1 if point["block_errors"] == 0 else 0
        snr += 0.5
    snr50_db, width_db = fit(points)  # 3.
    return {"snr50_db": snr50_db, "width_db": width_db, "points": points}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", type=int, default=64)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # BP decoding of small batches: extra threads only oversubscribe a shared CPU
    generator = torch.Generator().manual_seed(args.seed)
    began = time.time()
    tables, report = {}, {}
    for modulation, code_rate in configurations():
        key = mcs_key(modulation, code_rate)
        for size in args.sizes:
            t0 = time.time()
            entry = calibrate(modulation, code_rate, size, args.blocks, generator)
            entry["seconds"] = time.time() - t0
            report.setdefault(key, {})[str(size)] = entry
            tables.setdefault(key, {})[str(size)] = [round(entry["snr50_db"], 4), round(entry["width_db"], 4)]
            print(f"{key} K={size}: snr50 {entry['snr50_db']:.2f} dB, width {entry['width_db']:.2f} dB, "
                  f"{len(entry['points'])} points, {entry['seconds']:.0f} s", flush=True)  # fmt: skip
    command = "python benchmarks/digital_link_calibration.py " + " ".join(
        [f"--blocks {args.blocks}", "--sizes " + " ".join(map(str, args.sizes)), f"--seed {args.seed}"]
    )
    result = {
        "command": command,
        "mode": "full",
        "channel": "awgn, snr_db = Es/N0 per complex symbol, no = 10**(-snr_db/10)",
        "chain": "CRC24A + 5G NR LDPC (Sionna 2.2, BP sum-product, 20 iterations) + Gray QAM, APP demapping",
        "model": "BLER = Q((snr_db - snr50_db) / width_db), maximum-likelihood fit",
        "tables": report,
        "seconds": time.time() - began,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    header = TABLES.read_text().split("BLER_TABLES = ")[0]
    TABLES.write_text(header + "BLER_TABLES = " + pprint.pformat(tables, width=110, sort_dicts=True) + "\n")
    print(f"wrote {OUT} and {TABLES} in {result['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
