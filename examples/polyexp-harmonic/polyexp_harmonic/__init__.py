"""Harmonic weights: member i (1 = the latest checkpoint) weighs 1 / i**power.

Installed, this package adds ``averaging=harmonic`` to polyexp through its entry point::

    pip install ./examples/polyexp-harmonic
    python -m polyexp averaging=harmonic averaging.power=2
"""

from typing import Annotated

from polyexp.core.registry import Gt


def harmonic(n: int, *, power: Annotated[float, Gt(0)] = 1.0) -> list[float]:
    """Member i (1 = the latest) weighs 1 / i**power."""
    return [1.0 / i**power for i in range(1, n + 1)]
