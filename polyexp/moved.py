"""Modules that moved, still importable from where they were, with a warning naming the new import.

The floors (``polyexp.core``, ``polyexp.run``, ``polyexp.sweep``) moved every module; plugins written
before them import ``polyexp.models``, ``polyexp.registry`` and the like. A finder on
``sys.meta_path`` answers those names with the module at its new place (the same module object) and
warns once, pointing at the import in the plugin's own file::

    from polyexp.models import MODELS
    # my_plugin.py:1: FutureWarning: polyexp.models moved to polyexp.core.models; from polyexp import MODELS
    # (the old path goes in a coming release)
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

MOVED = {
    f"polyexp.{name}": f"polyexp.core.{name}"
    for name in ("averaging", "data", "errors", "metrics", "models", "optimizers", "registry", "shuffle",
                 "statistics", "training", "trajectory", "window", "evaluation", "identity", "files")
} | {"polyexp.config": "polyexp.core.settings"}


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds each old name of :data:`MOVED`; loading it returns the module at its new place."""

    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        _warn(spec.name, MOVED[spec.name])
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module ran at its new place."""


def _warn(old: str, new: str) -> None:
    import polyexp

    public = sorted(name for name, module in polyexp.PUBLIC.items() if module == new)
    instead = f"from polyexp import {', '.join(public)}" if public else f"import {new}"
    frame = sys._getframe(1)  # the plugin's own import, past importlib's frames and this module's
    while frame.f_back is not None and (frame.f_code.co_filename.startswith("<frozen")
                                        or frame.f_code.co_filename == __file__):
        frame = frame.f_back
    warnings.warn_explicit(f"{old} moved to {new}; {instead} (the old path goes in a coming release)",
                           FutureWarning, frame.f_code.co_filename, frame.f_lineno,
                           module=frame.f_globals.get("__name__"))


def install() -> None:
    """Put the finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(MovedModules())
