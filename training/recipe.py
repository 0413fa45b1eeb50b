"""Training recipes: JSON files naming data sizes, channel conditions and each stage's optimization settings."""

from __future__ import annotations

import json
from pathlib import Path

from tokcom.portable import RELATIVE_PATHS_KEY

RECIPES_DIR = Path(__file__).parent / "recipes"
REQUIRED_STAGE_KEYS = ("steps", "batch_size", "learning_rate")


def load_recipe(path_or_name: str | Path) -> dict:
    """Read a recipe from a path, or by name from `training/recipes/` (`"tokcom_avqa_tiny"`), and validate it.

    >>> load_recipe("tokcom_avqa_tiny")["stages"]["task"]["batch_size"] > 0
    True
    """
    path = Path(path_or_name)
    if not path.exists():
        path = RECIPES_DIR / f"{path_or_name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"Recipe not found: {path_or_name} (nor {path}).")
    recipe = json.loads(path.read_text(encoding="utf-8"))
    validate_recipe(recipe)
    return recipe


# RELATIVE_PATHS_KEY: the `model.*_path` fields that an installed checkpoint's recipe gives relative to its build's
# --work-dir (`tokcom.portable.portable_recipe`)
TOP_LEVEL_KEYS = ("name", "family", "description", "seed", "training_seed", "num_threads", "data", "model", "channel",
                  "stages", RELATIVE_PATHS_KEY)  # fmt: skip
CHANNEL_KEYS = ("snr_db_range", "channel_types")
COMMON_STAGE_KEYS = (*REQUIRED_STAGE_KEYS, "weight_decay", "warmup_steps", "max_grad_norm", "checkpoint_every")


def check_keys(given, allowed, where: str) -> None:
    """`ValueError` for the first key of `given` not in `allowed`, naming the nearest allowed key.

    >>> check_keys({"lerning_rate": 1}, ("learning_rate", "steps"), "stages.task")
    Traceback (most recent call last):
    ...
    ValueError: Recipe field `stages.task.lerning_rate` is unknown; did you mean `learning_rate`? Allowed: learning_rate, steps.
    """
    import difflib

    if not isinstance(given, dict):
        raise ValueError(f"Recipe field `{where}` must be a dict, got {type(given).__name__}.")
    for key in given:
        if key not in allowed:
            near = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            hint = f"did you mean `{near[0]}`? " if near else ""
            prefix = f"{where}." if where else ""
            raise ValueError(f"Recipe field `{prefix}{key}` is unknown; {hint}Allowed: {', '.join(allowed)}.")


def _number(value, where: str, low: float, integer: bool = False, strict: bool = False) -> None:
    import math
    import numbers

    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value) or value < low or (strict and value == low):
        what = "an integer" if integer else "a finite number"
        raise ValueError(f"Recipe field `{where}` must be {what} {'>' if strict else '>='} {low:g}, got {value!r}.")


def validate_recipe(recipe: dict) -> None:
    """Raise `ValueError` naming the first unknown, missing or out-of-range field, before anything trains: the
    engine's common keys here, the family's own keys through its `FamilyStages.validate_stage` / `validate_data` /
    `model_keys` (`recipe["family"]`, default `"tokcom"`). Unknown keys name the nearest valid one."""
    from tokcom.training.engine import family_stages  # lazy: the engine imports torch and accelerate

    if not isinstance(recipe, dict) or not isinstance(recipe.get("stages"), dict):
        raise ValueError("Recipe field `stages` (a dict of stage name -> settings) is missing.")
    check_keys(recipe, TOP_LEVEL_KEYS, "")
    stages_class = family_stages(recipe)
    for key in ("seed", "training_seed"):
        if key in recipe:
            _number(recipe[key], key, 0, integer=True)
    if "num_threads" in recipe:
        _number(recipe["num_threads"], "num_threads", 1, integer=True)
    for stage, settings in recipe["stages"].items():
        if stage not in stages_class.stages:
            raise ValueError(f"Recipe stage `{stage}` is unknown; stages are {stages_class.stages}.")
        check_keys(settings, (*COMMON_STAGE_KEYS, *stages_class.stage_keys), f"stages.{stage}")
        for key in REQUIRED_STAGE_KEYS:
            if key not in settings:
                raise ValueError(f"Recipe field `stages.{stage}.{key}` is missing.")
        _number(settings["steps"], f"stages.{stage}.steps", 0, integer=True)
        _number(settings["batch_size"], f"stages.{stage}.batch_size", 1, integer=True)
        _number(settings["learning_rate"], f"stages.{stage}.learning_rate", 0, strict=True)
        for key, low, integer, strict in (("weight_decay", 0, False, False), ("warmup_steps", 0, True, False),
                                          ("max_grad_norm", 0, False, True), ("checkpoint_every", 1, True, False)):  # fmt: skip
            if key in settings:
                _number(settings[key], f"stages.{stage}.{key}", low, integer, strict)
        stages_class.validate_stage(stage, settings)
    check_keys(recipe.get("data", {}), stages_class.data_keys, "data")
    stages_class.validate_data(recipe.get("data", {}))
    check_keys(recipe.get("model", {}), stages_class.model_keys(), "model")
    relative = recipe.get(RELATIVE_PATHS_KEY, [])
    if not isinstance(relative, list) or any(field not in {f"model.{k}" for k in recipe.get("model", {})} for field in relative):
        raise ValueError(f"Recipe field `{RELATIVE_PATHS_KEY}` must list fields of `model`, got {relative!r}.")
    channel = recipe.get("channel", {})
    check_keys(channel, CHANNEL_KEYS, "channel")
    snr_range = channel.get("snr_db_range", [0.0, 0.0])
    if not (isinstance(snr_range, (list, tuple)) and len(snr_range) == 2 and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) for x in snr_range
    )):
        raise ValueError(f"Recipe field `channel.snr_db_range` must be [low, high] in dB, got {snr_range!r}.")
    from tokcom.modeling.link_budget import MIN_SNR_DB

    low, high = snr_range
    if not MIN_SNR_DB <= low <= high <= 300:
        raise ValueError(
            f"Recipe field `channel.snr_db_range` must be [low, high] with {MIN_SNR_DB:g} <= low <= high <= 300 dB, "
            f"got {[low, high]}."
        )
    from tokcom.modeling.links import LINK_CHANNEL_TYPES

    channel_types = channel.get("channel_types", ["awgn"])
    if not isinstance(channel_types, (list, tuple)) or not channel_types or any(c not in LINK_CHANNEL_TYPES for c in channel_types):
        raise ValueError(f"Recipe field `channel.channel_types` must be a non-empty list among {LINK_CHANNEL_TYPES}, got {channel_types!r}.")


__all__ = ["RECIPES_DIR", "check_keys", "load_recipe", "validate_recipe"]
