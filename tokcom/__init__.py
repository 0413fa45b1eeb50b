"""tokcom: token communication models for the Hugging Face ecosystem.

Importing `tokcom` registers its configs and models with the transformers Auto classes, so
`AutoModel.from_pretrained(path)` works for tokcom checkpoints, and its pipeline tasks with `PIPELINE_REGISTRY`, so
`pipeline("token-comm-vqa", model=path)` works:

>>> import tokcom
>>> from transformers import AutoConfig
>>> type(AutoConfig.for_model("tokcom")).__name__
'TokComConfig'
"""

from transformers import AutoConfig, AutoModel

from . import modeling
from .modeling import ChannelConfig, TokComConfig, TokComForAVQA

__version__ = "0.1.0.dev0"


def _register_auto_classes() -> None:
    for config_class in (ChannelConfig, TokComConfig):
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    AutoModel.register(TokComConfig, TokComForAVQA, exist_ok=True)


_register_auto_classes()

from . import pipelines  # noqa: E402  registers the "token-comm-vqa" pipeline task (needs the Auto classes above)

__all__ = ["ChannelConfig", "TokComConfig", "TokComForAVQA", "modeling", "pipelines", "__version__"]
