"""Register every tokcom family and task with transformers, from `tokcom.registry`: one idempotent `register()`.

For every family: `AutoConfig.register(model_type, config_class)` and `<Auto class>.register(config_class,
model_class)` for each of its `auto_classes`; every `EXTRA_CONFIGS` entry with `AutoConfig`. For every task:
`PIPELINE_REGISTRY.register_pipeline(...)` with `pt_model=AutoModel` and, when a family serving it ships an embedded
default checkpoint, that checkpoint as the task's default model (looked up lazily, see `EmbeddedDefault`).

`import tokcom` calls `register()` itself: at once when transformers is already imported, otherwise right after the
first `import transformers` (a post-import hook, see `tokcom.__init__`), so `import tokcom` stays light and
`pipeline("token-comm-vqa")` / `AutoModel.from_pretrained(tokcom_checkpoint)` still find the classes.

>>> import tokcom.registration as registration
>>> registration.register()
>>> from transformers import AutoConfig
>>> type(AutoConfig.for_model("tokcom")).__name__
'TokComConfig'
"""

from __future__ import annotations

import sys
import threading
import warnings

from tokcom import defaults
from tokcom.registry import EXTRA_CONFIGS, FAMILIES, TASKS, import_object

_lock = threading.RLock()
_done = False


class EmbeddedDefault(tuple):
    """The registry's default `(model, revision)` for a task: an embedded checkpoint's folder.

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


class NoEmbeddedDefault(tuple):
    """The default of a task that no family ships a checkpoint for: `pipeline(task)` without `model=` gets a
    `ValueError` saying so (instead of transformers' `KeyError: 'default'`)."""

    def __new__(cls, task_name: str):
        instance = super().__new__(cls, (None, None))
        instance.task_name = task_name
        return instance

    def __getnewargs__(self):
        return (self.task_name,)

    def __iter__(self):
        raise ValueError(f"The {self.task_name!r} task has no embedded default model yet: pass `model=` (a checkpoint "
                         "folder or Hub repo id).")


def _task_default(task) -> dict:
    for family_name in task.families:
        checkpoint = FAMILIES[family_name].default_checkpoint
        if checkpoint is not None:
            return {"model": EmbeddedDefault(checkpoint)}
    return {"model": NoEmbeddedDefault(task.name)}


def register_auto_classes() -> None:
    """Every family's config with `AutoConfig` and model with its Auto classes; `EXTRA_CONFIGS` with `AutoConfig`."""
    import transformers
    from transformers import AutoConfig

    for model_type, config_path in EXTRA_CONFIGS.items():
        AutoConfig.register(model_type, import_object(config_path), exist_ok=True)
    for family in FAMILIES.values():
        config_class = import_object(family.config_class)
        AutoConfig.register(family.model_type, config_class, exist_ok=True)
        model_class = import_object(family.model_class)
        for auto_name in family.auto_classes:
            getattr(transformers, auto_name).register(config_class, model_class, exist_ok=True)


def register_pipelines() -> None:
    """Every task with transformers' `PIPELINE_REGISTRY` (`pt_model=AutoModel`, the embedded default if any)."""
    from transformers import AutoModel
    from transformers.pipelines import PIPELINE_REGISTRY

    for task in TASKS.values():
        pipeline_class = import_object(task.pipeline_class)
        if PIPELINE_REGISTRY.supported_tasks.get(task.name, {}).get("impl") is not pipeline_class:
            PIPELINE_REGISTRY.register_pipeline(
                task.name,
                pipeline_class=pipeline_class,
                pt_model=AutoModel,  # a transformers class (see NOTES-HF); AutoModel maps each config to its model
                default=_task_default(task),
                type=task.type,
            )
        # `Pipeline.save_pretrained` writes `_registered_impl` into the saved config's `custom_pipelines`; the
        # embedded default belongs to this install, not to a saved checkpoint, so it is left out there.
        impl = PIPELINE_REGISTRY.supported_tasks[task.name]
        pipeline_class._registered_impl = {task.name: {key: value for key, value in impl.items() if key != "default"}}


def register() -> None:
    """Register all families and tasks with transformers (imports torch and transformers); safe to call again."""
    global _done
    with _lock:
        if _done:
            return
        register_auto_classes()
        register_pipelines()
        _done = True
        _uninstall_finder()


def is_registered() -> bool:
    """Whether `register()` has run in this process."""
    return _done


# ---------------------------------------------------------------------------------------------
# Registration right after `import transformers` (a post-import hook)
# ---------------------------------------------------------------------------------------------
#
# `import tokcom` must not import transformers (it takes seconds), but `AutoConfig`/`AutoModel`/`pipeline` must find
# tokcom's classes once the user imports transformers. A `sys.meta_path` finder (the "post import hook" pattern, as
# in `wrapt`) wraps the loader of the top-level `transformers` module and calls `register()` after it has executed.
#
# `register()` imports tokcom's model code, torch and peft. If one of them is itself half-imported at that moment
# (`from tokcom.modeling.modeling_tokcom import X` is what imports transformers, or `import peft` does), importing
# it again would fail, so registration waits: while it is pending, the finder wraps the loader of every module
# imported next and tries again after each has executed, and so does the end of every `tokcom.*` module and of
# every top-level package in `_NEEDS`.

# top-level packages that registration imports; while one of them is half-imported, registration waits
_NEEDS = frozenset({"tokcom", "transformers", "torch", "peft", "accelerate", "huggingface_hub", "safetensors",
                    "tokenizers", "numpy", "scipy"})  # fmt: skip
_local = threading.local()
_pending = False  # transformers is loaded, registration not yet done
_last_error: BaseException | None = None


_executing: set[str] = set()  # modules whose code runs now, among those whose loader the finder wrapped


def _busy(just_loaded: str | None) -> bool:
    """Whether a module that registration needs is half-imported (other than `just_loaded`, whose code has just
    run). Modules imported after the finder was installed are tracked in `_executing`; of the others, only the
    top-level packages can be half-imported here (e.g. `peft`, whose `__init__` imports transformers)."""
    if _executing - {just_loaded}:
        return True
    for name in _NEEDS:
        module = sys.modules.get(name)
        if name != just_loaded and getattr(getattr(module, "__spec__", None), "_initializing", False):
            return True
    return False


def register_when_ready(just_loaded: str | None = None) -> bool:
    """Register now unless a module it needs is half-imported (then leave it pending); True once registered."""
    global _pending, _last_error
    if _done:
        return True
    if "transformers" not in sys.modules or _last_error is not None:
        return False
    _pending = True
    if getattr(_local, "active", False) or _busy(just_loaded):
        return False
    _local.active = True
    try:
        register()
    except (ImportError, AttributeError) as error:
        # nothing it needs was half-imported, so this is no import-order problem (a missing or broken dependency):
        # stop trying on every import, and say so; `tokcom.registration.register()` raises the error itself
        _last_error = error
        _pending = False
        _uninstall_finder()
        warnings.warn(f"tokcom could not register its models and pipelines with transformers: {error!r}", stacklevel=2)
        return False
    finally:
        _local.active = False
    _pending = False
    return True


class _PostImportLoader:
    """Wraps a module's loader: runs it, then `register_when_ready(module name)`."""

    def __init__(self, loader):
        self.loader = loader

    def __getattr__(self, name):  # every other loader method (get_source, get_resource_reader, ...)
        if name == "loader":  # not set yet (e.g. while copying): no recursion
            raise AttributeError(name)
        return getattr(self.loader, name)

    def create_module(self, spec):
        return self.loader.create_module(spec) if hasattr(self.loader, "create_module") else None

    def exec_module(self, module):
        if getattr(module, "__loader__", None) is self:  # the module sees its real loader, as without the hook
            module.__loader__ = self.loader
        spec = getattr(module, "__spec__", None)
        if spec is not None and spec.loader is self:
            spec.loader = self.loader
        name = module.__name__
        _executing.add(name)
        try:
            self.loader.exec_module(module)
        finally:
            _executing.discard(name)
        register_when_ready(name)


class _PostImportFinder:
    """First on `sys.meta_path` until registration is done; finds nothing itself, but wraps the loader of
    `transformers`, of the other top-level packages in `_NEEDS` (so that registration runs when a half-imported one,
    e.g. `peft`, is done), of `tokcom.*` modules and, while registration is pending, of every module."""

    def find_spec(self, fullname, path=None, target=None):
        if _done or getattr(_local, "finding", False) or getattr(_local, "active", False):
            return None
        if not (_pending or fullname in _NEEDS or fullname.startswith("tokcom.")):
            return None
        _local.finding = True
        try:
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
            else:
                return None
        finally:
            _local.finding = False
        if spec.loader is None or not hasattr(spec.loader, "exec_module") or spec.origin in ("built-in", "frozen"):
            return spec
        spec.loader = _PostImportLoader(spec.loader)
        return spec


_finder = _PostImportFinder()


def _uninstall_finder() -> None:
    try:
        sys.meta_path.remove(_finder)
    except ValueError:
        pass


def register_on_transformers_import() -> None:
    """What `import tokcom` does: register now if transformers is already imported, else right after it is."""
    if _done:
        return
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
    if "transformers" in sys.modules:
        register_when_ready("tokcom")


__all__ = [
    "EmbeddedDefault",
    "is_registered",
    "register",
    "register_auto_classes",
    "register_on_transformers_import",
    "register_pipelines",
    "register_when_ready",
]
