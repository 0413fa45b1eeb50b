"""Write folders all at once: a failure leaves neither a half-written folder nor a staging folder behind."""

from __future__ import annotations

import errno
import os
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


def check_writable_folder(folder: str | Path, argument: str = "output_dir") -> Path:
    """Create `folder` if needed and write and remove a probe file there, before any work; `ValueError` naming
    `argument` and the folder when that fails (read-only file system, no permission, full disk)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".tokcom-write-check-") as probe:
            probe.write(b"x" * 4096)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as error:
        raise ValueError(f"`{argument}` {folder} cannot be written: {describe_os_error(error)}.") from None
    return folder


def describe_os_error(error: BaseException) -> str:
    """One line for a failed write: what the system said and, for a full disk, what to do."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC or "No space left" in str(error):
        return "no space left on the device (free some, or choose a folder on another disk)"
    if isinstance(error, OSError) and error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"{error.strerror.lower()} (choose a folder you can write to)"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return (str(error).splitlines() or [type(error).__name__])[0]


__all__ = ["check_writable_folder", "describe_os_error", "staged_directory"]
