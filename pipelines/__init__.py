"""transformers pipelines (registered tasks) and the resource allocator.

`import tokcom` registers the `"token-comm-vqa"` task with transformers' `PIPELINE_REGISTRY` (see
`tokcom.registration`), so that `pipeline("token-comm-vqa", model=PATH)` works; without `model` it loads the embedded
default checkpoint (`tokcom.defaults.default_model_path()`).

The names below are imported on first use (PEP 562), so `import tokcom.pipelines.allocation` (numpy and scipy only)
does not import torch or transformers.
"""

from tokcom._lazy import attach

_EXPORTS = {
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
    "token_comm_base": ("TokenCommPipeline", "UnknownWordsWarning"),
    "token_comm_taichi": ("TaiChiVQAPipeline", "TokenCommImageToTextPipeline", "TokenCommTextClassificationPipeline"),
    "token_comm_unitocom": ("TokenCommASRPipeline", "TokenCommTextToImagePipeline", "UniToComVQAPipeline"),
}

__getattr__, __dir__, __all__ = attach(__name__, _EXPORTS)
