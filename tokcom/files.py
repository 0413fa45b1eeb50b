"""Write folders all at once: a failure leaves neither a half-written folder nor a staging folder behind."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def staged_directory(output_dir: str | Path, overwrite: bool = False, argument: str = "output_dir") -> Iterator[Path]:
    """Yield an empty staging folder beside `output_dir`; on success it replaces `output_dir`, on error it is removed.

    `FileExistsError` (naming `argument`) when `output_dir` exists and `overwrite` is false.

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "repo"
    >>> with staged_directory(target) as staging:
    ...     _ = (staging / "config.json").write_text("{}")
    >>> sorted(p.name for p in target.iterdir())
    ['config.json']
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and not overwrite:
        raise FileExistsError(f"`{argument}` {output_dir} already exists; pass --overwrite to replace it.")
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", dir=output_dir.parent))
    try:
        yield staging
        staging.chmod(0o755)  # mkdtemp creates 0700
        if output_dir.exists():
            shutil.rmtree(output_dir)
        staging.rename(output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


__all__ = ["staged_directory"]
