"""Reproduce Figs. 2-4 of the TokCom letter on the default network (`tokcom.pipelines.allocation.default_network`).

    python benchmarks/allocation_figures.py

writes `results/allocation/figures.json` and
  fig2_cost_vs_bandwidth.png  total cost (16a) vs B^max in 1-5 MHz: proposed, alternating (paper), PB-WF, ERA
  fig3_cost_vs_power.png      total cost (16a) vs P^max in 10-30 dBm: same methods
  fig4_lambda.png             latency and summed validation loss of the proposed allocation vs lambda

Costs are those of the returned integer token lengths (`result["cost"]`); the continuous optima are in the JSON.
The loss model uses the default network's PLACEHOLDER parameters (see `default_network`), so the curves show the
allocator's behaviour, not the TokCom model's measured losses.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tokcom.pipelines.allocation import allocate, default_network  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUTPUT_DIR = ROOT / "results" / "allocation"
METHODS = ("proposed", "alternating", "pb-wf", "era")
LABELS = {"proposed": "Proposed (global)", "alternating": "Alternating (paper)", "pb-wf": "PB-WF", "era": "ERA"}
STYLES = {"proposed": "o-", "alternating": "x--", "pb-wf": "s-", "era": "^-"}


def sweep(key: str, values, transform=lambda v: v) -> dict:
    rows = []
    for i, value in enumerate(values):
        problem = default_network()
        problem[key] = transform(value)
        row = {"value": float(value)}
        for method in METHODS:
            result = allocate(problem, method)
            row[method] = {
                "cost": result["cost"],
                "cost_continuous": result["cost_continuous"],
                "latency_s": result["latency_s"],
                "loss": result["loss"],
                "tokens": [d["tokens"] for d in result["devices"]],
            }
        rows.append(row)
        print(f"[{key} {i + 1}/{len(values)}] {value:g}: " + ", ".join(f"{m} {row[m]['cost']:.4f}" for m in METHODS),
              flush=True)
    return {"parameter": key, "rows": rows}


def lambda_sweep(weights) -> dict:
    rows = []
    for i, weight in enumerate(weights):
        problem = copy.deepcopy(default_network())
        problem["weight"] = float(weight)
        result = allocate(problem)
        rows.append({
            "weight": float(weight),
            "latency_s": result["latency_s"],
            "loss": result["loss"],
            "cost": result["cost"],
            "tokens": [d["tokens"] for d in result["devices"]],
            "tokens_continuous": [d["tokens_continuous"] for d in result["devices"]],
        })
        print(f"[lambda {i + 1}/{len(weights)}] {weight:.2f}: latency {result['latency_s'] * 1e3:.1f} ms, "
              f"loss {result['loss']:.4f}, tokens {rows[-1]['tokens']}", flush=True)
    return {"rows": rows}


def plot_costs(data: dict, xlabel: str, path: Path, x_scale=1.0) -> None:
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    x = np.array([r["value"] for r in data["rows"]]) * x_scale
    for method in METHODS:
        ax.plot(x, [r[method]["cost"] for r in data["rows"]], STYLES[method], label=LABELS[method], markersize=5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Total cost (16a)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def plot_lambda(data: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    weights = [r["weight"] for r in data["rows"]]
    ax.plot(weights, [r["latency_s"] * 1e3 for r in data["rows"]], "o-", color="tab:blue", label="Latency")
    ax.set_xlabel(r"Weight $\lambda$")
    ax.set_ylabel("Latency [ms]", color="tab:blue")
    twin = ax.twinx()
    twin.plot(weights, [r["loss"] for r in data["rows"]], "s--", color="tab:red", label="Validation loss")
    twin.set_ylabel(r"Validation loss $\sum_m \varphi_m(s_m)$", color="tab:red")
    ax.grid(alpha=0.3)
    lines = ax.get_lines() + twin.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], loc="center left")
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", default=str(OUTPUT_DIR))
    args = parser.parse_args(argv)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    bandwidth = sweep("bandwidth_hz", np.linspace(1e6, 5e6, 9))
    power = sweep("power_dbm", np.linspace(10.0, 30.0, 11))
    weights = lambda_sweep(np.round(np.linspace(0.1, 0.9, 9), 2))
    report = {
        "command": "python benchmarks/allocation_figures.py",
        "network": default_network(),
        "note": "phi parameters are placeholders until fitted on the TokCom model (fit_performance_model)",
        "fig2_cost_vs_bandwidth": bandwidth,
        "fig3_cost_vs_power": power,
        "fig4_lambda": weights,
    }
    plot_costs(bandwidth, r"$B^{\max}$ [MHz]", out / "fig2_cost_vs_bandwidth.png", x_scale=1e-6)
    plot_costs(power, r"$P^{\max}$ [dBm]", out / "fig3_cost_vs_power.png")
    plot_lambda(weights, out / "fig4_lambda.png")
    (out / "figures.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for name in ("figures.json", "fig2_cost_vs_bandwidth.png", "fig3_cost_vs_power.png", "fig4_lambda.png"):
        print(f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
