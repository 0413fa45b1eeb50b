"""One link planner for every family's pipeline: `snr_db` or a `network` in, per-link token counts, SNRs and the
transmission report out.

A model's config says what the planner needs (TokComConfig and the next families' configs carry the same fields):
- `link_names`: every link in prompt order (e.g. `("visual", "audio", "text")`);
- `max_tokens_per_link`: the links whose token length is chosen per call (by the caller or by the allocator of
  problem (16)), with their maxima S_m^max; the other links (e.g. the question) send their input's own length
  over a dedicated link (paper Sec. V: fixed bandwidth and power, `TEXT_LINK_DEFAULTS`);
- `performance_model`: the fitted phi_m of eq. (15) per allocated link (network mode only);
- `bits_per_token`: q of eq. (14); `channel_config.snr_db`: the default SNR.

>>> from tokcom.modeling.configuration_tokcom import TokComConfig
>>> plan = plan_links(TokComConfig.tiny(), snr_db=10.0, num_tokens={"visual": 8})
>>> plan.links["visual"].num_tokens, plan.links["audio"].num_tokens, plan.links["text"].snr_db
(8, 32, 10.0)
>>> plan.report({"text": 6}, symbols_per_token=64)["channel_uses"]
2944
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from tokcom.modeling.link_budget import MIN_SNR_DB, check_snr_db, dbm_to_w, received_snr_db, resolve_gain, shannon_rate_bps
from tokcom.modeling.links import Link

from .allocation import METHODS, TEXT_LINK_DEFAULTS, allocate

# Distance of a dedicated link's device (the question's) to the base station when `network[link]` gives no channel
# gain. The letter fixes the text link's bandwidth and power (Sec. V, `TEXT_LINK_DEFAULTS`) but not its distance;
# 0.4 km is the middle of Table I's device distances, d in [0.3, 0.5] km.
TEXT_LINK_DEFAULT_DISTANCE_KM = 0.4
DEDICATED_LINK_KEYS = ("bandwidth_hz", "power_dbm", "power_w", "distance_km", "gain_db", "gain")
REPORT_FIELDS = ("tokens", "bandwidth_hz", "power_w", "snr_db", "latency_s")


@dataclass
class LinkPlan:
    """The links of one call.

    Attributes:
        method (`str` or None): the allocator's method in network mode, else None.
        records (`dict[str, dict]`): per link `{"tokens", "bandwidth_hz", "power_w", "snr_db", "latency_s"}`;
            bandwidth, power and latency are None without a network, and a dedicated link's tokens (and latency)
            are known only per input.
        bits_per_token (`float`): q of eq. (14). rates_bps (`dict[str, float]`): dedicated links' Shannon rates
            (network mode), for their per-input latency.
    """

    method: str | None
    records: dict
    bits_per_token: float
    rates_bps: dict

    @property
    def links(self) -> dict[str, Link]:
        """The model's `links=` argument: `{name: Link(snr_db, num_tokens)}`."""
        return {name: Link(snr_db=r["snr_db"], num_tokens=r["tokens"]) for name, r in self.records.items()}

    def report(self, input_tokens: dict[str, int], symbols_per_token: int) -> dict:
        """The transmission report of one input, given the tokens its dedicated links sent (`{"text": 9}`):
        per link `REPORT_FIELDS`, the slowest link's latency (links are parallel) and the channel uses (complex
        symbols: tokens x `symbols_per_token` = ceil(d / 2), summed over links)."""
        records = {name: dict(values) for name, values in self.records.items()}
        for name, count in input_tokens.items():
            records[name]["tokens"] = int(count)
            if self.rates_bps.get(name) is not None:
                records[name]["latency_s"] = count * self.bits_per_token / self.rates_bps[name]
        latencies = [record["latency_s"] for record in records.values()]
        return {
            **records,
            "latency_s": None if None in latencies else max(latencies),
            "channel_uses": symbols_per_token * sum(record["tokens"] for record in records.values()),
            "method": self.method,
        }


def plan_links(config, snr_db=None, network=None, method=None, num_tokens: dict | None = None) -> LinkPlan:
    """Plan the links of one call from `snr_db` (same SNR on every link, or a dict per link) and optional token
    lengths `num_tokens` (`{link: s}`; default the maxima), or from a `network` solved by the allocator (problem 16)
    with `method`. One set of argument checks for every family: `ValueError` naming the argument."""
    names = tuple(config.link_names)
    maxima = dict(config.max_tokens_per_link)
    num_tokens = {name: value for name, value in (num_tokens or {}).items() if value is not None}
    unknown = sorted(set(num_tokens) - set(maxima))
    if unknown:
        raise ValueError(f"Token lengths can be set for the links {sorted(maxima)}, got {unknown}.")
    if network is not None:
        if snr_db is not None:
            raise ValueError("Give either `snr_db` (same SNR on every link) or `network` (allocated SNRs), not both.")
        for name in num_tokens:
            raise ValueError(f"`num_{name}_tokens` cannot be combined with `network`: the allocator chooses the token lengths.")
        return _allocate(config, names, maxima, network, "proposed" if method is None else method)
    if method is not None:
        raise ValueError("`method` selects the allocator's method and needs `network`.")
    default_snr_db = float(config.channel_config.snr_db)
    if isinstance(snr_db, dict):
        unknown = sorted(set(snr_db) - set(names))
        if unknown:
            raise ValueError(f"`snr_db` keys must be among {names}, got {unknown}.")
        snrs = {name: _snr(snr_db.get(name, default_snr_db), f"snr_db[{name!r}]") for name in names}
    else:
        snrs = dict.fromkeys(names, default_snr_db if snr_db is None else _snr(snr_db, "snr_db"))
    tokens = {
        name: _token_length(num_tokens.get(name), f"num_{name}_tokens", maxima[name]) if name in maxima else None
        for name in names  # None: a dedicated link sends its input's own length, known per input
    }
    # bandwidth, power and latency are unknown without a network
    records = {
        name: dict(tokens=tokens[name], bandwidth_hz=None, power_w=None, snr_db=snrs[name], latency_s=None)
        for name in names
    }
    return LinkPlan(method=None, records=records, bits_per_token=float(config.bits_per_token), rates_bps={})


def _allocate(config, names, maxima, network, method: str) -> LinkPlan:
    """Problem (16) for `network` with phi and S^max from the model config, then the dedicated links."""
    if not isinstance(network, dict):
        raise ValueError(f"`network` must be a dict (a problem of `allocate`), got {type(network).__name__}.")
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}, got {method!r}.")
    if not maxima:  # e.g. text-to-image: only the prompt's dedicated link, nothing for problem (16) to allocate
        raise ValueError(f"`network` allocates the token lengths of the media links, but this task's links {names} "
                         "have none to allocate: use `snr_db` instead.")  # fmt: skip
    if config.performance_model is None:
        raise ValueError(
            "`network` needs the fitted performance model phi_m(s) of eq. (15), but this checkpoint's config has "
            "none (`performance_model` is None). Fit one with `tokcom evaluate --model PATH --fit-performance-model "
            "--fit-output NEW_PATH`, which writes a copy of the checkpoint with it, or use `snr_db=` instead."
        )
    # 1. devices: names fixed to the modalities, phi and S^max from the config
    devices = network.get("devices")
    if not isinstance(devices, (list, tuple)) or len(devices) == 0:
        raise ValueError(f"`network.devices` must be a list of device dicts named {tuple(maxima)}, got {devices!r}.")
    problem_devices, named = [], []
    for index, device in enumerate(devices):
        where = f"network.devices[{index}]"
        if not isinstance(device, dict):
            raise ValueError(f"`{where}` must be a dict, got {type(device).__name__}.")
        name = device.get("name")
        if name not in maxima:
            raise ValueError(f"`{where}.name` must be one of {tuple(maxima)}, got {name!r}.")
        for key in ("phi", "tokens_max"):
            if key in device:
                raise ValueError(
                    f"`{where}.{key}` comes from the model config (`performance_model`, `max_{name}_tokens`); "
                    "remove it."
                )
        phi = config.performance_model.get(name)
        if phi is None:
            raise ValueError(
                f"The checkpoint's `performance_model` has no phi for {name!r}; refit it with "
                "`tokcom evaluate --fit-performance-model`."
            )
        phi = {key: phi[key] for key in ("alpha", "beta", "gamma")}
        problem_devices.append({**device, "tokens_max": maxima[name], "phi": phi})
        named.append(name)
    if sorted(named) != sorted(maxima):
        raise ValueError(f"`network.devices` must name each of {tuple(maxima)} exactly once, got {named}.")
    dedicated = [name for name in names if name not in maxima]
    problem = {key: value for key, value in network.items() if key not in dedicated}
    problem["devices"] = problem_devices
    problem.setdefault("bits_per_token", config.bits_per_token)

    # 2. bandwidth, power and integer token lengths (problem 16); SNR h p / (N0 B) per device (eq. 13)
    try:
        result = allocate(problem, method)
    except ValueError as error:
        raise ValueError(f"Invalid `network`: {error}") from error
    records = {}
    for record in result["devices"]:
        if not (record["power_w"] > 0 and record["bandwidth_hz"] > 0 and math.isfinite(record["latency_s"])):
            raise ValueError(
                f"Method {method!r} leaves the {record['name']!r} device without bandwidth or power (infinite "
                "latency), so its tokens cannot be sent; choose another `method`."
            )
        records[record["name"]] = {key: record[key] for key in REPORT_FIELDS}

    # 3. the dedicated links (the question's, paper Sec. V), outside problem (16)
    noise_dbm_per_hz = float(problem.get("noise_dbm_per_hz", -174.0))  # validated by `allocate`
    rates = {}
    for name in dedicated:
        link = dedicated_link(network.get(name, {}), noise_dbm_per_hz, where=f"network.{name}")
        # tokens (the input's own length) and latency (tokens * q / rate) are known per input
        records[name] = {"tokens": None, "bandwidth_hz": link["bandwidth_hz"], "power_w": link["power_w"],
                         "snr_db": link["snr_db"], "latency_s": None}  # fmt: skip
        rates[name] = link["rate_bps"]
    records = {name: records[name] for name in names}
    for name, record in records.items():  # a link budget can give an SNR no link can work at: say which settings
        if record["snr_db"] < MIN_SNR_DB:
            where = f"network.{name}" if name in dedicated else f"network (device {name!r})"
            raise ValueError(
                f"`{where}` gives the {name} link {record['snr_db']:.1f} dB SNR, below the {MIN_SNR_DB:g} dB floor: "
                "check its power, bandwidth, distance or gain, and `noise_dbm_per_hz`."
            )
    return LinkPlan(method=method, records=records, bits_per_token=float(problem["bits_per_token"]), rates_bps=rates)



def _token_length(value, field: str, maximum: int) -> int:
    if value is None:
        return maximum
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 1 <= value <= maximum:
        raise ValueError(f"`{field}` must be an integer in [1, {maximum}], got {value!r}.")
    return int(value)


def _snr(value, field: str) -> float:
    return check_snr_db(value, field)


def _number(mapping: dict, key: str, where: str, *, positive: bool) -> float:
    value = mapping[key]
    kind = "> 0" if positive else "finite"
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or (
        positive and value <= 0
    ):
        raise ValueError(f"`{where}.{key}` must be a number {kind}, got {value!r}.")
    return float(value)


def dedicated_link(text, noise_dbm_per_hz: float, where: str = "network.text") -> dict:
    """Bandwidth [Hz], power [W], SNR [dB] and rate [bit/s] of a dedicated link (the question's) from its
    settings `network[<link>]` (`DEDICATED_LINK_KEYS`; defaults: `TEXT_LINK_DEFAULTS` at 0.4 km)."""
    if not isinstance(text, dict):
        raise ValueError(f"`{where}` must be a dict with keys among {DEDICATED_LINK_KEYS}, got {type(text).__name__}.")
    unknown = sorted(set(text) - set(DEDICATED_LINK_KEYS))
    if unknown:
        raise ValueError(f"Unknown field(s) {unknown} in `{where}`; allowed: {list(DEDICATED_LINK_KEYS)}.")
    settings = {**TEXT_LINK_DEFAULTS, "distance_km": TEXT_LINK_DEFAULT_DISTANCE_KM}
    if "power_w" in text and "power_dbm" in text:
        raise ValueError(f"Give only one of `{where}.power_w` and `{where}.power_dbm`.")
    gains = [key for key in ("distance_km", "gain_db", "gain") if key in text]
    if len(gains) > 1:
        raise ValueError(f"Give only one of `{where}.distance_km`, `{where}.gain_db`, `{where}.gain`; got {gains}.")
    bandwidth_hz = _number(text, "bandwidth_hz", where, positive=True) if "bandwidth_hz" in text else float(
        settings["bandwidth_hz"]
    )
    if "power_w" in text:
        power_w = _number(text, "power_w", where, positive=True)
    else:
        power_dbm = _number(text, "power_dbm", where, positive=False) if "power_dbm" in text else settings["power_dbm"]
        power_w = float(dbm_to_w(power_dbm))
    key = gains[0] if gains else "distance_km"
    value = _number(text, key, where, positive=key != "gain_db") if gains else settings["distance_km"]
    gain = float(resolve_gain(**{key: value}))
    return {
        "bandwidth_hz": bandwidth_hz,
        "power_w": power_w,
        "snr_db": float(received_snr_db(power_w, bandwidth_hz, gain=gain, noise_dbm_per_hz=noise_dbm_per_hz)),
        "rate_bps": float(shannon_rate_bps(power_w, bandwidth_hz, gain, noise_dbm_per_hz)),
    }


__all__ = [
    "DEDICATED_LINK_KEYS",
    "LinkPlan",
    "REPORT_FIELDS",
    "TEXT_LINK_DEFAULT_DISTANCE_KM",
    "dedicated_link",
    "plan_links",
]
