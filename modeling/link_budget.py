"""Unit conversions and the link budget of the TokCom letter (eqs. 13-14, Table I): numpy only, no torch.

`tokcom.modeling.channel` re-exports every name here (`from tokcom.modeling.channel import dbm_to_w` keeps working);
this module exists so that the resource allocator (`tokcom.pipelines.allocation`) and `tokcom allocate` do not
import torch. Scalars in -> Python floats out; arrays in -> arrays out.

Units live in names: `bandwidth_hz` [Hz], `power_w` [W], `power_dbm` [dBm], `distance_km` [km],
`noise_dbm_per_hz` [dBm/Hz], `gain` (linear power gain) and `gain_db` [dB].

>>> dbm_to_w(30), w_to_dbm(0.1)
(1.0, 20.0)
"""

from __future__ import annotations

import math

import numpy as np

NOISE_DBM_PER_HZ = -174.0  # thermal noise density at 290 K, paper Table I
# The lowest SNR a link accepts [dB]. Below it the received tokens are noise for every practical purpose, and the
# noise power 10 ** (-snr_db / 10) overflows float32 near -385 dB (a NaN answer, not an error).
MIN_SNR_DB = -100.0


def check_snr_db(value, name: str = "snr_db") -> float:
    """`value` as a float SNR [dB] in `[MIN_SNR_DB, inf]` (`inf`: noiseless); `ValueError` naming `name` otherwise.

    >>> check_snr_db(10)
    10.0
    """
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value) or value < MIN_SNR_DB:
        raise ValueError(f"`{name}` must be a number in [{MIN_SNR_DB:g}, inf] dB (inf: noiseless), got {value!r}.")
    return float(value)


# ---------------------------------------------------------------------------------------------
# Unit conversions and link budget (numpy; scalars in -> Python floats out)
# ---------------------------------------------------------------------------------------------


def _as_array(value, name: str, *, allow_zero: bool = True, allow_negative: bool = False) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if np.isnan(array).any():
        raise ValueError(f"`{name}` must not be NaN, got {value!r}.")
    if not allow_negative:
        if allow_zero and (array < 0).any():
            raise ValueError(f"`{name}` must be >= 0, got {value!r}.")
        if not allow_zero and (array <= 0).any():
            raise ValueError(f"`{name}` must be > 0, got {value!r}.")
    return array


def _out(array: np.ndarray):
    return float(array) if array.ndim == 0 else array


def db_to_linear(value_db):
    """Decibels -> linear power ratio: `10 ** (value_db / 10)`."""
    return _out(10.0 ** (_as_array(value_db, "value_db", allow_negative=True) / 10.0))


def linear_to_db(value):
    """Linear power ratio (> 0) -> decibels: `10 log10(value)`."""
    return _out(10.0 * np.log10(_as_array(value, "value", allow_zero=False)))


def dbm_to_w(power_dbm):
    """Power [dBm] -> [W]. `dbm_to_w(30) == 1.0`."""
    return _out(10.0 ** ((_as_array(power_dbm, "power_dbm", allow_negative=True) - 30.0) / 10.0))


def w_to_dbm(power_w):
    """Power [W] (> 0) -> [dBm]. `w_to_dbm(0.1) == 20.0`."""
    return _out(10.0 * np.log10(_as_array(power_w, "power_w", allow_zero=False)) + 30.0)


def path_loss_db(distance_km):
    """Urban macro path loss of Table I: `128.1 + 37.6 log10(d_km)` [dB], `distance_km > 0`."""
    return _out(128.1 + 37.6 * np.log10(_as_array(distance_km, "distance_km", allow_zero=False)))


def channel_gain(distance_km):
    """Linear large-scale power gain `h = 10 ** (-PL(d) / 10)` for `distance_km > 0`."""
    return _out(10.0 ** (-np.asarray(path_loss_db(distance_km)) / 10.0))


def noise_power_w(bandwidth_hz, noise_dbm_per_hz: float = NOISE_DBM_PER_HZ):
    """Noise power `N0 B` [W] over `bandwidth_hz` [Hz] at density `noise_dbm_per_hz` [dBm/Hz]."""
    bandwidth = _as_array(bandwidth_hz, "bandwidth_hz")
    density_w_per_hz = dbm_to_w(_as_array(noise_dbm_per_hz, "noise_dbm_per_hz", allow_negative=True))
    return _out(np.asarray(density_w_per_hz) * bandwidth)


def received_snr(power_w, bandwidth_hz, gain, noise_dbm_per_hz: float = NOISE_DBM_PER_HZ):
    """Linear received SNR `h p / (N0 B)` (eq. 13). `bandwidth_hz > 0`, `power_w >= 0`, `gain > 0`."""
    power = _as_array(power_w, "power_w")
    bandwidth = _as_array(bandwidth_hz, "bandwidth_hz", allow_zero=False)
    gain = _as_array(gain, "gain", allow_zero=False)
    return _out(gain * power / np.asarray(noise_power_w(bandwidth, noise_dbm_per_hz)))


def received_snr_db(
    power_w,
    bandwidth_hz,
    *,
    distance_km=None,
    gain=None,
    gain_db=None,
    noise_dbm_per_hz: float = NOISE_DBM_PER_HZ,
):
    """Received SNR `10 log10(h p / (N0 B))` [dB]; give exactly one of `distance_km`, `gain`, `gain_db`.

    Example (paper Table I, d = 0.4 km, p = 20 dBm, B = 1.5 MHz):

    >>> round(received_snr_db(dbm_to_w(20), 1.5e6, distance_km=0.4), 2)
    19.1
    """
    h = resolve_gain(distance_km=distance_km, gain=gain, gain_db=gain_db)
    snr = np.asarray(received_snr(power_w, bandwidth_hz, h, noise_dbm_per_hz))
    with np.errstate(divide="ignore"):
        return _out(10.0 * np.log10(snr))


def shannon_rate_bps(power_w, bandwidth_hz, gain, noise_dbm_per_hz: float = NOISE_DBM_PER_HZ):
    """Achievable rate `B log2(1 + h p / (N0 B))` [bit/s] (eq. 13)."""
    snr = np.asarray(received_snr(power_w, bandwidth_hz, gain, noise_dbm_per_hz))
    return _out(np.asarray(bandwidth_hz, dtype=np.float64) * np.log2(1.0 + snr))


def resolve_gain(*, distance_km=None, gain=None, gain_db=None):
    """Linear channel gain from exactly one of `distance_km` [km], `gain` (linear) or `gain_db` [dB]."""
    given = [name for name, v in (("distance_km", distance_km), ("gain", gain), ("gain_db", gain_db)) if v is not None]
    if len(given) != 1:
        raise ValueError(f"Give exactly one of `distance_km`, `gain`, `gain_db`; got {given or 'none'}.")
    if distance_km is not None:
        return channel_gain(distance_km)
    if gain is not None:
        return _out(_as_array(gain, "gain", allow_zero=False))
    return db_to_linear(gain_db)


__all__ = [
    "MIN_SNR_DB",
    "NOISE_DBM_PER_HZ",
    "check_snr_db",
    "channel_gain",
    "db_to_linear",
    "dbm_to_w",
    "linear_to_db",
    "noise_power_w",
    "path_loss_db",
    "received_snr",
    "received_snr_db",
    "resolve_gain",
    "shannon_rate_bps",
    "w_to_dbm",
]
