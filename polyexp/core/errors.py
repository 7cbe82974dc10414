"""The errors polyexp raises for bad input, bad plugins and failed runs.

Each message alone tells the user what to change. ``polyexp.task`` shows them at the command line as
Hydra shows its own: one line, no traceback (``HYDRA_FULL_ERROR=1`` shows the traceback).
"""

from __future__ import annotations


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


def _show(value: object) -> str:
    return repr(value) if isinstance(value, str) else str(value)
