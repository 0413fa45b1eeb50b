"""Where the embedded default checkpoints live (shipped inside the package, Hub format)."""

from __future__ import annotations

from pathlib import Path

CHECKPOINTS_DIR = Path(__file__).parent / "checkpoints"
DEFAULT_AVQA_MODEL = "tokcom-avqa-tiny"
BUILD_COMMANDS = {  # embedded default -> the one command that trains, evaluates and installs it
    "tokcom-avqa-tiny": "python -m tokcom.training.build_default --install",
    "taichi-tiny": "python -m tokcom.training.build_default_taichi --install",
    "unitocom-tiny": "python -m tokcom.training.build_default_unitocom --install",
}


def default_model_path(name: str = DEFAULT_AVQA_MODEL) -> Path:
    """Folder of an embedded default checkpoint; `FileNotFoundError` if this install does not ship it."""
    path = CHECKPOINTS_DIR / name
    if not (path / "config.json").is_file():
        build = BUILD_COMMANDS.get(name)
        how = f"Build and install it with `{build}`, or pass" if build else "Pass"
        raise FileNotFoundError(f"Embedded default {name!r} not found at {path}. {how} a checkpoint folder as `model=`.")
    return path


__all__ = ["BUILD_COMMANDS", "CHECKPOINTS_DIR", "DEFAULT_AVQA_MODEL", "default_model_path"]
