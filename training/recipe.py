"""Training recipes: JSON files naming data sizes, channel conditions and each stage's optimization settings."""

from __future__ import annotations

import json
from pathlib import Path

RECIPES_DIR = Path(__file__).parent / "recipes"
STAGES = ("pretrain_vision", "pretrain_audio", "pretrain_text", "align", "task")
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
    """Raise `ValueError` naming the first missing or out-of-range field."""
    if "stages" not in recipe or not isinstance(recipe["stages"], dict):
        raise ValueError("Recipe field `stages` (a dict of stage name -> settings) is missing.")
    for stage, settings in recipe["stages"].items():
        if stage not in STAGES:
            raise ValueError(f"Recipe stage `{stage}` is unknown; stages are {STAGES}.")
        for key in REQUIRED_STAGE_KEYS:
            if key not in settings:
                raise ValueError(f"Recipe field `stages.{stage}.{key}` is missing.")
        if int(settings["steps"]) < 0 or int(settings["batch_size"]) < 1 or float(settings["learning_rate"]) <= 0:
            raise ValueError(f"Recipe `stages.{stage}` needs steps >= 0, batch_size >= 1, learning_rate > 0.")
        if "transceiver_learning_rate" in settings and not float(settings["transceiver_learning_rate"]) >= 0:
            raise ValueError(
                f"Recipe field `stages.{stage}.transceiver_learning_rate` must be >= 0 (0 freezes F_m and G_m), "
                f"got {settings['transceiver_learning_rate']!r}."
            )
        if "full_length_fraction" in settings and not 0.0 <= float(settings["full_length_fraction"]) <= 1.0:
            raise ValueError(
                f"Recipe field `stages.{stage}.full_length_fraction` must be in [0, 1] (the share of batches sent at "
                f"the maximum token lengths), got {settings['full_length_fraction']!r}."
            )
    data = recipe.get("data", {})
    for key in ("train_scenes", "validation_scenes", "test_scenes"):
        if key in data and int(data[key]) < 1:
            raise ValueError(f"Recipe field `data.{key}` must be >= 1, got {data[key]}.")
    if "caption_style" in data:
        from tokcom.training.data.synthetic_avqa import caption_writer  # lazy: it imports `datasets`

        caption_writer(data["caption_style"])
    low, high = recipe.get("channel", {}).get("snr_db_range", [0.0, 0.0])
    if not low <= high:
        raise ValueError(f"Recipe field `channel.snr_db_range` must be [low, high] with low <= high, got {[low, high]}.")


__all__ = ["RECIPES_DIR", "STAGES", "load_recipe", "validate_recipe"]
