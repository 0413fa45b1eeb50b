"""Where the embedded default checkpoints live (shipped inside the package, Hub format)."""

from __future__ import annotations

from pathlib import Path

CHECKPOINTS_DIR = Path(__file__).parent / "checkpoints"
DEFAULT_AVQA_MODEL = "tokcom-avqa-tiny"


def default_model_path(name: str = DEFAULT_AVQA_MODEL) -> Path:
    """Folder of an embedded default checkpoint; `FileNotFoundError` if this install does not ship it."""
    path = CHECKPOINTS_DIR / name
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"Embedded default {name!r} not found at {path}. Train it with "
            f"`tokcom train --recipe tokcom_avqa_tiny --output-dir DIR` and pass `--model DIR/model`."
        )
    return path


__all__ = ["CHECKPOINTS_DIR", "DEFAULT_AVQA_MODEL", "default_model_path"]
