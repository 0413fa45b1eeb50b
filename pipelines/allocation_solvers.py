"""Numerical core of the allocator for problem (16) of the TokCom letter (`tokcom-avqa-letter.txt`, Sec. IV).

Everything here works on a validated `Network` (numpy arrays of shape `(devices,)`, SI units) and is
vectorized over devices: the only Python loops run over scalar root-finding iterations, never over devices.
The public, dict-based interface lives in `tokcom.pipelines.allocation`.

Notation (paper -> code): `B_m` -> `bandwidth_hz`, `p_m` -> `power_w`, `s_m` -> `tokens`, `h_m` -> `gain`,
`N0` -> `noise_w_per_hz`, `q` -> `bits_per_token`, `lambda` -> `weight`, `rho_m = N0 / h_m` [W/Hz] (noise over gain),
`z_m = R_m / B_m` the spectral efficiency [bit/s/Hz].

Why the proposed method is globally optimal. Write `beta_m = B_m T` [Hz s] and `e_m = p_m T` [J] for the
bandwidth-time and energy of device `m`. Then (17b) reads `s_m q <= beta_m log2(1 + h_m e_m / (N0 beta_m))`, whose
right side is the perspective of a concave function and hence jointly concave in `(beta_m, e_m)`, and the budgets and
boxes (16b)-(16e) become the linear constraints `sum beta <= T B^max`, `sum e <= T P^max`, `beta_m <= T B_m^max`,
`e_m <= T P_m^max`. With the convex objective `(1 - lambda) T + lambda sum phi_m(s_m)` (eq. 15 is convex decreasing),
problem (16) is a convex program in `(T, s, beta, e)`; Slater's condition holds, so its Lagrange dual is exact:

* per-device caps not binding: minimizing the Lagrangian over `T >= 0` forces `mu B^max + nu P^max = 1 - lambda` for
  the bandwidth and power prices `(mu, nu)`, and the rest separates per device in closed form (spectral efficiency
  from the Lagrangian condition of eq. (24)-(25) via Lambert W, token length from eq. (15)'s stationarity). The dual is
  a concave function of one scalar, maximized by a bracketing root finder; its value is a certified lower bound;
* per-device caps binding: the optimal cost `F(T) = (1 - lambda) T + G(T)` is convex in the latency `T` (partial
  minimization of the convex program), so a bounded scalar search over `T` with the fixed-`T` convex problem solved
  exactly through its KKT conditions (two prices, per-device closed forms plus one monotone scalar equation for
  power-capped devices) reaches the global optimum.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.optimize import brentq, minimize_scalar
from scipy.special import lambertw

LN2 = math.log(2.0)
_BRENT_XTOL = 1e-13  # on log-prices / log-latencies: relative precision ~1e-13
_CAP_RTOL = 1e-9  # slack when checking that an uncapped solution keeps the per-device caps


@dataclass(frozen=True)
class Network:
    """Problem (16) as arrays over the non-text devices, shape `(devices,)`, SI units, validated.

    Args:
        gain: linear channel power gain `h_m`.
        noise_w_per_hz: noise density `N0` [W/Hz].
        tokens_max, tokens_min: bounds of (16f) on `s_m` (floats holding integers, `1 <= min <= max`).
        alpha, beta, gamma: parameters of the loss model `phi_m(s) = (alpha_m / s) ** beta_m + gamma_m` (eq. 15).
        bandwidth_cap_hz, power_cap_w: per-device boxes (16d)-(16e), already clipped to the totals.
        bandwidth_hz, power_w: budgets `B^max` [Hz] and `P^max` [W] of (16b)-(16c).
        weight: `lambda` in [0, 1] of (16a).
        bits_per_token: `q` [bit].
    """

    gain: np.ndarray
    noise_w_per_hz: float
    tokens_max: np.ndarray
    tokens_min: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    gamma: np.ndarray
    bandwidth_cap_hz: np.ndarray
    power_cap_w: np.ndarray
    bandwidth_hz: float
    power_w: float
    weight: float
    bits_per_token: float

    @property
    def num_devices(self) -> int:
        return int(self.gain.shape[0])

    @cached_property
    def noise_to_gain(self) -> np.ndarray:
        """`rho_m = N0 / h_m` [W/Hz]: the power per Hz that gives SNR 1."""
        return self.noise_w_per_hz / self.gain

    @property
    def caps_redundant(self) -> bool:
        """True when every box (16d)-(16e) is implied by the budgets (16b)-(16c)."""
        return bool(np.all(self.bandwidth_cap_hz >= self.bandwidth_hz) and np.all(self.power_cap_w >= self.power_w))

    @cached_property
    def log_loss_slope(self) -> np.ndarray:
        """`log(lambda beta_m alpha_m^beta_m)`, `-inf` where the loss term is flat.

        With it, `-lambda phi_m'(s) = exp(log_loss_slope_m) / s^(beta_m + 1)`.
        """
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.log(self.weight * self.beta) + self.beta * np.log(self.alpha)
        return np.where((self.weight * self.beta > 0) & (self.alpha > 0), value, -np.inf)


@dataclass
class Solution:
    """A continuous allocation with its bookkeeping (all arrays of shape `(devices,)`)."""

    tokens: np.ndarray
    bandwidth_hz: np.ndarray
    power_w: np.ndarray
    latency_s: float
    cost: float
    iterations: int
    converged: bool
    lower_bound: float | None = None


# ---------------------------------------------------------------------------------------------
# Scalar special functions (vectorized)
# ---------------------------------------------------------------------------------------------


def spectral_efficiency_for_price(theta) -> np.ndarray:
    """Spectral efficiency `z >= 0` [bit/s/Hz] solving `2^z (z ln2 - 1) + 1 = theta`.

    This is the Lagrangian condition `d/dB [rho B (2^(r/B) - 1)] = -mu` of eqs. (24)-(25) with `z = r / B` and
    `theta = mu / rho` (power price 1), in closed form `z = (1 + W0((theta - 1) / e)) / ln 2`.
    `theta = inf` gives `inf`.

    >>> float(spectral_efficiency_for_price(1.0))  # 2^z (z ln2 - 1) = 0  ->  z = 1 / ln 2
    1.4426950408889634
    """
    theta = np.asarray(theta, dtype=np.float64)
    x = np.zeros_like(theta)
    small = theta < 1e-6
    finite = np.isfinite(theta) & ~small
    # branch-point series of W0 around -1/e: W0 = -1 + p - p^2/3 + 11 p^3/72 - 43 p^4/540, p = sqrt(2 theta)
    p = np.sqrt(2.0 * np.maximum(theta[small], 0.0))
    x[small] = p - p * p / 3.0 + 11.0 * p**3 / 72.0 - 43.0 * p**4 / 540.0
    if finite.any():
        xf = 1.0 + lambertw((theta[finite] - 1.0) / math.e).real
        ex = np.exp(xf)
        xf = xf - (xf * ex - np.expm1(xf) - theta[finite]) / (xf * ex)  # one Newton polish
        x[finite] = xf
    x[np.isposinf(theta)] = np.inf
    return x / LN2


def _log_expm1(x: np.ndarray) -> np.ndarray:
    """`log(2^... )` helper: `log(e^x - 1)` without overflow, `x > 0`."""
    with np.errstate(over="ignore", divide="ignore"):
        return np.where(x > 30.0, x + np.log1p(-np.exp(-np.minimum(x, 700.0))), np.log(np.expm1(np.minimum(x, 30.0))))


def efficiency_at_power_cap(k) -> np.ndarray:
    """Spectral efficiency `z > 0` [bit/s/Hz] solving `z / (2^z - 1) = k`, i.e. the efficiency at which a power cap
    `P` sends rate `r` when `k = r rho / P` (eq. 24 solved for `B`: `B = r / z`).

    No positive solution exists for `k >= 1 / ln 2` (even infinite bandwidth is too little): returns 0 there.
    Closed form `x = z ln 2 = -W_{-1}(-kappa e^-kappa) - kappa` with `kappa = k ln 2`, then Newton polish.

    >>> round(float(efficiency_at_power_cap(2.0 / 3.0)), 6)  # z = 2: 2 / (4 - 1)
    2.0
    """
    k = np.asarray(k, dtype=np.float64)
    kappa = k * LN2
    out = np.zeros_like(kappa)
    ok = (kappa > 0) & (kappa < 1.0)
    if ok.any():
        kv = kappa[ok]
        with np.errstate(all="ignore"):
            x = -lambertw(-kv * np.exp(-kv), k=-1).real - kv
            x = np.where(np.isfinite(x) & (x > 0), x, -np.log(kv) + np.log(np.maximum(-np.log(kv), 1.0)))
            log_kv = np.log(kv)
            for _ in range(2):  # Newton on log(x) - log(e^x - 1) - log(kappa) = 0 (decreasing in x)
                g = np.log(x) - _log_expm1(x) - log_kv
                dg = 1.0 / x - 1.0 / (-np.expm1(-x))
                x = np.maximum(x - g / dg, x * 1e-3)
        out[ok] = x
    out[kappa <= 0] = np.inf
    return out / LN2


def _lambertw_of_exp(y: np.ndarray) -> np.ndarray:
    """`W0(e^y)` for real `y` without overflowing `e^y`."""
    y = np.asarray(y, dtype=np.float64)
    w = np.empty_like(y)
    big = y > 500.0
    w[~big] = lambertw(np.exp(y[~big])).real
    yb = y[big]
    wb = yb - np.log(yb)
    for _ in range(4):  # Newton on w + log w = y
        wb = wb - (wb + np.log(wb) - yb) / (1.0 + 1.0 / wb)
    w[big] = wb
    return w


def _log_f(x: np.ndarray) -> np.ndarray:
    """`log(e^x (x - 1) + 1)` for `x > 0` (`f` of `spectral_efficiency_for_price` with `x = z ln 2`)."""
    with np.errstate(all="ignore"):
        small = x < 1e-3
        tail = np.where(small, x * x / 2.0 - x**3 / 6.0 + x**4 / 24.0 - x**5 / 120.0, x + np.expm1(-x))
        return x + np.log(tail)


def _exp(value: float) -> float:
    """`exp` of a log-price, saturating instead of overflowing (brackets may expand far)."""
    return math.exp(min(value, 700.0))


def _expm1_ratio(x: np.ndarray) -> np.ndarray:
    """`(e^x - 1) / x` with the limit 1 at `x = 0`."""
    with np.errstate(all="ignore"):
        return np.where(np.abs(x) < 1e-12, 1.0 + x / 2.0, np.expm1(x) / np.where(x == 0, 1.0, x))


# ---------------------------------------------------------------------------------------------
# Shared formulas
# ---------------------------------------------------------------------------------------------


def loss(net: Network, tokens: np.ndarray) -> np.ndarray:
    """Validation-loss model `phi_m(s_m) = (alpha_m / s_m) ** beta_m + gamma_m` (eq. 15)."""
    return np.power(net.alpha / tokens, net.beta) + net.gamma


def total_cost(net: Network, latency_s: float, tokens: np.ndarray) -> float:
    """Objective (16a)/(17a): `(1 - lambda) T + lambda sum_m phi_m(s_m)`."""
    return float((1.0 - net.weight) * latency_s + net.weight * np.sum(loss(net, tokens)))


def rate_bps(net: Network, bandwidth_hz: np.ndarray, power_w: np.ndarray) -> np.ndarray:
    """`R_m = B_m log2(1 + h_m p_m / (N0 B_m))` (eq. 13), 0 where `B_m = 0`."""
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = power_w / (net.noise_to_gain * bandwidth_hz)
        return np.where(bandwidth_hz > 0, bandwidth_hz * np.log1p(snr) / LN2, 0.0)


def latency_per_device(net: Network, tokens: np.ndarray, bandwidth_hz: np.ndarray, power_w: np.ndarray) -> np.ndarray:
    """`T_m = s_m q / R_m` (eq. 14); `inf` where the rate is 0."""
    rate = rate_bps(net, bandwidth_hz, power_w)
    with np.errstate(divide="ignore"):
        return np.where(rate > 0, tokens * net.bits_per_token / np.where(rate > 0, rate, 1.0), np.inf)


def _tokens_for_price(net: Network, log_price_per_token: np.ndarray) -> np.ndarray:
    """`argmin_{s in [s_min, S_max]} lambda phi(s) + price * s` in closed form (`-lambda phi'(s) = price`)."""
    with np.errstate(all="ignore"):
        log_s = (net.log_loss_slope - log_price_per_token) / (net.beta + 1.0)
        s = np.exp(np.minimum(log_s, 700.0))
    return np.clip(np.nan_to_num(s, nan=0.0), net.tokens_min, net.tokens_max)


def _keeps_caps(net: Network, bandwidth_hz: np.ndarray, power_w: np.ndarray) -> bool:
    return bool(
        np.all(bandwidth_hz <= net.bandwidth_cap_hz * (1.0 + _CAP_RTOL))
        and np.all(power_w <= net.power_cap_w * (1.0 + _CAP_RTOL))
    )


def _expanding_brentq(func, center: float, step: float = 10.0, max_expansions: int = 40):
    """Root of a nonincreasing scalar `func` near `center` (log-domain variable): expand a bracket geometrically
    (steps `step, 2 step, 4 step, ...`, at most 100), then Brent.

    Returns `(root, evaluations, converged)`; `root` is `None` when no sign change was found.
    """
    evaluations = 0
    lo = hi = center
    f_lo = f_hi = func(center)
    evaluations += 1
    if f_lo == 0.0:
        return center, evaluations, True
    for _ in range(max_expansions):
        if f_lo > 0 and f_hi < 0:
            break
        if f_hi >= 0:  # root lies above
            lo, f_lo = hi, f_hi
            hi = hi + step
            f_hi = func(hi)
        else:  # root lies below
            hi, f_hi = lo, f_lo
            lo = lo - step
            f_lo = func(lo)
        step = min(2.0 * step, 100.0)
        evaluations += 1
        if f_lo == 0.0:
            return lo, evaluations, True
        if f_hi == 0.0:
            return hi, evaluations, True
    else:
        return None, evaluations, False
    root, info = brentq(func, lo, hi, xtol=_BRENT_XTOL, rtol=4 * np.finfo(float).eps, full_output=True)
    return root, evaluations + info.function_calls, bool(info.converged)


# ---------------------------------------------------------------------------------------------
# Normalized Lagrange dual (per-device caps not binding): one scalar price share
# ---------------------------------------------------------------------------------------------


def _dual_response(net: Network, share_logit: float, price_scale: float, tokens: np.ndarray | None):
    """Per-device minimizers of the Lagrangian for bandwidth price `mu` and power price `nu` with
    `mu B^max + nu P^max = price_scale` and `nu P^max = price_scale * sigmoid(share_logit)`.

    Returns `(tokens, bandwidth_time, energy, log_cost_per_bit)` where bandwidth_time = `B_m T` [Hz s] and
    energy = `p_m T` [J] are the resources that send the tokens, and `exp(log_cost_per_bit)` is the cheapest
    Lagrangian cost of one bit.
    """
    rho = net.noise_to_gain
    # 1. price ratio theta_m = mu / (nu rho_m) -> spectral efficiency z_m (eqs. 24-25 Lagrangian condition)
    log_theta = -share_logit + np.log(net.power_w / (net.bandwidth_hz * rho))
    z = spectral_efficiency_for_price(np.exp(np.clip(log_theta, -745.0, 700.0)))
    # 2. cost of one bit along that efficiency: mu / z + nu rho (2^z - 1) / z = nu rho ln2 2^z
    log_nu = math.log(price_scale) - float(np.logaddexp(0.0, -share_logit)) - math.log(net.power_w)
    log_cost_per_bit = log_nu + np.log(rho) + math.log(LN2) + z * LN2
    # 3. token length from the stationarity of eq. (15) (closed form), clipped to (16f)
    if tokens is None:
        tokens = _tokens_for_price(net, log_cost_per_bit + math.log(net.bits_per_token))
    bits = tokens * net.bits_per_token
    # 4. resources that send the bits at efficiency z (eq. 24): B T = bits / z, p T = rho B T (2^z - 1)
    bandwidth_time = bits / np.maximum(z, 1e-300)
    energy = bits * rho * LN2 * _expm1_ratio(z * LN2)
    return tokens, bandwidth_time, energy, log_cost_per_bit


def _solve_normalized_dual(net: Network, tokens: np.ndarray | None, price_scale: float):
    """Maximize the one-dimensional concave dual; returns `(tokens, B, p, T, lower_bound, evaluations, converged)`."""

    def residual(share_logit):  # sign of the dual derivative: energy / P^max - bandwidth-time / B^max
        _, bt, en, _ = _dual_response(net, share_logit, price_scale, tokens)
        return math.log(en.sum() / net.power_w) - math.log(bt.sum() / net.bandwidth_hz)

    center = float(np.median(np.log(net.power_w / (net.bandwidth_hz * net.noise_to_gain))))
    root, evaluations, converged = _expanding_brentq(residual, center, step=20.0)
    if root is None:
        raise RuntimeError("The normalized dual found no sign change; the problem data are out of numerical range.")
    tok, bt, en, log_c = _dual_response(net, root, price_scale, tokens)
    latency_s = max(bt.sum() / net.bandwidth_hz, en.sum() / net.power_w)
    # weak duality: sum_m min_s [lambda phi + s q c_m] bounds the optimum from below (T-terms cancel by normalization)
    if tokens is None:
        lower = float(np.sum(net.weight * loss(net, tok) + tok * net.bits_per_token * np.exp(log_c)))
    else:
        lower = float(np.sum(tok * net.bits_per_token * np.exp(log_c)))
    return tok, bt / latency_s, en / latency_s, float(latency_s), lower, evaluations, converged


# ---------------------------------------------------------------------------------------------
# Step (ii): minimum latency for given token lengths (eqs. 21-25)
# ---------------------------------------------------------------------------------------------


def min_power(net: Network, rate_bps_needed: np.ndarray):
    """Problem (25): minimum total power that delivers `rate_bps_needed` within (16b), (16d) and (25b).

    Per device the power of eq. (24), `rho_m B_m (2^(r_m / B_m) - 1)`, is convex decreasing in `B_m`; with one
    multiplier `mu` on the bandwidth budget, `B_m(mu) = clip(r_m / z_m(mu), B_lo_m, B_m^max)` where `z_m(mu)` solves
    the Lagrangian condition in closed form and `B_lo_m` is the bandwidth at which the power cap (25b) binds.
    `mu` is found by a bracketing root finder on `sum_m B_m(mu) = B^max`.

    Returns `(total_power_w, bandwidth_hz, power_w, evaluations)`; `total_power_w = inf` when no bandwidth split
    meets the rates within the caps.
    """
    rho = net.noise_to_gain
    rates = np.asarray(rate_bps_needed, dtype=np.float64)
    # 1. (25b) as a lower bound on B_m: rho B (2^(r/B) - 1) <= P_m^max  <=>  B >= r / z_cap
    z_cap = efficiency_at_power_cap(rates * rho / net.power_cap_w)
    with np.errstate(divide="ignore"):
        bandwidth_lo = np.where(z_cap > 0, rates / np.where(z_cap > 0, z_cap, 1.0), np.inf)
    too_wide = np.any(bandwidth_lo > net.bandwidth_cap_hz * (1.0 + 1e-12))
    if too_wide or bandwidth_lo.sum() > net.bandwidth_hz * (1.0 + 1e-12):
        return np.inf, None, None, 0
    bandwidth_lo = np.minimum(bandwidth_lo, net.bandwidth_cap_hz)

    def split(log_mu):  # 2. B_m(mu) from the Lagrangian condition of eq. (25), clipped to the boxes
        with np.errstate(over="ignore"):  # theta = inf -> z = inf -> B at its lower box: the correct limit
            z = spectral_efficiency_for_price(_exp(log_mu) / rho)
        return np.clip(rates / np.maximum(z, 1e-300), bandwidth_lo, net.bandwidth_cap_hz)

    evaluations = 0
    if net.bandwidth_cap_hz.sum() <= net.bandwidth_hz:
        bandwidth = net.bandwidth_cap_hz.copy()  # mu = 0: every device takes its whole box
    else:
        # 3. mu by a bracketing root finder on the (decreasing) bandwidth use
        z_typical = rates.sum() / net.bandwidth_hz
        center = float(np.log(np.median(rho)) + _log_f(np.array([max(z_typical * LN2, 1e-12)]))[0])
        root, evaluations, _ = _expanding_brentq(
            lambda log_mu: math.log(split(log_mu).sum() / net.bandwidth_hz), center, step=5.0
        )
        if root is None:
            return np.inf, None, None, evaluations
        bandwidth = split(root)
        bandwidth *= min(1.0, net.bandwidth_hz / bandwidth.sum())  # remove round-off above B^max
        bandwidth = np.maximum(bandwidth, bandwidth_lo)
    # 4. eq. (24): the power each device needs on its bandwidth
    with np.errstate(over="ignore"):
        power = rho * rates * LN2 * _expm1_ratio(LN2 * rates / bandwidth)
    return float(power.sum()), bandwidth, power, evaluations


def min_latency_bisection(net: Network, tokens: np.ndarray, rtol: float = 1e-11) -> Solution:
    """Step (ii) as in the paper: bisection on the candidate latency `T'`, each candidate checked by the
    min-power problem (22)-(25) (`min_power`); returns the smallest feasible `T'` and its `(B, p)`."""
    bits = np.asarray(tokens, dtype=np.float64) * net.bits_per_token
    rho = net.noise_to_gain
    # 1. bracket: each device alone with its whole box (a lower bound) and the equal split (feasible)
    best_rate = net.bandwidth_cap_hz * np.log1p(net.power_cap_w / (rho * net.bandwidth_cap_hz)) / LN2
    latency_lo = float(np.max(bits / best_rate))
    m = net.num_devices
    equal_b = np.minimum(net.bandwidth_cap_hz, net.bandwidth_hz / m)
    equal_p = np.minimum(net.power_cap_w, net.power_w / m)
    latency_hi = float(np.max(latency_per_device(net, tokens, equal_b, equal_p)))
    hi_alloc = (equal_b, equal_p)
    evaluations = 0
    total, b, p, ev = min_power(net, bits / latency_lo)
    evaluations += 1 + ev
    if total <= net.power_w:
        latency_hi, hi_alloc = latency_lo, (b, p)
    # 2. bisection on T' (log scale): feasible <=> min total power (25) <= P^max
    while latency_hi > latency_lo * (1.0 + rtol):
        mid = math.sqrt(latency_lo * latency_hi)
        total, b, p, ev = min_power(net, bits / mid)
        evaluations += 1 + ev
        if total <= net.power_w:
            latency_hi, hi_alloc = mid, (b, p)
        else:
            latency_lo = mid
    bandwidth, power = hi_alloc
    latency = float(np.max(latency_per_device(net, tokens, bandwidth, power)))
    return Solution(
        tokens=np.asarray(tokens, dtype=np.float64), bandwidth_hz=bandwidth, power_w=power, latency_s=latency,
        cost=total_cost(net, latency, tokens), iterations=evaluations, converged=True,
    )


def min_latency(net: Network, tokens: np.ndarray) -> Solution:
    """Exact minimum latency for fixed token lengths (step ii). Uses the one-price normalized dual when the
    per-device caps do not bind (same optimum as the paper's bisection, much faster), else the paper's bisection."""
    tokens = np.asarray(tokens, dtype=np.float64)
    tok, b, p, latency, lower, evaluations, converged = _solve_normalized_dual(net, tokens, 1.0)
    if _keeps_caps(net, b, p):
        b, p = np.minimum(b, net.bandwidth_cap_hz), np.minimum(p, net.power_cap_w)  # remove round-off above a box
        latency = float(np.max(latency_per_device(net, tok, b, p)))
        return Solution(tok, b, p, latency, total_cost(net, latency, tok), evaluations, converged, None)
    return min_latency_bisection(net, tokens)


# ---------------------------------------------------------------------------------------------
# Step (i): token lengths for given rates (eqs. 18-20)
# ---------------------------------------------------------------------------------------------


def tokens_for_rates(net: Network, rates: np.ndarray):
    """Problem (18): optimal token lengths and latency `T` for fixed rates `R_m` (eqs. 19-20).

    `s_m = min(S_m^max, T R_m / q)` (eq. 19, and `>= s_min`), with `T` the root of the scalar equation (20),
    `sum_{m in A} lambda beta_m alpha_m^beta_m q^beta_m / (T^(beta_m+1) R_m^beta_m) = 1 - lambda`, found by a
    bracketing root finder (the left side is decreasing in `T`). Returns `(tokens, latency_s)`.
    """
    q = net.bits_per_token
    rates = np.asarray(rates, dtype=np.float64)
    latency_lo = float(np.max(net.tokens_min * q / rates))  # s_m >= s_min needs T >= s_min q / R_m
    latency_hi = float(np.max(net.tokens_max * q / rates))  # beyond it every s_m = S_max

    def tokens_at(latency):
        return np.clip(latency * rates / q, net.tokens_min, net.tokens_max)

    def excess(latency):  # (1 - lambda) minus the left side of eq. (20) over the active set A
        s = latency * rates / q
        active = s < net.tokens_max
        slope = np.exp(net.log_loss_slope) * np.power(s, -net.beta) / latency  # lambda beta (alpha / s)^beta / T
        return (1.0 - net.weight) - float(np.sum(np.where(active, slope, 0.0)))

    if net.weight >= 1.0:
        return tokens_at(latency_hi), latency_hi
    if latency_hi <= latency_lo * (1 + 1e-15) or excess(latency_lo) >= 0.0:
        return tokens_at(latency_lo), latency_lo
    if excess(latency_hi) <= 0.0:  # round-off kept the last device just below S_max: the root is latency_hi
        return tokens_at(latency_hi), latency_hi
    latency = brentq(excess, latency_lo, latency_hi, xtol=1e-15 * latency_hi, rtol=1e-14)
    return tokens_at(latency), float(latency)


def solve_alternating(net: Network, max_iterations: int = 200, rtol: float = 1e-10) -> Solution:
    """The paper's alternating optimization (Sec. IV-B): (i) token lengths and `T` for the current rates (eqs. 19-20),
    (ii) the minimum latency `T'` for those lengths by bisection with the min-power problem (22)-(25); repeat until
    the cost stops decreasing. Starts from the equal split of bandwidth and power."""
    m = net.num_devices
    bandwidth = np.minimum(net.bandwidth_cap_hz, net.bandwidth_hz / m)
    power = np.minimum(net.power_cap_w, net.power_w / m)
    previous = np.inf
    best = None
    converged = False
    iterations = 0
    for iterations in range(1, max_iterations + 1):
        # (i) eq. (19)-(20) for the rates of the current (B, p)
        tokens, _ = tokens_for_rates(net, rate_bps(net, bandwidth, power))
        # (ii) eq. (21)-(25): minimum latency for those lengths
        step = min_latency_bisection(net, tokens)
        bandwidth, power = step.bandwidth_hz, step.power_w
        if best is None or step.cost < best.cost:
            best = step
        if previous - step.cost <= rtol * abs(step.cost):
            converged = True
            break
        previous = step.cost
    best.iterations, best.converged = iterations, converged
    return best


# ---------------------------------------------------------------------------------------------
# Proposed global method
# ---------------------------------------------------------------------------------------------


@dataclass
class _Response:
    tokens: np.ndarray
    bandwidth_hz: np.ndarray
    power_w: np.ndarray


def _device_response(net: Network, latency_s: float, mu: float, nu: float) -> _Response:
    """Per-device minimizer of `lambda phi(s) + mu B + nu p` at fixed latency `T` under the boxes (16d)-(16f).

    In `(s, z)` coordinates (`z = s q / (T B)`) the cheapest efficiency for a given `s` is the unconstrained
    `z*` (Lagrangian condition of eqs. 24-25) clipped by the bandwidth box (`z >= s a / B^max`, `a = q / T`) and the
    power box (`z <= z_cap(s)`). As `s` grows the device moves along three segments: free (`B, p` inside their
    boxes), then one box active (bandwidth if `z* <= z_x`, power otherwise, `z_x = log2(1 + P^max_m / (rho B^max_m))`),
    then the corner. The reduced cost is convex in `s`; each segment's stationary point is closed form (Lambert W)
    except the power-capped one, a monotone scalar equation solved by safeguarded Newton.
    """
    rho, bc, pc = net.noise_to_gain, net.bandwidth_cap_hz, net.power_cap_w
    a = net.bits_per_token / latency_s  # rate that sends one token within T [bit/s]
    lo, s_max, beta = net.tokens_min, net.tokens_max, net.beta
    log_slope = net.log_loss_slope
    with np.errstate(all="ignore"):
        z_corner = np.log1p(pc / (rho * bc)) / LN2
        hi = np.minimum(s_max, bc * z_corner / a)  # tokens the boxes allow within T
        hi = np.maximum(hi, lo)  # infeasible devices are reported by the caller through the budgets
        # 1. free segment: z* and its cost per bit nu rho ln2 2^z*
        if nu > 0:
            z_star = spectral_efficiency_for_price(np.full_like(rho, mu / nu) / rho)
            log_price = math.log(nu) + np.log(rho) + math.log(LN2) + z_star * LN2 + math.log(a)
            s_free = np.exp(np.minimum((log_slope - log_price) / (beta + 1.0), 700.0))
        else:
            z_star = np.full_like(rho, np.inf)
            s_free = np.full_like(rho, np.inf)
        bandwidth_first = z_star <= z_corner
        s_junction = np.where(
            bandwidth_first,
            bc * z_star / a,
            np.where(np.isinf(z_star), 0.0, pc / rho * z_star / (np.expm1(np.minimum(z_star, 1000.0) * LN2) * a)),
        )
        s_junction = np.nan_to_num(s_junction, nan=0.0)
        tokens = np.clip(np.nan_to_num(s_free, nan=0.0), lo, hi)
        capped = (s_free > s_junction) & (s_junction < hi)
        lower = np.maximum(lo, s_junction)
        # 2. bandwidth box active: lambda beta alpha^beta s^-(beta+1) = nu rho a ln2 2^(s a / B^max)  (Lambert W)
        sel = capped & bandwidth_first
        if sel.any():
            k1 = a * LN2 / bc[sel]
            c = log_slope[sel] - (math.log(max(nu, 1e-300)) + np.log(rho[sel]) + math.log(a * LN2))
            y = np.log(k1 / (beta[sel] + 1.0)) + c / (beta[sel] + 1.0)
            s_b = (beta[sel] + 1.0) / k1 * _lambertw_of_exp(np.nan_to_num(y, nan=-745.0, neginf=-745.0))
            tokens[sel] = np.clip(s_b, lower[sel], hi[sel])
        # 3. power box active: monotone equation in z on the power-capped curve s(z) = P z / (rho a (2^z - 1))
        sel = capped & ~bandwidth_first
        if sel.any():
            tokens[sel] = _power_capped_tokens(a, mu, rho[sel], pc[sel], log_slope[sel], beta[sel], lower[sel], hi[sel])
        # 4. resources of the chosen point on its segment
        segment_free = tokens <= s_junction * (1 + 1e-12)
        rate = tokens * a
        z_free = np.where(np.isfinite(z_star) & (z_star > 0), z_star, 1.0)
        b_free = rate / z_free
        p_free = rho * rate * LN2 * _expm1_ratio(z_free * LN2)
        z_pcap = efficiency_at_power_cap(rate * rho / pc)
        b_pcap = np.minimum(rate / np.where(z_pcap > 0, z_pcap, 1e-300), bc)
        b_bcap = bc
        p_bcap = np.minimum(rho * rate * LN2 * _expm1_ratio(LN2 * rate / bc), pc)
        bandwidth = np.where(segment_free, b_free, np.where(bandwidth_first, b_bcap, b_pcap))
        power = np.where(segment_free, p_free, np.where(bandwidth_first, p_bcap, pc))
    return _Response(tokens, bandwidth, power)


def _power_capped_tokens(a, mu, rho, pc, log_slope, beta, lower, hi):
    """Tokens on the power-capped segment (`p = P^max_m`, `B < B^max_m`), clipped to `[lower, hi]`.

    Along the segment `s(z) = P z / (rho a (2^z - 1))` and `B(z) = P / (rho (2^z - 1))`; the reduced cost
    `lambda phi(s(z)) + mu B(z)` has a derivative of the sign of the increasing function
    `Psi(z) = log(lambda beta alpha^beta) - (beta+1) log s(z) - log a + log f(z) - log mu - log ln2 - z ln2`,
    whose root is found by safeguarded Newton (all devices at once).
    """
    if mu <= 0:  # bandwidth is free: use the whole box
        return hi.copy()
    scale = pc / (rho * a)
    constant = -math.log(a) - math.log(mu) - math.log(LN2)

    def psi_and_slope(z, log_slope, beta, scale):
        x = z * LN2
        with np.errstate(all="ignore"):
            log_s = np.log(scale / (LN2 * _expm1_ratio(x)))
            log_f = _log_f(x)
            value = log_slope - (beta + 1.0) * log_s + log_f + constant - x
            dlog_s = 1.0 / z - LN2 / (-np.expm1(-x))
            dlog_f = LN2 * x / np.exp(log_f - x)  # f'(z) / f(z) with f' = ln2 x e^x
        return value, -(beta + 1.0) * dlog_s + dlog_f - LN2

    z_many = efficiency_at_power_cap(hi / scale)  # small z <-> many tokens
    z_few = efficiency_at_power_cap(lower / scale)
    out = np.empty_like(rho)
    at_hi = psi_and_slope(z_many, log_slope, beta, scale)[0] >= 0  # cost increases with z: as many tokens as allowed
    at_lo = psi_and_slope(z_few, log_slope, beta, scale)[0] <= 0
    out[at_hi] = hi[at_hi]
    out[at_lo & ~at_hi] = lower[at_lo & ~at_hi]
    inner = ~at_hi & ~at_lo
    if inner.any():
        args = (log_slope[inner], beta[inner], scale[inner])
        z_a, z_b = z_many[inner], z_few[inner]  # Psi(z_a) < 0 < Psi(z_b)
        z = 0.5 * (z_a + z_b)
        for _ in range(100):
            value, slope = psi_and_slope(z, *args)
            z_a = np.where(value < 0, z, z_a)
            z_b = np.where(value > 0, z, z_b)
            step = z - value / slope
            z_new = np.where(~np.isfinite(step) | (step < z_a) | (step > z_b), 0.5 * (z_a + z_b), step)
            done = np.all(np.abs(z_new - z) <= 1e-13 * z)
            z = z_new
            if done:
                break
        out[inner] = np.clip(args[2] / (LN2 * _expm1_ratio(z * LN2)), lower[inner], hi[inner])
    return out


def _fixed_latency_solution(net: Network, latency_s: float, warm: dict):
    """Exact solution of the fixed-`T` convex problem min lambda sum phi s.t. (17b), (16b)-(16f): prices `(mu, nu)`
    by nested bracketing root finders (nu outer for the power budget, mu inner for the bandwidth budget).
    Returns `(_Response, evaluations)` or `(None, evaluations)` when `T` is infeasible."""
    evaluations = 0

    def clear_bandwidth(nu):
        nonlocal evaluations
        response = _device_response(net, latency_s, 0.0, nu)
        evaluations += 1
        if response.bandwidth_hz.sum() <= net.bandwidth_hz:
            return 0.0, response

        def excess(log_mu):
            nonlocal evaluations
            evaluations += 1
            used = _device_response(net, latency_s, _exp(log_mu), nu).bandwidth_hz.sum()
            return math.log(max(used, 1e-300) / net.bandwidth_hz)

        if nu > 0:  # theta = mu / (nu rho) ~ 1
            default_center = math.log(nu * float(np.median(net.noise_to_gain)))
        else:
            default_center = math.log(max(net.weight, 1e-12) / net.bandwidth_hz)
        center = warm.get("log_mu", default_center)
        root, _, _ = _expanding_brentq(excess, center, step=0.5 if "log_mu" in warm else 3.0)
        if root is None:
            return None, None
        warm["log_mu"] = root
        return _exp(root), _device_response(net, latency_s, _exp(root), nu)

    if net.power_cap_w.sum() <= net.power_w:  # power budget redundant: nu = 0
        mu, response = clear_bandwidth(0.0)
        return response, evaluations

    responses: dict = {}

    def power_excess(log_nu):
        mu, response = clear_bandwidth(_exp(log_nu))
        responses[log_nu] = response
        if response is None:  # bandwidth cannot be cleared at this power price: raise nu (fewer tokens)
            return 1e3
        return math.log(max(response.power_w.sum(), 1e-300) / net.power_w)

    center = warm.get("log_nu", math.log(max(net.weight, 1e-12) / net.power_w))
    if power_excess(center) < 0.0:
        # power budget slack in the limit nu -> 0+ (e.g. every device saturated or boxed): that limit is optimal
        tiny = center - 60.0
        if power_excess(tiny) <= 0.0:
            return responses[tiny], evaluations
        root, info = brentq(power_excess, tiny, center, xtol=_BRENT_XTOL, full_output=True)
    else:
        root, _, _ = _expanding_brentq(power_excess, center, step=0.5 if "log_nu" in warm else 3.0)
        if root is None:
            return None, evaluations
    warm["log_nu"] = root
    _, response = clear_bandwidth(_exp(root))
    return response, evaluations


def _solve_capped(net: Network) -> Solution:
    """Global optimum when per-device boxes bind: minimize the convex `F(T) = (1 - lambda) T + G(T)` over
    `T in [T(s_min), T(S_max)]` by a bounded scalar search, `G(T)` from `_fixed_latency_solution`."""
    t_lo = min_latency(net, net.tokens_min).latency_s
    t_hi = min_latency(net, net.tokens_max).latency_s
    warm: dict = {}
    evaluations = 0
    cache: dict = {}

    def objective(latency):
        nonlocal evaluations
        response, ev = _fixed_latency_solution(net, latency, warm)
        evaluations += ev
        if response is None:
            return np.inf
        cache[latency] = response.tokens
        return total_cost(net, latency, response.tokens)

    candidates = [(total_cost(net, t_lo, net.tokens_min), t_lo, net.tokens_min)]
    candidates.append((total_cost(net, t_hi, net.tokens_max), t_hi, net.tokens_max))
    converged = True
    # F is convex: a secant slope >= 0 next to T_lo (<= 0 next to T_hi) puts the minimum within that sliver
    probe = 1e-9 * (t_hi - t_lo)
    at_boundary = t_hi <= t_lo * (1 + 1e-12)
    if not at_boundary and objective(t_hi - probe) >= candidates[1][0]:
        at_boundary = True
    elif not at_boundary and objective(t_lo + probe) >= candidates[0][0]:
        at_boundary = True
    if not at_boundary:
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # inf from an infeasible T is handled by the search
            result = minimize_scalar(
                objective, bounds=(t_lo, t_hi), method="bounded", options={"xatol": 1e-10 * t_hi, "maxiter": 200}
            )
        converged = bool(result.success)
        if np.isfinite(result.fun) and result.x in cache:
            candidates.append((float(result.fun), float(result.x), cache[result.x]))
    _, _, tokens = min(candidates, key=lambda c: c[0])
    solution = min_latency(net, tokens)  # exact, feasible (B, p) for the optimal lengths
    solution.iterations, solution.converged = evaluations, converged
    return solution


def solve_proposed(net: Network) -> Solution:
    """Global optimum of problem (16) (continuous token lengths); see the module docstring for the argument."""
    if net.weight >= 1.0:  # performance only: every device sends S_max, with the least latency
        solution = min_latency(net, net.tokens_max)
        solution.iterations, solution.converged, solution.lower_bound = solution.iterations, True, solution.cost
        return solution
    # 1. one-price dual of the convex reformulation (exact when the per-device boxes do not bind)
    tokens, bandwidth, power, latency, lower, evaluations, converged = _solve_normalized_dual(
        net, None, 1.0 - net.weight
    )
    if _keeps_caps(net, bandwidth, power):
        bandwidth, power = np.minimum(bandwidth, net.bandwidth_cap_hz), np.minimum(power, net.power_cap_w)
        latency = float(np.max(latency_per_device(net, tokens, bandwidth, power)))
        cost = total_cost(net, latency, tokens)
        return Solution(tokens, bandwidth, power, latency, cost, evaluations, converged, lower)
    # 2. boxes bind: convex scalar search over T with the exact fixed-T solution
    solution = _solve_capped(net)
    solution.iterations += evaluations
    return solution


__all__ = [
    "LN2",
    "Network",
    "Solution",
    "efficiency_at_power_cap",
    "latency_per_device",
    "loss",
    "min_latency",
    "min_latency_bisection",
    "min_power",
    "rate_bps",
    "solve_alternating",
    "solve_proposed",
    "spectral_efficiency_for_price",
    "tokens_for_rates",
    "total_cost",
]
