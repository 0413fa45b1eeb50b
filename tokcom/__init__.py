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

from ._lazy import attach
from . import registration as _registration

__version__ = "0.1.0.dev0"

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "modeling.channel": ("ChannelConfig",),
        "modeling.configuration_tokcom": ("TokComConfig",),
        "modeling.modeling_tokcom": ("TokComForAVQA",),
    },
    submodules=("modeling", "pipelines"),
)
__all__ += ["__version__"]

_registration.register_on_transformers_import()
