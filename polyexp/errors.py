"""The errors polyexp raises for bad input, bad plugins and failed runs.

Each is a ``CompactHydraException``: Hydra prints its one-line message without a traceback
(``HYDRA_FULL_ERROR=1`` shows the traceback).
"""

from __future__ import annotations

from hydra.errors import CompactHydraException


class PolyexpError(CompactHydraException):
    """An error whose message alone tells the user what to change."""


class ConfigError(PolyexpError, ValueError):
    """A config value that is not allowed: the message names the field and what is allowed."""

    @classmethod
    def field(cls, name: str, value: object, allowed: str) -> ConfigError:
        return cls(f"{name}={_show(value)} is not allowed: {allowed}")


class PluginError(PolyexpError):
    """A plugin that raised, or returned something the framework cannot use."""


class TrainingDiverged(PolyexpError):
    """The training loss became NaN or infinite; ``history`` holds the curves up to ``epoch``."""

    def __init__(self, epoch: int, loss: float, history: dict | None = None) -> None:
        super().__init__(
            f"training diverged at epoch {epoch}: the training loss is {loss}. "
            "Lower optimizer.learning_rate or change the optimizer."
        )
        self.epoch = epoch
        self.history = history or {}


class TrackingError(PolyexpError):
    """The MLflow tracking store cannot be reached, read or written."""


def _show(value: object) -> str:
    return repr(value) if isinstance(value, str) else str(value)
