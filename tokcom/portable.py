"""What a checkpoint carries off the machine that built it: no absolute local paths.

Installing a built default (`training.build_default.install_checkpoint`) and writing a Hub folder (`tokcom export`)
pass the checkpoint's `config.json` through [`portable_config`] and its `tokcom_recipe.json` through
[`portable_recipe`]:
- a sub-config copied from another checkpoint (e.g. UniToCom's tokenizers, loaded from `model.*_tokenizer_path`)
  keeps the `_name_or_path` it was loaded from; an absolute one is emptied, as transformers leaves a fresh one;
- a recipe's `model.*_path` into the build's work folder is written relative to it (`image_tokenizer/model`), and
  the recipe's `paths_relative_to_work_dir` lists those fields: run the recipe from the build's `--work-dir`.
"""

from __future__ import annotations

import copy
import ntpath
import os
from pathlib import Path

RELATIVE_PATHS_KEY = "paths_relative_to_work_dir"  # recipe field: the `model.*_path` fields relative to --work-dir
RECIPE_FILE = "tokcom_recipe.json"  # `tokcom.training.engine.RECIPE_FILE` (without importing torch)


def is_absolute_local_path(value) -> bool:
    """True for a string that is an absolute path on POSIX or Windows (`/home/...`, `~/...`, `C:\\...`).

    >>> [is_absolute_local_path(v) for v in ("/work/runs/model", "C:\\\\runs", "~/model", "Qwen/Qwen2-0.5B", "", None)]
    [True, True, True, False, False, False]
    """
    return isinstance(value, str) and (os.path.isabs(value) or ntpath.isabs(value) or value.startswith("~"))


def portable_config(config: dict) -> dict:
    """A copy of a `config.json` dict whose `_name_or_path` fields (at any depth: sub-configs) hold no absolute
    local path; such values become `""`.

    >>> portable_config({"model_type": "m", "sub": {"_name_or_path": "/work/runs/tok/model", "x": 1}})
    {'model_type': 'm', 'sub': {'_name_or_path': '', 'x': 1}}
    """
    if isinstance(config, dict):
        return {key: "" if key == "_name_or_path" and is_absolute_local_path(value) else portable_config(value)
                for key, value in config.items()}  # fmt: skip
    if isinstance(config, list):
        return [portable_config(value) for value in config]
    return config


def recipe_work_dir(recipe: dict, checkpoint_dir: str | os.PathLike) -> Path:
    """The build's work folder of a checkpoint that does not name it (`tokcom export`): the deepest folder holding
    `checkpoint_dir` and every absolute `model.*_path` of `recipe`, as in every build's layout
    (`<work>/mllm/model` beside `<work>/image_tokenizer/model`). `ValueError` when only the file system's root
    holds them all.

    >>> recipe_work_dir({"model": {"image_tokenizer_path": "/runs/u/image_tokenizer/model"}}, "/runs/u/mllm/model").as_posix()
    '/runs/u'
    """
    checkpoint_dir = os.path.abspath(checkpoint_dir)
    paths = [os.path.abspath(os.path.expanduser(value)) for key, value in recipe.get("model", {}).items()
             if key.endswith("_path") and is_absolute_local_path(value)]  # fmt: skip
    if not paths:
        return Path(checkpoint_dir)
    common = Path(os.path.commonpath([checkpoint_dir, *paths]))
    if common == Path(common.anchor):
        raise ValueError(f"The recipe of {checkpoint_dir} loads {paths}, which share no folder with the checkpoint "
                         "but the root; move them beside it (the build's work folder) to export it.")  # fmt: skip
    return common


def portable_recipe(recipe: dict, work_dir: str | os.PathLike) -> dict:
    """A copy of a training recipe whose absolute `model.*_path` values under `work_dir` (the build's `--work-dir`)
    are relative to it (POSIX separators), listed in the recipe's `paths_relative_to_work_dir`.

    `ValueError` naming the field for an absolute path outside `work_dir` (the build did not make it, so its
    command cannot remake it).

    >>> portable_recipe({"model": {"image_tokenizer_path": "/runs/u/image_tokenizer/model", "num_tokens": 8}}, "/runs/u")
    {'model': {'image_tokenizer_path': 'image_tokenizer/model', 'num_tokens': 8}, 'paths_relative_to_work_dir': ['model.image_tokenizer_path']}
    """
    recipe = copy.deepcopy(recipe)
    work_dir = Path(os.path.abspath(work_dir))
    relative = list(recipe.get(RELATIVE_PATHS_KEY, []))
    for key, value in recipe.get("model", {}).items():
        if not (key.endswith("_path") and is_absolute_local_path(value)):
            continue
        try:
            recipe["model"][key] = Path(os.path.abspath(os.path.expanduser(value))).relative_to(work_dir).as_posix()
        except ValueError:
            raise ValueError(f"Recipe field `model.{key}` ({value}) is outside the build's work folder {work_dir}; "
                             "a checkpoint must not carry that machine's paths.") from None  # fmt: skip
        relative.append(f"model.{key}")
    if relative:
        recipe[RELATIVE_PATHS_KEY] = sorted(set(relative))
    return recipe


__all__ = ["RECIPE_FILE", "RELATIVE_PATHS_KEY", "is_absolute_local_path", "portable_config", "portable_recipe", "recipe_work_dir"]
