"""Benchmark of the allocator for problem (16): optimality, speed against SLSQP, scaling, proposed vs alternating.

    python benchmarks/allocation_benchmark.py            # writes results/allocation/benchmark.json
    python benchmarks/allocation_benchmark.py --quick    # fewer instances, for a smoke run

1. Optimality on random instances with the paper's Table I parameters (B^max 3 MHz, P^max 23 dBm, N0 -174 dBm/Hz,
   lambda 0.6, S^max visual 128 / audio 64, distances uniform in [0.3, 0.5] km; loss parameters: the default
   network's placeholders with alpha and beta scaled by U(0.5, 1.5)): the continuous optimum of `method="proposed"`
   against an independent reference, the better of (a) a dense scan over the latency T with the fixed-T convex
   problem solved by scipy SLSQP (refined by a bounded scalar search around the best grid point) and (b) SLSQP on the
   joint problem from several random starts. Nothing of `tokcom.pipelines.allocation_solvers` is used by the reference.
2. Speed: `allocate(problem)` against SLSQP (analytic gradients) on the joint problem at 50 devices.
3. Scaling: `allocate` time for 10, 100, 1000, 10000 devices.
4. Proposed vs the paper's alternating method on the instances of 1. and at 50 devices.
5. Optimality when per-device boxes (16d)-(16e) bind (2-4 devices, boxes 10-60 % of the budgets), where the
   proposed method switches from the one-price dual to the exact convex scalar search over T.

Large networks replicate the Table I budgets per pair of devices (B^max = 1.5 MHz x M, P^max = 100 mW x M) and scale
lambda so that lambda / (1 - lambda) = 1.5 x 2 / M: the latency term is a max over devices but the loss term a sum,
so this keeps the per-device trade-off of the two-device network (interior token lengths).
All random draws come from `numpy.random.default_rng(seed)`. Ratios are measured in one run on one machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import scipy
from scipy.optimize import minimize, minimize_scalar

from tokcom.pipelines.allocation import DEFAULT_BITS_PER_TOKEN, allocate, default_network

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "results" / "allocation" / "benchmark.json"
LN2 = math.log(2.0)


# ---------------------------------------------------------------------------------------------
# Instances
# ---------------------------------------------------------------------------------------------


def table1_instance(rng) -> dict:
    """Two devices (visual 128, audio 64 tokens) with Table I budgets and random distances / loss shapes."""
    problem = default_network()
    for device in problem["devices"]:
        device["distance_km"] = float(rng.uniform(0.3, 0.5))
        device["phi"]["alpha"] *= float(rng.uniform(0.5, 1.5))
        device["phi"]["beta"] *= float(rng.uniform(0.5, 1.5))
    return problem


def boxed_instance(rng) -> dict:
    """2-4 devices with Table I budgets and per-device boxes (16d)-(16e) that bind (70 % chance each)."""
    problem = default_network()
    base = problem["devices"]
    problem["devices"] = []
    for i in range(int(rng.integers(2, 5))):
        device = json.loads(json.dumps(base[i % 2]))
        device["name"] = f"{device['name']}{i}"
        device["distance_km"] = float(rng.uniform(0.3, 0.5))
        device["phi"]["alpha"] *= float(rng.uniform(0.5, 1.5))
        device["phi"]["beta"] *= float(rng.uniform(0.5, 1.5))
        if rng.random() < 0.7:
            device["bandwidth_hz_max"] = float(rng.uniform(0.1, 0.6) * problem["bandwidth_hz"])
        if rng.random() < 0.7:
            device["power_w_max"] = float(rng.uniform(0.1, 0.6) * 10 ** ((problem["power_dbm"] - 30) / 10))
        problem["devices"].append(device)
    return problem


def large_instance(rng, num_devices: int) -> dict:
    """`num_devices` devices, Table I budgets per pair of devices, lambda scaled to keep the trade-off interior."""
    base = default_network()["devices"]
    devices = []
    for i in range(num_devices):
        template = base[i % 2]
        devices.append(
            {
                "name": f"{template['name']}{i}",
                "distance_km": float(rng.uniform(0.3, 0.5)),
                "tokens_max": template["tokens_max"],
                "phi": {
                    "alpha": template["phi"]["alpha"] * float(rng.uniform(0.5, 1.5)),
                    "beta": template["phi"]["beta"] * float(rng.uniform(0.5, 1.5)),
                    "gamma": template["phi"]["gamma"],
                },
            }
        )
    ratio = 1.5 * 2.0 / num_devices
    return {
        "bandwidth_hz": 1.5e6 * num_devices,
        "power_w": 0.1 * num_devices,
        "noise_dbm_per_hz": -174.0,
        "weight": ratio / (1.0 + ratio),
        "bits_per_token": DEFAULT_BITS_PER_TOKEN,
        "devices": devices,
    }


# ---------------------------------------------------------------------------------------------
# Independent reference (plain numpy + scipy.optimize; shares nothing with the allocator)
# ---------------------------------------------------------------------------------------------


class Reference:
    """Problem (16) written out directly, with SLSQP-based solvers. Variables are scaled to O(1)."""

    def __init__(self, problem: dict):
        self.bandwidth = float(problem["bandwidth_hz"])
        self.power = float(problem["power_w"]) if "power_w" in problem else 10 ** ((problem["power_dbm"] - 30) / 10)
        noise = 10 ** ((problem.get("noise_dbm_per_hz", -174.0) - 30) / 10)
        devices = problem["devices"]
        gain = np.array([10 ** (-(128.1 + 37.6 * math.log10(d["distance_km"])) / 10) for d in devices])
        self.rho = noise / gain
        self.smax = np.array([d["tokens_max"] for d in devices], dtype=float)
        self.smin = np.array([d.get("tokens_min", 1) for d in devices], dtype=float)
        self.alpha = np.array([d["phi"]["alpha"] for d in devices])
        self.beta = np.array([d["phi"]["beta"] for d in devices])
        self.gamma = np.array([d["phi"]["gamma"] for d in devices])
        self.weight = float(problem["weight"])
        self.q = float(problem["bits_per_token"])
        self.m = len(devices)
        # per-device boxes (16d)-(16e) as fractions of the budgets (SLSQP bounds)
        self.b_box = np.array([min(d.get("bandwidth_hz_max", self.bandwidth), self.bandwidth) for d in devices])
        self.b_box = self.b_box / self.bandwidth
        self.p_box = np.array([min(d.get("power_w_max", self.power), self.power) for d in devices]) / self.power

    def phi(self, s):
        return (self.alpha / s) ** self.beta + self.gamma

    def dphi(self, s):
        return -self.beta * (self.alpha / s) ** self.beta / s

    def rate(self, b, p):  # b, p in Hz, W
        return b * np.log1p(p / (self.rho * b)) / LN2

    def rate_grad(self, b, p):
        x = p / (self.rho * b)
        d_b = (np.log1p(x) - x / (1 + x)) / LN2
        d_p = b / ((1 + x) * self.rho * b) / LN2
        return d_b, d_p

    def cost(self, b, p, s):
        """True objective (16a) of an allocation (latency = max over devices)."""
        with np.errstate(divide="ignore"):  # a device without bandwidth or power: infinite latency
            latency = np.max(s * self.q / self.rate(b, p))
        return (1 - self.weight) * latency + self.weight * np.sum(self.phi(s))

    def feasible(self, b, p, s, tol=1e-6):
        return (
            b.sum() <= self.bandwidth * (1 + tol) and p.sum() <= self.power * (1 + tol)
            and np.all(b <= self.b_box * self.bandwidth * (1 + tol))
            and np.all(p <= self.p_box * self.power * (1 + tol))
            and np.all(b > 0) and np.all(p >= -tol * self.power)
            and np.all(s >= self.smin * (1 - tol)) and np.all(s <= self.smax * (1 + tol))
        )

    # (a) fixed-T convex problem: min lambda sum phi(s) s.t. s q <= T R(B, p), budgets, boxes
    def inner(self, latency, start=None):
        m = self.m
        bs, ps, ss = self.bandwidth, self.power, self.smax

        def unpack(x):
            return x[:m] * bs, x[m : 2 * m] * ps, x[2 * m :] * ss

        def objective(x):
            return float(self.weight * np.sum(self.phi(unpack(x)[2])))

        def objective_grad(x):
            g = np.zeros(3 * m)
            g[2 * m :] = self.weight * self.dphi(unpack(x)[2]) * ss
            return g

        def cons(x):  # T R / q - s >= 0 (in tokens)
            b, p, s = unpack(x)
            return latency * self.rate(b, p) / self.q - s

        def cons_jac(x):
            b, p, s = unpack(x)
            d_b, d_p = self.rate_grad(b, p)
            jac = np.zeros((m, 3 * m))
            idx = np.arange(m)
            jac[idx, idx] = latency * d_b / self.q * bs
            jac[idx, m + idx] = latency * d_p / self.q * ps
            jac[idx, 2 * m + idx] = -ss
            return jac

        budget = np.zeros((2, 3 * m))
        budget[0, :m] = -1.0
        budget[1, m : 2 * m] = -1.0
        constraints = [
            {"type": "ineq", "fun": cons, "jac": cons_jac},
            {"type": "ineq", "fun": lambda x: np.array([1.0, 1.0]) + budget @ x, "jac": lambda x: budget},
        ]
        bounds = list(zip(np.full(m, 1e-9), self.b_box)) + list(zip(np.zeros(m), self.p_box))
        bounds += list(zip(self.smin / ss, np.ones(m)))
        if start is None:
            b0, p0 = np.minimum(np.full(m, 1.0 / m), self.b_box), np.minimum(np.full(m, 1.0 / m), self.p_box)
            s0 = np.clip(latency * self.rate(b0 * bs, p0 * ps) / self.q, self.smin, ss) / ss
            start = np.concatenate([b0, p0, s0])
        result = minimize(objective, start, jac=objective_grad, bounds=bounds, constraints=constraints,
                          method="SLSQP", options={"ftol": 1e-14, "maxiter": 500})
        b, p, s = unpack(result.x)
        if not self.feasible(b, p, s):
            return math.inf, None
        return self.cost(b, p, s), result.x

    def dense_t_scan(self, points: int = 40):
        # upper end: equal split with every device at S^max is feasible, and no optimum needs a larger T
        b_eq = np.minimum(1.0 / self.m, self.b_box) * self.bandwidth
        p_eq = np.minimum(1.0 / self.m, self.p_box) * self.power
        t_hi = float(np.max(self.smax * self.q / self.rate(b_eq, p_eq)))
        grid = np.geomspace(t_hi * 1e-2, t_hi, points)
        values = [self.inner(t)[0] for t in grid]
        k = int(np.argmin(values))
        lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, points - 1)]
        refined = minimize_scalar(lambda t: self.inner(t)[0], bounds=(lo, hi), method="bounded",
                                  options={"xatol": 1e-9 * hi})
        return min(float(refined.fun), float(values[k]))

    # (b) joint problem: variables (B, p, s, T), constraints s q <= T R(B, p)
    def joint_slsqp(self, start_bps=None, rng=None, maxiter=1000):
        m = self.m
        bs, ps, ss = self.bandwidth, self.power, self.smax
        if start_bps is None:
            b0 = np.minimum(rng.dirichlet(np.ones(m)), self.b_box) * bs
            p0 = np.minimum(rng.dirichlet(np.ones(m)), self.p_box) * ps
            s0 = rng.uniform(self.smin, ss)
        else:
            b0, p0, s0 = start_bps
        t0 = float(np.max(s0 * self.q / self.rate(b0, p0)))
        t_scale = t0

        def unpack(x):
            return x[:m] * bs, x[m : 2 * m] * ps, x[2 * m : 3 * m] * ss, x[3 * m] * t_scale

        def objective(x):
            _, _, s, t = unpack(x)
            return float((1 - self.weight) * t + self.weight * np.sum(self.phi(s)))

        def objective_grad(x):
            _, _, s, _ = unpack(x)
            g = np.zeros(3 * m + 1)
            g[2 * m : 3 * m] = self.weight * self.dphi(s) * ss
            g[3 * m] = (1 - self.weight) * t_scale
            return g

        def cons(x):  # T R / q - s >= 0
            b, p, s, t = unpack(x)
            return t * self.rate(b, p) / self.q - s

        def cons_jac(x):
            b, p, s, t = unpack(x)
            d_b, d_p = self.rate_grad(b, p)
            jac = np.zeros((m, 3 * m + 1))
            idx = np.arange(m)
            jac[idx, idx] = t * d_b / self.q * bs
            jac[idx, m + idx] = t * d_p / self.q * ps
            jac[idx, 2 * m + idx] = -ss
            jac[:, 3 * m] = self.rate(b, p) / self.q * t_scale
            return jac

        budget = np.zeros((2, 3 * m + 1))
        budget[0, :m] = -1.0
        budget[1, m : 2 * m] = -1.0
        constraints = [
            {"type": "ineq", "fun": cons, "jac": cons_jac},
            {"type": "ineq", "fun": lambda x: np.array([1.0, 1.0]) + budget @ x, "jac": lambda x: budget},
        ]
        bounds = list(zip(np.full(m, 1e-9), self.b_box)) + list(zip(np.zeros(m), self.p_box))
        bounds += list(zip(self.smin / ss, np.ones(m))) + [(1e-9, None)]
        start = np.concatenate([b0 / bs, p0 / ps, s0 / ss, [1.0]])
        result = minimize(objective, start, jac=objective_grad, bounds=bounds, constraints=constraints,
                          method="SLSQP", options={"ftol": 1e-12, "maxiter": maxiter})
        b, p, s, _ = unpack(result.x)
        if not self.feasible(b, p, s):
            return math.inf, result
        return float(self.cost(b, p, s)), result


# ---------------------------------------------------------------------------------------------
# Benchmark parts
# ---------------------------------------------------------------------------------------------


def timed(fn, repeats: int = 1):
    """Run `fn` `repeats` times; return (last result, median seconds)."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, float(np.median(times))


def optimality(num_instances: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(num_instances):
        problem = table1_instance(rng)
        proposed, t_proposed = timed(lambda: allocate(problem, "proposed"))
        alternating, t_alternating = timed(lambda: allocate(problem, "alternating"))
        pbwf, era = allocate(problem, "pb-wf"), allocate(problem, "era")
        reference = Reference(problem)
        scan = reference.dense_t_scan()
        joint = min(reference.joint_slsqp(rng=rng)[0] for _ in range(8))
        best = min(scan, joint)
        row = {
            "proposed_continuous": proposed["cost_continuous"],
            "proposed_integer": proposed["cost"],
            "lower_bound": proposed["lower_bound"],
            "reference": best,
            "reference_t_scan": scan,
            "reference_joint_slsqp_8_starts": joint,
            "gap_vs_reference": (proposed["cost_continuous"] - best) / best,
            "alternating_continuous": alternating["cost_continuous"],
            "alternating_integer": alternating["cost"],
            "alternating_iterations": alternating["iterations"],
            "alternating_converged": alternating["converged"],
            "pb_wf": pbwf["cost"],
            "era": era["cost"],
            "time_proposed_s": t_proposed,
            "time_alternating_s": t_alternating,
            "tokens_continuous": [d["tokens_continuous"] for d in proposed["devices"]],
        }
        rows.append(row)
        print(f"[optimality {k + 1}/{num_instances}] proposed {row['proposed_continuous']:.8f} reference {best:.8f} "
              f"gap {row['gap_vs_reference']:+.2e} alternating {row['alternating_continuous']:.8f} "
              f"PB-WF {row['pb_wf']:.5f} ERA {row['era']:.5f}", flush=True)
    gaps = np.array([r["gap_vs_reference"] for r in rows])
    alt_gap = np.array(
        [(r["alternating_continuous"] - r["proposed_continuous"]) / r["proposed_continuous"] for r in rows]
    )
    return {
        "instances": num_instances,
        "seed": seed,
        "max_relative_gap_vs_reference": float(gaps.max()),
        "min_relative_gap_vs_reference": float(gaps.min()),
        "max_relative_gap_to_own_lower_bound": float(
            max((r["proposed_continuous"] - r["lower_bound"]) / r["proposed_continuous"] for r in rows)
        ),
        "proposed_integer_never_worse_than_pb_wf": bool(all(r["proposed_integer"] <= r["pb_wf"] for r in rows)),
        "proposed_integer_never_worse_than_era": bool(all(r["proposed_integer"] <= r["era"] for r in rows)),
        "proposed_continuous_never_worse_than_pb_wf_era": bool(
            all(r["proposed_continuous"] <= min(r["pb_wf"], r["era"]) for r in rows)
        ),
        "mean_saving_vs_pb_wf": float(np.mean([(r["pb_wf"] - r["proposed_integer"]) / r["pb_wf"] for r in rows])),
        "mean_saving_vs_era": float(np.mean([(r["era"] - r["proposed_integer"]) / r["era"] for r in rows])),
        "alternating_relative_excess_cost": {"max": float(alt_gap.max()), "mean": float(alt_gap.mean()),
                                             "min": float(alt_gap.min())},
        "alternating_iterations": {"max": int(max(r["alternating_iterations"] for r in rows)),
                                   "mean": float(np.mean([r["alternating_iterations"] for r in rows]))},
        "alternating_all_converged": bool(all(r["alternating_converged"] for r in rows)),
        "median_time_proposed_s": float(np.median([r["time_proposed_s"] for r in rows])),
        "median_time_alternating_s": float(np.median([r["time_alternating_s"] for r in rows])),
        "rows": rows,
    }


def optimality_with_boxes(num_instances: int, seed: int) -> dict:
    """Per-device boxes that bind: the exact scalar search over T (not the one-price dual) against the reference."""
    rng = np.random.default_rng(seed + 1000)
    rows = []
    for k in range(num_instances):
        problem = boxed_instance(rng)
        proposed, t_proposed = timed(lambda: allocate(problem, "proposed"))
        alternating = allocate(problem, "alternating")
        reference = Reference(problem)
        best = min(reference.dense_t_scan(), min(reference.joint_slsqp(rng=rng)[0] for _ in range(8)))
        rows.append({
            "devices": len(problem["devices"]),
            "proposed_continuous": proposed["cost_continuous"],
            "reference": best,
            "gap_vs_reference": (proposed["cost_continuous"] - best) / best,
            "alternating_continuous": alternating["cost_continuous"],
            "pb_wf": allocate(problem, "pb-wf")["cost"],
            "era": allocate(problem, "era")["cost"],
            "proposed_integer": proposed["cost"],
            "time_proposed_s": t_proposed,
        })
        r = rows[-1]
        print(f"[boxes {k + 1}/{num_instances}] {r['devices']} devices: proposed {r['proposed_continuous']:.8f} "
              f"reference {best:.8f} gap {r['gap_vs_reference']:+.2e} alternating {r['alternating_continuous']:.8f} "
              f"({t_proposed * 1e3:.0f} ms)", flush=True)
    gaps = np.array([r["gap_vs_reference"] for r in rows])
    return {
        "instances": num_instances,
        "max_relative_gap_vs_reference": float(gaps.max()),
        "min_relative_gap_vs_reference": float(gaps.min()),
        "proposed_integer_never_worse_than_pb_wf_era": bool(
            all(r["proposed_integer"] <= min(r["pb_wf"], r["era"]) for r in rows)
        ),
        "alternating_max_relative_excess_cost": float(
            max((r["alternating_continuous"] - r["proposed_continuous"]) / r["proposed_continuous"] for r in rows)
        ),
        "median_time_proposed_s": float(np.median([r["time_proposed_s"] for r in rows])),
        "max_time_proposed_s": float(np.max([r["time_proposed_s"] for r in rows])),
        "rows": rows,
    }


def speed_vs_slsqp(num_devices: int, seeds: list[int]) -> dict:
    rows = []
    for seed in seeds:
        problem = large_instance(np.random.default_rng(seed), num_devices)
        allocate(problem)  # warm-up (imports, caches)
        proposed, t_proposed = timed(lambda: allocate(problem, "proposed"), repeats=5)
        alternating, t_alternating = timed(lambda: allocate(problem, "alternating"))
        reference = Reference(problem)
        m = reference.m
        start = (np.full(m, reference.bandwidth / m), np.full(m, reference.power / m), np.floor(reference.smax / 2))
        (slsqp_cost, slsqp_result), t_slsqp = timed(lambda: reference.joint_slsqp(start_bps=start))
        row = {
            "seed": seed,
            "devices": num_devices,
            "proposed_cost_continuous": proposed["cost_continuous"],
            "proposed_cost_integer": proposed["cost"],
            "slsqp_cost": slsqp_cost,
            "slsqp_success": bool(slsqp_result.success),
            "slsqp_iterations": int(slsqp_result.nit),
            "alternating_cost_continuous": alternating["cost_continuous"],
            "time_proposed_s": t_proposed,
            "time_slsqp_s": t_slsqp,
            "time_alternating_s": t_alternating,
            "speedup_vs_slsqp": t_slsqp / t_proposed,
            "proposed_cost_le_slsqp": bool(proposed["cost_continuous"] <= slsqp_cost * (1 + 1e-12)),
            "proposed_integer_cost_le_slsqp": bool(proposed["cost"] <= slsqp_cost * (1 + 1e-12)),
        }
        rows.append(row)
        print(f"[speed {num_devices} devices, seed {seed}] proposed {t_proposed * 1e3:.2f} ms cost "
              f"{row['proposed_cost_continuous']:.6f} | SLSQP {t_slsqp:.2f} s cost {slsqp_cost:.6f} "
              f"(success {row['slsqp_success']}, {row['slsqp_iterations']} it) "
              f"| speedup {row['speedup_vs_slsqp']:.0f}x "
              f"| alternating {t_alternating * 1e3:.0f} ms cost {row['alternating_cost_continuous']:.6f}", flush=True)
    return {
        "devices": num_devices,
        "min_speedup_vs_slsqp": float(min(r["speedup_vs_slsqp"] for r in rows)),
        "median_speedup_vs_slsqp": float(np.median([r["speedup_vs_slsqp"] for r in rows])),
        "proposed_cost_le_slsqp_all": bool(all(r["proposed_cost_le_slsqp"] for r in rows)),
        "rows": rows,
    }


def scaling(sizes: list[int], seed: int, alternating_up_to: int) -> dict:
    rows = []
    for num_devices in sizes:
        problem = large_instance(np.random.default_rng(seed), num_devices)
        allocate(problem)  # warm-up
        result, t_proposed = timed(lambda: allocate(problem, "proposed"), repeats=3)
        tokens = np.array([d["tokens_continuous"] for d in result["devices"]])
        tops = np.array([d["tokens_max"] for d in problem["devices"]])
        row = {
            "devices": num_devices,
            "time_proposed_s": t_proposed,
            "iterations": result["iterations"],
            "cost": result["cost"],
            "fraction_interior_tokens": float(np.mean((tokens > 1 + 1e-9) & (tokens < tops - 1e-9))),
        }
        if num_devices <= alternating_up_to:
            alternating, t_alternating = timed(lambda: allocate(problem, "alternating"))
            row["time_alternating_s"] = t_alternating
            row["alternating_excess_cost"] = (alternating["cost_continuous"] - result["cost_continuous"]) / result[
                "cost_continuous"
            ]
        rows.append(row)
        extra = f", alternating {row['time_alternating_s']:.3f} s" if "time_alternating_s" in row else ""
        print(f"[scaling] {num_devices:6d} devices: proposed {t_proposed * 1e3:8.2f} ms "
              f"({row['fraction_interior_tokens']:.0%} interior token lengths){extra}", flush=True)
    base = rows[0]["time_proposed_s"]
    return {
        "rows": rows,
        "time_ratio_vs_smallest": {str(r["devices"]): r["time_proposed_s"] / base for r in rows},
        "largest_under_2_s": bool(rows[-1]["time_proposed_s"] < 2.0),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few instances (smoke run); results still written")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=str(OUTPUT))
    args = parser.parse_args(argv)

    num_instances = 5 if args.quick else 50
    speed_seeds = [args.seed] if args.quick else [args.seed, args.seed + 1, args.seed + 2]
    sizes = [10, 100, 1000] if args.quick else [10, 100, 1000, 10000]
    command = "python benchmarks/allocation_benchmark.py" + (" --quick" if args.quick else "") + (
        f" --seed {args.seed}" if args.seed else ""
    )
    started = time.perf_counter()
    report = {
        "command": command,
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "numpy": np.__version__,
                    "scipy": scipy.__version__, "cpu_count": os.cpu_count()},
        "optimality_table1": optimality(num_instances, args.seed),
        "optimality_with_boxes": optimality_with_boxes(5 if args.quick else 20, args.seed),
        "speed_vs_slsqp": speed_vs_slsqp(50, speed_seeds),
        "scaling": scaling(sizes, args.seed, alternating_up_to=1000),
    }
    report["wall_time_s"] = time.perf_counter() - started
    opt, speed, scale = report["optimality_table1"], report["speed_vs_slsqp"], report["scaling"]
    report["summary"] = {
        "max_relative_gap_vs_independent_reference": opt["max_relative_gap_vs_reference"],
        "max_relative_gap_vs_reference_with_boxes": report["optimality_with_boxes"]["max_relative_gap_vs_reference"],
        "proposed_never_worse_than_pb_wf_and_era": opt["proposed_integer_never_worse_than_pb_wf"]
        and opt["proposed_integer_never_worse_than_era"],
        "alternating_max_relative_excess_cost_table1": opt["alternating_relative_excess_cost"]["max"],
        "min_speedup_vs_slsqp_50_devices": speed["min_speedup_vs_slsqp"],
        "proposed_cost_le_slsqp_50_devices": speed["proposed_cost_le_slsqp_all"],
        "time_s_by_devices": {str(r["devices"]): r["time_proposed_s"] for r in scale["rows"]},
    }

    print("\n=== summary ===")
    print(f"optimality ({opt['instances']} Table I instances): max gap vs independent reference "
          f"{opt['max_relative_gap_vs_reference']:+.2e} (min {opt['min_relative_gap_vs_reference']:+.2e}); "
          f"never worse than PB-WF/ERA: {report['summary']['proposed_never_worse_than_pb_wf_and_era']}")
    boxes = report["optimality_with_boxes"]
    print(f"with binding per-device boxes ({boxes['instances']} instances): max gap vs reference "
          f"{boxes['max_relative_gap_vs_reference']:+.2e}, median time {boxes['median_time_proposed_s'] * 1e3:.0f} ms, "
          f"max {boxes['max_time_proposed_s'] * 1e3:.0f} ms")
    print(f"alternating (paper) vs proposed: excess cost max {opt['alternating_relative_excess_cost']['max']:.2e}, "
          f"mean {opt['alternating_relative_excess_cost']['mean']:.2e}")
    print(f"speed at 50 devices: min speedup vs SLSQP {speed['min_speedup_vs_slsqp']:.0f}x, "
          f"proposed cost <= SLSQP: {speed['proposed_cost_le_slsqp_all']}")
    print("scaling:")
    print(f"  {'devices':>8} {'proposed [ms]':>14} {'x smallest':>11} {'alternating [s]':>16}")
    for r in scale["rows"]:
        alt = f"{r['time_alternating_s']:16.3f}" if "time_alternating_s" in r else f"{'-':>16}"
        print(f"  {r['devices']:8d} {r['time_proposed_s'] * 1e3:14.2f} "
              f"{scale['time_ratio_vs_smallest'][str(r['devices'])]:11.1f} {alt}")
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
