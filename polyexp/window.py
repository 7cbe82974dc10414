"""The checkpoint window (``window=...``): which late epochs are kept for averaging.

The window holds ``size`` checkpoints, ``stride`` epochs apart, the last one being the final
epoch. Epochs count from 1 (epoch 500 is the model after 500 epochs; the seed's ``model_499.h5``)::

    window_epochs(epochs=500, size=10, stride=1)   # [500, 499, ..., 491], member 1 first
"""

from __future__ import annotations

from dataclasses import dataclass

from polyexp.errors import ConfigError


@dataclass
class Window:
    size: int = 10
    stride: int = 1


PRESETS = {
    "last": Window(size=10, stride=1),  # the seed: the last 10 epochs
    "strided": Window(size=10, stride=10),  # every 10th of the last 100 epochs
}


def window_epochs(epochs: int, size: int, stride: int) -> list[int]:
    """The epochs of the window's members, newest (member 1) first."""
    if size < 1:
        raise ConfigError.field("window.size", size, "it must be >= 1")
    if stride < 1:
        raise ConfigError.field("window.stride", stride, "it must be >= 1")
    span = (size - 1) * stride + 1
    if span > epochs:
        raise ConfigError(
            f"window.size={size} with window.stride={stride} spans {span} epochs, "
            f"more than epochs={epochs}: lower window.size or window.stride, or raise epochs"
        )
    return [epochs - i * stride for i in range(size)]
