"""Joint bandwidth, power and token-length allocation for token communication (TokCom letter, Sec. IV, problem 16).

Given the budgets of the non-text devices' uplink, choose for every device `m` a bandwidth `B_m` [Hz], a transmit
power `p_m` [W] and a token length `s_m` to minimize the weighted sum of the worst latency and the summed loss:

    min (1 - lambda) max_m T_m + lambda sum_m phi_m(s_m)                                          (16a)
    T_m = s_m q / (B_m log2(1 + h_m p_m / (N0 B_m)))                                              (14)
    phi_m(s) = (alpha_m / s) ** beta_m + gamma_m                                                  (15)
    sum B_m <= B^max, sum p_m <= P^max, 0 <= B_m <= B_m^max, 0 <= p_m <= P_m^max,
    s_min,m <= s_m <= S_m^max                                                                      (16b-f)

Methods (`METHODS`):

* `"proposed"` (default): the global optimum. Problem (16) is convex in `(T, s, B T, p T)` (see
  `tokcom.pipelines.allocation_solvers`), so an exact Lagrange dual in one scalar (or, when per-device boxes bind, a
  convex scalar search over `T`) solves it; the result carries a certified `lower_bound` when available.
* `"alternating"`: the paper's algorithm, exactly: (i) token lengths in closed form (eq. 19) with `T` from eq. (20),
  (ii) minimum latency for those lengths by bisection on `T'` with the min-power problem (22)-(25); repeated until
  the cost stops decreasing.
* `"pb-wf"`, `"era"`: the paper's baselines (bandwidth proportional to channel gain with water-filling power; equal
  bandwidth and power), both with half-maximum token lengths.
* `"max"`, `"half"`: fixed token lengths (maximum, half of maximum) with the minimum-latency bandwidth and power.

Token lengths are returned as integers: the continuous optimum is rounded down (at least `tokens_min`) and the
minimum-latency bandwidth and power are recomputed for the integer lengths, so the reported latency and cost are
achieved and every constraint holds. The continuous optimum is reported beside them.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np
from scipy.optimize import brentq, curve_fit

from tokcom.modeling.link_budget import (
    dbm_to_w,
    noise_power_w,
    received_snr_db,
    resolve_gain,
    shannon_rate_bps,
)

from .allocation_solvers import (
    Network,
    latency_per_device,
    loss,
    min_latency,
    solve_alternating,
    solve_proposed,
    total_cost,
)

METHODS = ("proposed", "alternating", "pb-wf", "era", "max", "half")

# Dedicated link of the text tokens (paper Sec. V): B_T = 0.5 MHz, p_T = 15 dBm, outside problem (16).
TEXT_LINK_DEFAULTS = {"bandwidth_hz": 0.5e6, "power_dbm": 15}

# q = d_T * 16 bit: one token embedding of Qwen2.5-1.5B (hidden size d_T = 1536) in bfloat16. The letter only says
# "q is the number of bits for each token vector" (eq. 14); the embeddings are sent as d_T / 2 complex symbols
# (eq. 4), so 16 bit per real entry (the model's bf16) is our choice.
QWEN25_HIDDEN_SIZE = 1536
DEFAULT_BITS_PER_TOKEN = QWEN25_HIDDEN_SIZE * 16

_PROBLEM_KEYS = (
    "bandwidth_hz", "power_dbm", "power_w", "noise_dbm_per_hz", "weight", "bits_per_token", "devices", "name",
    "description",
)
_DEVICE_KEYS = (
    "name", "distance_km", "gain_db", "gain", "bandwidth_hz_max", "power_w_max", "power_dbm_max", "tokens_max",
    "tokens_min", "phi",
)
_PHI_KEYS = ("alpha", "beta", "gamma")


def default_network() -> dict:
    """The paper's network (Table I) as a problem dict for `allocate`: two non-text devices, "visual" (ViViT tokens,
    `tokens_max` 128, 0.35 km) and "audio" (AST tokens, `tokens_max` 64, 0.45 km), `B^max` = 3 MHz,
    `P^max` = 23 dBm, `N0` = -174 dBm/Hz, `lambda` = 0.6, `q = 1536 * 16` bit (`DEFAULT_BITS_PER_TOKEN`).

    The `phi` parameters (eq. 15) are PLACEHOLDERS, not measurements: chosen so that at this network the optimum is
    interior (neither every device at `tokens_max` nor at the minimum). Replace them with the values that
    `fit_performance_model` returns on the TokCom model's validation losses at several token lengths.

    >>> result = allocate(default_network())
    >>> [d["tokens"] for d in result["devices"]]
    [72, 45]
    """
    return {
        "bandwidth_hz": 3e6,
        "power_dbm": 23.0,
        "noise_dbm_per_hz": -174.0,
        "weight": 0.6,
        "bits_per_token": DEFAULT_BITS_PER_TOKEN,
        "devices": [
            {"name": "visual", "distance_km": 0.35, "tokens_max": 128,
             "phi": {"alpha": 4.0, "beta": 1.0, "gamma": 1.1}},
            {"name": "audio", "distance_km": 0.45, "tokens_max": 64,
             "phi": {"alpha": 2.0, "beta": 1.0, "gamma": 1.3}},
        ],
    }


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


# Physical ranges the solver's numerics are meant for: up to 1 THz of bandwidth and 1 MW (90 dBm) of power; noise
# densities from well below thermal noise at 290 K (-174 dBm/Hz) to a receiver with a 74 dB noise figure.
MAX_BANDWIDTH_HZ = 1e12
MAX_POWER_W = 1e6
NOISE_DBM_PER_HZ_RANGE = (-220.0, -100.0)


def _number(value, field: str, *, low: float | None = None, low_open: bool = False, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"`{field}` must be a number, got {value!r}.")
    value = float(value)
    allowed = f"[{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
    if low_open:
        allowed = "(" + allowed[1:]
    if not math.isfinite(value):
        raise ValueError(f"`{field}` must be a finite number in {allowed}, got {value!r}.")
    if (low is not None and (value < low or (low_open and value == low))) or (high is not None and value > high):
        raise ValueError(f"`{field}` must be in {allowed}, got {value!r}.")
    return value


def _integer(value, field: str, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ValueError(f"`{field}` must be an integer >= {low}, got {value!r}.")
    if float(value) != int(value) or int(value) < low:
        raise ValueError(f"`{field}` must be an integer >= {low}, got {value!r}.")
    return int(value)


def _reject_unknown(mapping: dict, allowed: tuple, where: str) -> None:
    unknown = sorted(set(mapping) - set(allowed))
    if unknown:
        raise ValueError(f"Unknown field(s) {unknown} in {where}; allowed: {list(allowed)}.")


def _power_field(mapping: dict, watt_key: str, dbm_key: str, where: str, required: bool):
    has_w, has_dbm = watt_key in mapping, dbm_key in mapping
    if has_w and has_dbm:
        raise ValueError(f"Give only one of `{where}{watt_key}` and `{where}{dbm_key}`.")
    if has_w:
        return _number(mapping[watt_key], f"{where}{watt_key}", low=0.0)
    if has_dbm:
        return float(dbm_to_w(_number(mapping[dbm_key], f"{where}{dbm_key}")))
    if required:
        raise ValueError(f"`{where}{watt_key}` or `{where}{dbm_key}` is missing.")
    return None


def build_network(problem: dict) -> tuple[Network, list[str]]:
    """Validate a problem dict (see `allocate`) and return it as a `Network` of arrays plus the device names.

    Raises `ValueError` naming the offending field (e.g. `devices[1].phi`) for missing, non-numeric, NaN, infinite or
    out-of-range values, and a `ValueError` that explains why when no allocation can send even one token.

    >>> net, names = build_network(default_network())
    >>> names, net.tokens_max.tolist(), round(net.power_w, 4)
    (['visual', 'audio'], [128.0, 64.0], 0.1995)
    """
    if not isinstance(problem, dict):
        raise ValueError(f"`problem` must be a dict, got {type(problem).__name__}.")
    _reject_unknown(problem, _PROBLEM_KEYS, "the problem")
    for key in ("bandwidth_hz", "weight", "bits_per_token", "devices"):
        if key not in problem:
            raise ValueError(f"`{key}` is missing from the problem.")
    bandwidth_hz = _number(problem["bandwidth_hz"], "bandwidth_hz", low=0.0, high=MAX_BANDWIDTH_HZ)
    power_w = _power_field(problem, "power_w", "power_dbm", "", required=True)
    if power_w > MAX_POWER_W:
        raise ValueError(f"`power_w`/`power_dbm` must give at most {MAX_POWER_W:g} W (90 dBm), got {power_w!r} W.")
    noise_dbm_per_hz = _number(
        problem.get("noise_dbm_per_hz", -174.0), "noise_dbm_per_hz", low=NOISE_DBM_PER_HZ_RANGE[0], high=NOISE_DBM_PER_HZ_RANGE[1]
    )
    weight = _number(problem["weight"], "weight", low=0.0, high=1.0)
    bits_per_token = _number(problem["bits_per_token"], "bits_per_token", low=0.0, low_open=True)
    devices = problem["devices"]
    if not isinstance(devices, (list, tuple)) or len(devices) == 0:
        raise ValueError("`devices` must be a non-empty list of device dicts.")

    names, gains, s_max, s_min, alpha, beta, gamma, b_cap, p_cap = ([] for _ in range(9))
    for i, device in enumerate(devices):
        where = f"devices[{i}]"
        if not isinstance(device, dict):
            raise ValueError(f"`{where}` must be a dict, got {type(device).__name__}.")
        _reject_unknown(device, _DEVICE_KEYS, f"`{where}`")
        name = device.get("name", f"device{i}")
        if not isinstance(name, str):
            raise ValueError(f"`{where}.name` must be a string, got {name!r}.")
        if name in names:
            raise ValueError(f"`{where}.name` {name!r} is used by another device; device names must be unique.")
        names.append(name)
        given = [key for key in ("distance_km", "gain_db", "gain") if key in device]
        if len(given) != 1:
            raise ValueError(
                f"`{where}` needs exactly one of `distance_km`, `gain_db`, `gain` (channel gain), "
                f"got {given or 'none'}."
            )
        key = given[0]
        value = _number(device[key], f"{where}.{key}", low=0.0 if key != "gain_db" else None, low_open=key != "gain_db")
        gain = float(resolve_gain(**{key: value}))
        if not gain > 0.0 or not math.isfinite(gain):
            raise ValueError(f"`{where}.{key}` gives a channel gain out of floating-point range: {gain!r}.")
        gains.append(gain)
        if "tokens_max" not in device:
            raise ValueError(f"`{where}.tokens_max` is missing.")
        top = _integer(device["tokens_max"], f"{where}.tokens_max", low=1)
        bottom = _integer(device.get("tokens_min", 1), f"{where}.tokens_min", low=1)
        if bottom > top:
            raise ValueError(f"`{where}.tokens_min` ({bottom}) must not exceed `{where}.tokens_max` ({top}).")
        s_max.append(top)
        s_min.append(bottom)
        phi = device.get("phi")
        if not isinstance(phi, dict):
            raise ValueError(f"`{where}.phi` (dict with alpha, beta, gamma of eq. 15) is missing or not a dict.")
        _reject_unknown(phi, _PHI_KEYS, f"`{where}.phi`")
        for name_, target in zip(_PHI_KEYS, (alpha, beta, gamma)):
            if name_ not in phi:
                raise ValueError(f"`{where}.phi.{name_}` is missing.")
            target.append(_number(phi[name_], f"{where}.phi.{name_}", low=0.0))
        cap_b = device.get("bandwidth_hz_max")
        b_cap.append(bandwidth_hz if cap_b is None else _number(cap_b, f"{where}.bandwidth_hz_max", low=0.0))
        cap_p = _power_field(device, "power_w_max", "power_dbm_max", f"{where}.", required=False)
        p_cap.append(power_w if cap_p is None else cap_p)

    # Infeasible budgets: with Shannon rates any positive bandwidth and power send a token in finite time,
    # so only an empty budget or an empty box leaves a device unable to send.
    if bandwidth_hz == 0.0 or power_w == 0.0:
        field = "bandwidth_hz" if bandwidth_hz == 0.0 else "power"
        raise ValueError(
            f"No allocation can send even one token: the total {field} budget is 0, so every rate (eq. 13) is 0."
        )
    b_cap, p_cap = np.asarray(b_cap), np.asarray(p_cap)
    for caps, field in ((b_cap, "bandwidth_hz_max"), (p_cap, "power_w_max")):
        if np.any(caps == 0.0):
            i = int(np.flatnonzero(caps == 0.0)[0])
            raise ValueError(
                f"No allocation can send even one token from `devices[{i}]`: its `{field}` is 0, so its rate is 0."
            )
    net = Network(
        gain=np.asarray(gains, dtype=np.float64),
        noise_w_per_hz=float(noise_power_w(1.0, noise_dbm_per_hz)),
        tokens_max=np.asarray(s_max, dtype=np.float64),
        tokens_min=np.asarray(s_min, dtype=np.float64),
        alpha=np.asarray(alpha, dtype=np.float64),
        beta=np.asarray(beta, dtype=np.float64),
        gamma=np.asarray(gamma, dtype=np.float64),
        bandwidth_cap_hz=np.minimum(b_cap, bandwidth_hz),
        power_cap_w=np.minimum(p_cap, power_w),
        bandwidth_hz=bandwidth_hz,
        power_w=power_w,
        weight=weight,
        bits_per_token=bits_per_token,
    )
    return net, names


# ---------------------------------------------------------------------------------------------
# Baselines (paper Sec. V)
# ---------------------------------------------------------------------------------------------


def _half_tokens(net: Network) -> np.ndarray:
    return np.maximum(net.tokens_min, np.floor(net.tokens_max / 2.0))


def _water_filling(net: Network, bandwidth_hz: np.ndarray) -> np.ndarray:
    """Water-filling power over fixed bandwidths: `p_m = min(P_m^max, B_m (w - rho_m)^+)` with `sum p = P^max`."""
    rho = net.noise_to_gain

    def power_at(level):
        return np.minimum(net.power_cap_w, bandwidth_hz * np.maximum(level - rho, 0.0))

    if net.power_cap_w.sum() <= net.power_w:
        return net.power_cap_w.copy()
    level_hi = float(rho.max() + net.power_w / bandwidth_hz.sum())
    while power_at(level_hi).sum() < net.power_w:  # boxes clipped some devices: raise the water
        level_hi = 2.0 * level_hi
    level = brentq(lambda w: power_at(w).sum() - net.power_w, float(rho.min()), level_hi, xtol=1e-300, rtol=1e-15)
    power = power_at(level)
    return power * min(1.0, net.power_w / power.sum())


def _pb_wf(net: Network):
    """PB-WF: bandwidth proportional to channel gain (clipped to the boxes), water-filling power, half tokens."""
    bandwidth = np.minimum(net.bandwidth_cap_hz, net.bandwidth_hz * net.gain / net.gain.sum())
    return _half_tokens(net), bandwidth, _water_filling(net, bandwidth)


def _era(net: Network):
    """ERA: equal bandwidth and power (clipped to the boxes), half tokens."""
    m = net.num_devices
    bandwidth = np.minimum(net.bandwidth_cap_hz, np.full(m, net.bandwidth_hz / m))
    power = np.minimum(net.power_cap_w, np.full(m, net.power_w / m))
    return _half_tokens(net), bandwidth, power


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def _integer_tokens(net: Network, tokens: np.ndarray) -> np.ndarray:
    """Round down (with a 1e-9 guard against round-off just below an integer), at least `tokens_min`."""
    return np.clip(np.floor(tokens + 1e-9), net.tokens_min, net.tokens_max)


def _device_records(net, names, tokens, tokens_continuous, bandwidth, power, noise_dbm_per_hz):
    rate = np.asarray(shannon_rate_bps(power, bandwidth, net.gain, noise_dbm_per_hz), dtype=np.float64).reshape(-1)
    snr_db = np.asarray(
        received_snr_db(power, bandwidth, gain=net.gain, noise_dbm_per_hz=noise_dbm_per_hz), dtype=np.float64
    ).reshape(-1)
    latency = latency_per_device(net, tokens, bandwidth, power)
    losses = loss(net, tokens)
    columns = zip(
        names,
        bandwidth.tolist(),
        power.tolist(),
        tokens.astype(np.int64).tolist(),
        tokens_continuous.tolist(),
        rate.tolist(),
        snr_db.tolist(),
        latency.tolist(),
        losses.tolist(),
    )
    keys = ("name", "bandwidth_hz", "power_w", "tokens", "tokens_continuous", "rate_bps", "snr_db", "latency_s", "loss")
    return [dict(zip(keys, row)) for row in columns]


def allocate(problem: dict, method: str = "proposed") -> dict:
    """Solve problem (16) for `problem` with `method` (one of `METHODS`) and return a JSON-ready dict.

    Args:
        problem (`dict`): `{"bandwidth_hz": B^max [Hz], "power_dbm": P^max [dBm] (or "power_w" [W]),
            "noise_dbm_per_hz": N0 (default -174), "weight": lambda in [0, 1], "bits_per_token": q [bit],
            "devices": [{"name", "distance_km" [km] | "gain_db" [dB] | "gain" (linear), "tokens_max": S^max,
            "tokens_min" (default 1), "bandwidth_hz_max" (default B^max), "power_w_max" | "power_dbm_max"
            (default P^max), "phi": {"alpha", "beta", "gamma"}}, ...]}`; optional "name" and "description".
        method (`str`): `"proposed"` (global optimum), `"alternating"` (the paper's algorithm), `"pb-wf"`, `"era"`,
            `"max"`, `"half"`.

    Returns:
        `dict` with `method`, `cost` (objective 16a at the integer token lengths), `cost_continuous`, `latency_s`,
        `latency_continuous_s`, `loss` (sum of eq. 15 over devices), `lower_bound` (a certified lower bound on the
        continuous optimum when the method provides one, else `None`), `iterations`, `converged`,
        `bandwidth_used_hz`, `power_used_w`, `weight`, and `devices`: one dict per device with `name`,
        `bandwidth_hz`, `power_w`, `tokens` (int), `tokens_continuous`, `rate_bps`, `snr_db`, `latency_s`, `loss`.
        Plain Python numbers only (`json.dumps` works). A baseline that leaves a device without power (PB-WF's
        water-filling can) reports that device's `latency_s` and the total `latency_s`/`cost` as `inf`.

    Example:

    >>> result = allocate(default_network(), method="era")
    >>> [d["tokens"] for d in result["devices"]], round(result["cost"], 4)
    ([64, 32], 1.5743)
    """
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}, got {method!r}.")
    net, names = build_network(problem)
    noise_dbm_per_hz = float(problem.get("noise_dbm_per_hz", -174.0))

    iterations, converged, lower_bound = 0, True, None
    if method in ("proposed", "alternating"):
        continuous = solve_proposed(net) if method == "proposed" else solve_alternating(net)
        iterations, converged, lower_bound = continuous.iterations, continuous.converged, continuous.lower_bound
        tokens_continuous = continuous.tokens
        latency_continuous, cost_continuous = continuous.latency_s, continuous.cost
        # integer lengths: round down, then the exact minimum latency for them (step ii) keeps every constraint
        tokens = _integer_tokens(net, tokens_continuous)
        final = min_latency(net, tokens)
        bandwidth, power = final.bandwidth_hz, final.power_w
    elif method in ("max", "half"):
        tokens = net.tokens_max.copy() if method == "max" else _half_tokens(net)
        final = min_latency(net, tokens)
        bandwidth, power, iterations = final.bandwidth_hz, final.power_w, final.iterations
        tokens_continuous = tokens
    else:
        tokens, bandwidth, power = _pb_wf(net) if method == "pb-wf" else _era(net)
        tokens_continuous = tokens
    latency = float(np.max(latency_per_device(net, tokens, bandwidth, power)))
    cost = total_cost(net, latency, tokens)
    if method not in ("proposed", "alternating"):
        latency_continuous, cost_continuous = latency, cost
    return {
        "method": method,
        "cost": cost,
        "cost_continuous": float(cost_continuous),
        "latency_s": latency,
        "latency_continuous_s": float(latency_continuous),
        "loss": float(np.sum(loss(net, tokens))),
        "lower_bound": None if lower_bound is None else float(lower_bound),
        "iterations": int(iterations),
        "converged": bool(converged),
        "bandwidth_used_hz": float(np.sum(bandwidth)),
        "power_used_w": float(np.sum(power)),
        "weight": net.weight,
        "devices": _device_records(net, names, tokens, tokens_continuous, bandwidth, power, noise_dbm_per_hz),
    }


def _loss_model(token_lengths, alpha, beta, gamma):
    return np.power(alpha / token_lengths, beta) + gamma


def fit_performance_model(token_lengths, losses) -> dict:
    """Fit `(alpha, beta, gamma) >= 0` of eq. (15), `phi(s) = (alpha / s) ** beta + gamma`, to measured validation
    losses with `scipy.optimize.curve_fit` (bounded least squares, several starts).

    >>> s = np.array([4, 8, 16, 32, 64, 128])
    >>> fit = fit_performance_model(s, (12.0 / s) ** 0.7 + 1.1)
    >>> {k: round(v, 3) for k, v in fit.items()}
    {'alpha': 12.0, 'beta': 0.7, 'gamma': 1.1}
    """
    s = np.asarray(token_lengths, dtype=np.float64).reshape(-1) if np.size(token_lengths) else np.zeros(0)
    y = np.asarray(losses, dtype=np.float64).reshape(-1) if np.size(losses) else np.zeros(0)
    if s.shape != y.shape:
        raise ValueError(f"`token_lengths` and `losses` must have the same length, got {s.size} and {y.size}.")
    if s.size < 3:
        raise ValueError(f"`token_lengths`/`losses` need at least 3 points to fit alpha, beta, gamma; got {s.size}.")
    if not np.all(np.isfinite(s)) or not np.all(np.isfinite(y)):
        raise ValueError("`token_lengths` and `losses` must be finite (no NaN or inf).")
    if np.any(s <= 0):
        raise ValueError(f"`token_lengths` must be > 0, got {s[s <= 0][:3].tolist()}.")
    best = None
    gamma0 = max(0.0, float(y.min()) * 0.9)
    for beta0 in (0.3, 0.7, 1.5):
        excess = max(float(y[np.argmin(s)]) - gamma0, 1e-6)
        alpha0 = float(s.min()) * excess ** (1.0 / beta0)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                params, _ = curve_fit(
                    _loss_model, s, y, p0=(alpha0, beta0, gamma0), bounds=([0.0, 0.0, 0.0], [np.inf, np.inf, np.inf]),
                    method="trf", maxfev=20000, xtol=1e-15, ftol=1e-15, gtol=1e-15,
                )
        except (RuntimeError, ValueError):
            continue
        residual = float(np.sum((_loss_model(s, *params) - y) ** 2))
        if best is None or residual < best[0]:
            best = (residual, params)
    if best is None:
        raise ValueError("The loss model (15) could not be fitted to these points.")
    alpha, beta, gamma = (float(v) for v in best[1])
    return {"alpha": alpha, "beta": beta, "gamma": gamma}


__all__ = [
    "DEFAULT_BITS_PER_TOKEN",
    "METHODS",
    "QWEN25_HIDDEN_SIZE",
    "TEXT_LINK_DEFAULTS",
    "allocate",
    "build_network",
    "default_network",
    "fit_performance_model",
]
