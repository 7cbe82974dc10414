"""Checkpoint windows (``window=...``): which late epochs are kept for averaging.

A window plugin takes the number of ``epochs`` and returns the epochs of its members, member 1
(the latest) first. Epochs count from 1: epoch 500 is the model after 500 epochs (the seed's
``model_499.h5``). A window by optimizer steps (LAWA's and SWA's unit) returns a :class:`StepWindow`
instead, whose steps are known once the data is (steps count from 1 as well)::

    from polyexp.core.window import WINDOWS

    WINDOWS["last"].bind({"size": 3})(500)                   # [500, 499, 498]
    WINDOWS["strided"].bind({"size": 3, "stride": 10})(500)  # [500, 490, 480]
    WINDOWS["steps"].bind({"size": 3, "every": 2})(500).members(2000)   # [2000, 1998, 1996]
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from polyexp.core.errors import ConfigError, PluginError
from polyexp.core.registry import Ge, Registry

WINDOWS = Registry("window", call_args=("epochs",))

Size = Annotated[int, Ge(1)]
Stride = Annotated[int, Ge(1)]


@WINDOWS.register
def last(epochs: int, *, size: Size = 10, stride: Stride = 1) -> list[int]:
    """The last `size` epochs, `stride` apart (the seed: the last 10)."""
    return spaced(epochs, size, stride)


@WINDOWS.register
def strided(epochs: int, *, size: Size = 10, stride: Stride = 10) -> list[int]:
    """Every `stride`-th epoch, back from the last: `size` of them."""
    return spaced(epochs, size, stride)


@dataclass(frozen=True)
class StepWindow:
    """The weights after every ``every``-th optimizer step, back from the last: ``size`` of them."""

    every: int
    size: int

    def __len__(self) -> int:
        return self.size

    def members(self, total_steps: int) -> list[int]:
        """The members' steps, the latest first; ConfigError if they do not fit in ``total_steps``."""
        span = (self.size - 1) * self.every + 1
        if span > total_steps:
            raise ConfigError(
                f"window.size={self.size} with window.every={self.every} spans {span} optimizer steps, more "
                f"than the {total_steps} steps of training: lower window.size or window.every, or raise epochs"
            )
        return [total_steps - i * self.every for i in range(self.size)]


@WINDOWS.register
def steps(epochs: int, *, size: Size = 10, every: Annotated[int, Ge(1)] = 1) -> StepWindow:
    """The weights every `every` optimizer steps, back from the last step: `size` of them (LAWA's, SWA's unit)."""
    return StepWindow(every, size)


def spaced(epochs: int, size: int, stride: int) -> list[int]:
    """``size`` epochs ``stride`` apart, the last epoch first."""
    span = (size - 1) * stride + 1
    if span > epochs:
        raise ConfigError(
            f"window.size={size} with window.stride={stride} spans {span} epochs, "
            f"more than epochs={epochs}: lower window.size or window.stride, or raise epochs"
        )
    return [epochs - i * stride for i in range(size)]


def check_window(members: Sequence[int], epochs: int, label: str) -> list[int]:
    """A window plugin's epochs, checked: distinct epochs in 1..epochs, the latest first."""
    try:
        members = [operator.index(e) for e in members]
    except TypeError as exc:
        raise PluginError(f"{label} returned something that is not a list of whole epochs: {exc}") from exc
    if not members:
        raise PluginError(f"{label} returned no epochs")
    if any(not 1 <= e <= epochs for e in members):
        raise PluginError(f"{label} returned epochs outside 1..{epochs}: {members}")
    if any(a <= b for a, b in itertools.pairwise(members)):
        raise PluginError(f"{label} must return distinct epochs, the latest first: {members}")
    return members
