"""transformers pipelines (registered tasks) and the resource allocator.

`import tokcom` registers the `"token-comm-vqa"` task with transformers' `PIPELINE_REGISTRY` (see
`tokcom.registration`), so that `pipeline("token-comm-vqa", model=PATH)` works; without `model` it loads the embedded
default checkpoint (`tokcom.defaults.default_model_path()`).

The names below are imported on first use (PEP 562), so `import tokcom.pipelines.allocation` (numpy and scipy only)
does not import torch or transformers.
"""

import importlib

_LAZY = {
    "allocation": (
        "DEFAULT_BITS_PER_TOKEN",
        "METHODS",
        "TEXT_LINK_DEFAULTS",
        "allocate",
        "build_network",
        "default_network",
        "fit_performance_model",
    ),
    "token_comm_vqa": ("TASK", "TEXT_LINK_DEFAULT_DISTANCE_KM", "TokenCommVQAPipeline"),
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
