"""The errors polyexp raises for bad input, bad plugins and failed runs.

Each message alone tells the user what to change. The command shows it alone, in one line, with no
traceback (``HYDRA_FULL_ERROR=1`` shows the traceback).
"""

from __future__ import annotations

import errno
import sqlite3


class PolyexpError(Exception):
    """An error whose message alone tells the user what to change."""


class ConfigError(PolyexpError, ValueError):
    """A config value that is not allowed: the message names the field and what is allowed."""

    @classmethod
    def field(cls, name: str, value: object, allowed: str) -> ConfigError:
        return cls(f"{name}={_show(value)} is not allowed: {allowed}")


class PluginError(PolyexpError):
    """A plugin that raised, or returned something the framework cannot use."""


class TrainingDiverged(PolyexpError):
    """The training loss became NaN or infinite; ``history`` holds the curves scored up to ``epoch``."""

    def __init__(
        self, epoch: int, loss: float, seed: int, history: dict | None = None, curve_epochs: object = ()
    ) -> None:
        super().__init__(
            f"training diverged at epoch {epoch} (seed {seed}): the training loss is {loss}. "
            "Lower optimizer.learning_rate or change the optimizer."
        )
        self.epoch = epoch
        self.seed = seed
        self.history = history or {}
        self.curve_epochs = curve_epochs  # the epochs of the history's columns


class TrackingError(PolyexpError):
    """The MLflow tracking store cannot be reached, read or written."""


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (its type's name when it has none), at most 500 characters."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]


def full_disk(exc: BaseException | None, store: str | None = None, file: str | None = None) -> str | None:
    """One line, if a full disk (or quota) is what ``exc`` or an error in its chain says, else None.

    SQLite's "database or disk is full" names the tracking ``store``; an OSError (ENOSPC, EDQUOT) names
    its file (``polyexp.core.files.naming`` gives one to a failed write), else ``file``. An interruption
    (Ctrl-C, SIGTERM) is never a full disk, whatever it interrupted.
    """
    seen: set[int] = set()
    while isinstance(exc, Exception) and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, sqlite3.Error) and "database or disk is full" in str(exc):
            return (f"the disk is full: cannot write to the MLflow tracking store{f' {store}' if store else ''} "
                    "(sqlite: database or disk is full); free space or set tracking.uri / MLFLOW_TRACKING_URI "
                    "elsewhere")
        if isinstance(exc, OSError) and exc.errno in _FULL:
            return f"the disk is full: cannot write {exc.filename or file or 'a file'} ({exc.strerror})"
        exc = exc.__cause__ or exc.__context__
    return None


_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}  # EDQUOT: over the user's quota


def _show(value: object) -> str:
    return repr(value) if isinstance(value, str) else str(value)
