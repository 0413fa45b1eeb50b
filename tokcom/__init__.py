"""tokcom: token communication models for the Hugging Face ecosystem.

Importing `tokcom` registers its configs and models with the transformers Auto classes, so
`AutoModel.from_pretrained(path)` works for tokcom checkpoints, and its pipeline tasks with `PIPELINE_REGISTRY`, so
`pipeline("token-comm-vqa", model=path)` works:

>>> import tokcom
>>> from transformers import AutoConfig
>>> type(AutoConfig.for_model("tokcom")).__name__
'TokComConfig'

`import tokcom` itself is light (no torch, no transformers): the families and tasks of `tokcom.registry` are
registered by `tokcom.registration.register()` at once if transformers is already imported, otherwise right after
the first `import transformers`. `tokcom.TokComConfig`, `tokcom.modeling`, ... are imported on first use (PEP 562).
"""

import importlib

from . import registration as _registration

__version__ = "0.1.0.dev0"

_SUBMODULES = ("modeling", "pipelines")
_LAZY_ATTRIBUTES = {
    "ChannelConfig": "tokcom.modeling.channel",
    "TokComConfig": "tokcom.modeling.configuration_tokcom",
    "TokComForAVQA": "tokcom.modeling.modeling_tokcom",
}


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _LAZY_ATTRIBUTES:
        value = getattr(importlib.import_module(_LAZY_ATTRIBUTES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


_registration.register_on_transformers_import()

__all__ = ["ChannelConfig", "TokComConfig", "TokComForAVQA", "modeling", "pipelines", "__version__"]
