"""Lazy package attributes (PEP 562): a package names what it exports and from which submodule, and imports the
submodule on first access, so importing the package (or one light submodule of it) imports nothing heavy.

>>> __getattr__, __dir__, __all__ = attach("tokcom", {"defaults": ("DEFAULT_AVQA_MODEL",)})
>>> __getattr__("DEFAULT_AVQA_MODEL"), __all__
('tokcom-avqa-tiny', ['DEFAULT_AVQA_MODEL'])
"""

from __future__ import annotations

import importlib
import sys


def attach(package: str, exports: dict[str, tuple[str, ...]], submodules: tuple[str, ...] = ()):
    """`(__getattr__, __dir__, __all__)` for `package`: `exports` maps a submodule (relative, dotted) to the names it
    provides; `submodules` are reachable as attributes too. A looked-up name is cached in the package's namespace."""
    module_of = {name: module for module, names in exports.items() for name in names}
    names = sorted(module_of) + [name for name in submodules if name not in module_of]

    def __getattr__(name: str):
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        if name not in module_of:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module_of[name]}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__():
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__, names


__all__ = ["attach"]
