"""A fresh virtual environment holding only chosen distributions (and their requirements) of this one.

Used to prove that exported Hub folders load with `trust_remote_code=True` where `tokcom` is not installed.
Distributions are symlinked from the running interpreter's site-packages (no network, about a second).
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def requirement_closure(roots: list[str]) -> set[str]:
    """Canonical names of `roots` and, recursively, their non-extra requirements installed here."""
    seen, todo = set(), [canonicalize_name(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        dist = metadata.distribution(name)
        seen.add(name)
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            try:
                metadata.distribution(requirement.name)
            except metadata.PackageNotFoundError:
                continue  # optional on this platform and not installed
            todo.append(canonicalize_name(requirement.name))
    return seen


def build_isolated_env(target: Path, roots: list[str], newest: tuple[str, ...] = ()) -> Path:
    """Create a venv at `target` whose site-packages links only `requirement_closure(roots)`; returns its python.

    Distributions named in `newest` are not linked but installed from PyPI at their newest release, without
    their dependencies (those are linked from here), e.g. `newest=("transformers",)` to check that exported code
    works with the newest transformers. Raises `RuntimeError` when pip cannot install them (no network).
    """
    newest_names = {canonicalize_name(name) for name in newest}
    venv.EnvBuilder(with_pip=bool(newest), symlinks=True).create(target)
    python = target / "bin" / "python"
    site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    here = Path(sysconfig.get_paths()["purelib"])
    for name in sorted(requirement_closure(roots) - newest_names):
        dist = metadata.distribution(name)
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            source, link = here / top, site / top
            if source.exists() and not link.exists():
                link.symlink_to(source)
    if newest:
        # nothing of `newest` is linked, so pip never uninstalls through a link into this environment
        command = [str(python), "-m", "pip", "install", "-q", "--no-deps", "--upgrade", *newest]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise RuntimeError(f"pip could not install {list(newest)} from PyPI: {result.stderr[-1000:]}")
    return python


def installed_version(python: Path, distribution: str) -> str:
    """The version of `distribution` that `python` imports."""
    code = f"from importlib.metadata import version; print(version({distribution!r}))"
    return subprocess.check_output([str(python), "-c", code], text=True).strip()


if __name__ == "__main__":  # python tests/isolated_env.py DIR torch transformers ...
    print(build_isolated_env(Path(sys.argv[1]), sys.argv[2:]))
