"""Training recipes: JSON files naming data sizes, channel conditions and each stage's optimization settings."""

from __future__ import annotations

import json
from pathlib import Path

RECIPES_DIR = Path(__file__).parent / "recipes"
STAGES = ("pretrain_vision", "pretrain_audio", "pretrain_text", "align", "task")  # TokCom's (the default family)
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


def validate_recipe(recipe: dict) -> None:
    """Raise `ValueError` naming the first missing or out-of-range field: the engine's common keys here, the
    family's own keys through its `FamilyStages.validate_stage` / `validate_data` (`recipe["family"]`, default
    `"tokcom"`)."""
    from tokcom.training.engine import family_stages  # lazy: the engine imports torch and accelerate

    if not isinstance(recipe, dict) or not isinstance(recipe.get("stages"), dict):
        raise ValueError("Recipe field `stages` (a dict of stage name -> settings) is missing.")
    stages_class = family_stages(recipe)
    for stage, settings in recipe["stages"].items():
        if stage not in stages_class.stages:
            raise ValueError(f"Recipe stage `{stage}` is unknown; stages are {stages_class.stages}.")
        for key in REQUIRED_STAGE_KEYS:
            if key not in settings:
                raise ValueError(f"Recipe field `stages.{stage}.{key}` is missing.")
        if int(settings["steps"]) < 0 or int(settings["batch_size"]) < 1 or float(settings["learning_rate"]) <= 0:
            raise ValueError(f"Recipe `stages.{stage}` needs steps >= 0, batch_size >= 1, learning_rate > 0.")
        stages_class.validate_stage(stage, settings)
    stages_class.validate_data(recipe.get("data", {}))
    low, high = recipe.get("channel", {}).get("snr_db_range", [0.0, 0.0])
    if not low <= high:
        raise ValueError(f"Recipe field `channel.snr_db_range` must be [low, high] with low <= high, got {[low, high]}.")


__all__ = ["RECIPES_DIR", "STAGES", "load_recipe", "validate_recipe"]
