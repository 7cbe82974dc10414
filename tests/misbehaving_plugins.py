"""Plugins that break the contract, each in its own way: averagings, and a schedule below zero.

Imported by the CLI through ``POLYEXP_PLUGINS=misbehaving_plugins``, which registers them.
"""

from polyexp.core.averaging import AVERAGINGS
from polyexp.core.schedules import SCHEDULES


def too_many(n: int) -> list[float]:
    return [1.0] * (n + 1)


def negative(n: int) -> list[float]:
    return [1.0] * (n - 1) + [-0.5]


def nan_weight(n: int) -> list[float]:
    return [float("nan")] + [1.0] * (n - 1)


def inf_weight(n: int) -> list[float]:
    return [float("inf")] * n


def all_zero(n: int) -> list[float]:
    return [0.0] * n


def raises(n: int) -> list[float]:
    raise RuntimeError("boom")


def not_numbers(n: int) -> list[str]:
    return ["a"] * n


MISBEHAVING = [too_many, negative, nan_weight, inf_weight, all_zero, raises, not_numbers]

for plugin in MISBEHAVING:
    AVERAGINGS.register(plugin)


@SCHEDULES.register
def below_zero(steps, steps_per_epoch: int):
    """A linear decay that runs past zero after 1000 steps."""
    return 1 - steps / 1000
