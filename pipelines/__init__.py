"""transformers pipelines (registered tasks) and the resource allocator.

Importing this package (which `import tokcom` does) registers the `"token-comm-vqa"` task with transformers'
`PIPELINE_REGISTRY`, so that `pipeline("token-comm-vqa", model=PATH)` works; without `model` it loads the embedded
default checkpoint (`tokcom.defaults.default_model_path()`).
"""

from transformers import AutoModel
from transformers.pipelines import PIPELINE_REGISTRY

from tokcom import defaults

from .allocation import (
    DEFAULT_BITS_PER_TOKEN,
    METHODS,
    TEXT_LINK_DEFAULTS,
    allocate,
    build_network,
    default_network,
    fit_performance_model,
)
from .token_comm_vqa import TASK, TEXT_LINK_DEFAULT_DISTANCE_KM, TokenCommVQAPipeline


class _EmbeddedDefault(tuple):
    """The registry's default `(model, revision)` for `"token-comm-vqa"`: the embedded checkpoint's folder.

    transformers 5.23's `pipeline(task)` without a model unpacks `model, revision = default["model"]`; the folder is
    looked up at that moment, so a checkpoint installed after `import tokcom` is found and a missing one raises
    `tokcom.defaults.default_model_path`'s `FileNotFoundError` (rather than a Hub lookup of a local path that
    fails with an unrelated "Repo id must be in the form ..." error). The tuple itself holds the expected path.
    """

    def __new__(cls, name: str = defaults.DEFAULT_AVQA_MODEL):
        instance = super().__new__(cls, (str(defaults.CHECKPOINTS_DIR / name), None))
        instance.name = name
        return instance

    def __getnewargs__(self):  # copy/deepcopy (config serialization) rebuild it from its name
        return (self.name,)

    def __iter__(self):
        yield str(defaults.default_model_path(self.name))
        yield None  # revision: a local folder has none


def _register_pipelines() -> None:
    registered = PIPELINE_REGISTRY.supported_tasks.get(TASK, {}).get("impl")
    if registered is TokenCommVQAPipeline:
        return
    PIPELINE_REGISTRY.register_pipeline(
        TASK,
        pipeline_class=TokenCommVQAPipeline,
        pt_model=AutoModel,  # a transformers class (see NOTES-HF); AutoModel maps TokComConfig -> TokComForAVQA
        default={"model": _EmbeddedDefault()},
        type="multimodal",
    )
    # `Pipeline.save_pretrained` writes `_registered_impl` into the saved config's `custom_pipelines`; the embedded
    # default belongs to this install, not to a saved checkpoint, so it is left out there.
    impl = PIPELINE_REGISTRY.supported_tasks[TASK]
    TokenCommVQAPipeline._registered_impl = {TASK: {key: value for key, value in impl.items() if key != "default"}}


_register_pipelines()

__all__ = [
    "DEFAULT_BITS_PER_TOKEN",
    "METHODS",
    "TASK",
    "TEXT_LINK_DEFAULTS",
    "TEXT_LINK_DEFAULT_DISTANCE_KM",
    "TokenCommVQAPipeline",
    "allocate",
    "build_network",
    "default_network",
    "fit_performance_model",
]
