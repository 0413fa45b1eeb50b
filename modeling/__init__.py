"""Hub-copyable model code. Files here import only torch, transformers, peft and each other (relatively).

This `__init__` is not copied to the Hub. Its names are imported on first use (PEP 562), so importing one light
module (`tokcom.modeling.link_budget`, `tokcom.modeling.media_io`, numpy/scipy only) does not import torch or
transformers. To export a new name, add it to `_LAZY` under its module.
"""

import importlib

_LAZY = {
    "channel": ("ChannelConfig", "ChannelRealization", "TokenChannel"),
    "link_budget": (
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
    ),
    "configuration_tokcom": ("LINKS", "MODALITIES", "TokComConfig"),
    "links": ("Link", "resolve_links"),
    "modeling_tokcom": (
        "TokComAnswerOutput",
        "TokComForAVQA",
        "TokComModel",
        "TokComModelOutput",
        "TokComOutput",
        "TokComPreTrainedModel",
        "TokenReceiver",
        "sliding_window_pool",
    ),
}
_MODULE_OF = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str):
    if name in _MODULE_OF:
        value = getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


__all__ = sorted(_MODULE_OF)
