"""Links as first-class objects: what one call sends over each named link.

Every tokcom model sends tokens over named links (TokCom: `"visual"`, `"audio"`, `"text"`; TaiChi and UniToCom
name theirs the same way). A [`Link`] carries one link's settings for a call: its SNR [dB], the number of tokens
sent and the channel type. Models, pipelines and training pass a `{name: Link}` mapping instead of per-modality
argument lists; [`resolve_links`] turns the older keyword forms (`snr_db=` as a number or dict,
`num_<name>_tokens=`, `channel_type=`) into that mapping, with one set of argument checks.

>>> links = resolve_links(("visual", "audio", "text"), snr_db={"visual": 5.0}, num_visual_tokens=16)
>>> links["visual"]
Link(snr_db=5.0, num_tokens=16, channel_type=None)
>>> links["text"].snr_db is None   # None: the channel config's default SNR
True
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, replace

from .link_budget import check_snr_db

LINK_CHANNEL_TYPES = ("awgn", "rayleigh", "none")
_FIELDS = ("snr_db", "num_tokens", "channel_type")


@dataclass(frozen=True)
class Link:
    """Settings of one link for one call.

    Args:
        snr_db (`float` or `torch.Tensor` of shape `(batch,)`, *optional*): received SNR [dB], Es/N0 per complex
            symbol, in `[MIN_SNR_DB, inf]` (-100 dB to noiseless); `None` uses the channel config's default.
        num_tokens (`int`, *optional*): tokens sent (s_m); `None` sends the model's maximum for this link. Links
            whose length is fixed by their input (a question's words) ignore it.
        channel_type (`str`, *optional*): `"awgn"`, `"rayleigh"` or `"none"` for this link; `None` uses the
            call's `channel_type`, else the channel config's.

    >>> Link(snr_db=10.0, num_tokens=32).with_defaults(channel_type="rayleigh").channel_type
    'rayleigh'
    """

    snr_db: object = None
    num_tokens: int | None = None
    channel_type: str | None = None

    def __post_init__(self):
        if self.channel_type is not None and self.channel_type not in LINK_CHANNEL_TYPES:
            raise ValueError(f"`channel_type` must be one of {LINK_CHANNEL_TYPES}, got {self.channel_type!r}.")
        if self.num_tokens is not None and (
            isinstance(self.num_tokens, bool) or not isinstance(self.num_tokens, numbers.Integral) or self.num_tokens < 1
        ):
            raise ValueError(f"`num_tokens` must be an integer >= 1, got {self.num_tokens!r}.")
        if self.snr_db is not None and not hasattr(self.snr_db, "shape"):  # tensors are checked by the channel
            object.__setattr__(self, "snr_db", check_snr_db(self.snr_db))

    def with_defaults(self, **defaults) -> Link:
        """This link with its `None` fields replaced by `defaults` (fields already set win)."""
        return replace(self, **{key: value for key, value in defaults.items() if getattr(self, key) is None})


def resolve_links(
    names,
    links: Mapping | None = None,
    snr_db=None,
    channel_type: str | None = None,
    **num_tokens,
) -> dict[str, Link]:
    """One `Link` per name in `names` from any of the accepted call forms.

    Args:
        names (`tuple[str]`): the model's link names, in prompt order.
        links (`dict[str, Link | dict]`, *optional*): per-link settings; dict values are `Link` fields.
        snr_db (`float`, tensor or `dict[str, float]`, *optional*): the older form: one SNR for every link, or one
            per link. Cannot be combined with `links`.
        channel_type (`str`, *optional*): the call's channel type, for links that do not set their own.
        **num_tokens: the older form `num_<name>_tokens=` (e.g. `num_visual_tokens=32`).

    Returns `{name: Link}` for every name (links not mentioned get an all-default `Link`). Raises `ValueError`
    naming the argument for unknown link names, both forms at once, or invalid values.

    >>> sorted(resolve_links(("a", "b"), links={"a": {"snr_db": 3.0}}))
    ['a', 'b']
    """
    names = tuple(names)
    resolved = dict.fromkeys(names)
    if links is not None:
        if snr_db is not None or any(value is not None for value in num_tokens.values()):
            raise ValueError("Give either `links` or the per-argument form (`snr_db`, `num_<link>_tokens`), not both.")
        if not isinstance(links, Mapping):
            raise ValueError(f"`links` must be a dict of link name -> Link, got {type(links).__name__}.")
        unknown = sorted(set(links) - set(names))
        if unknown:
            raise ValueError(f"`links` keys must be among {names}, got {unknown}.")
        for name, link in links.items():
            if isinstance(link, Mapping):
                unknown = sorted(set(link) - {"snr_db", "num_tokens", "channel_type"})
                if unknown:
                    raise ValueError(f"`links[{name!r}]` fields must be among snr_db, num_tokens, channel_type; got {unknown}.")
                link = Link(**link)
            elif not isinstance(link, Link) and all(hasattr(link, field) for field in _FIELDS):
                # a Link of another copy of this module (remote code loads the model's and the pipeline's apart)
                link = Link(**{field: getattr(link, field) for field in _FIELDS})
            if not isinstance(link, Link):
                raise ValueError(f"`links[{name!r}]` must be a Link or a dict of its fields, got {type(link).__name__}.")
            resolved[name] = link
    else:
        if isinstance(snr_db, Mapping):
            unknown = sorted(set(snr_db) - set(names))
            if unknown:
                raise ValueError(f"`snr_db` keys must be among {names}, got {unknown}.")
            snrs = {name: snr_db.get(name) for name in names}
        else:
            snrs = dict.fromkeys(names, snr_db)
        extra = sorted(key for key in num_tokens if not (key.startswith("num_") and key.endswith("_tokens")))
        if extra:
            raise ValueError(f"Unknown argument(s) {extra}; token lengths are given as `num_<link>_tokens`.")
        lengths = {key[len("num_") : -len("_tokens")]: value for key, value in num_tokens.items()}
        unknown = sorted(name for name, value in lengths.items() if name not in names and value is not None)
        if unknown:
            raise ValueError(f"`num_<link>_tokens` must name a link among {names}, got {unknown}.")
        for name in names:
            resolved[name] = _named(name, snr_db=snrs[name], num_tokens=lengths.get(name))
    return {name: (link or Link()).with_defaults(channel_type=channel_type) for name, link in resolved.items()}


def _named(name: str, **fields) -> Link:
    """`Link(**fields)`, its errors naming the older arguments (`num_<name>_tokens`, `snr_db[<name>]`)."""
    try:
        return Link(**fields)
    except ValueError as error:
        message = str(error).replace("`num_tokens`", f"`num_{name}_tokens`").replace("`snr_db`", f"`snr_db` ({name!r} link)")
        raise ValueError(message) from None


__all__ = ["LINK_CHANNEL_TYPES", "Link", "resolve_links"]
