"""Learning-rate schedules (``schedule=...``): the optimizer's rate at every optimizer step.

A schedule plugin takes the step numbers ``t = 0, 1, ..., T-1`` (the steps done before each
optimizer step; ``T`` = epochs x steps per epoch) and the number of steps per epoch, and returns
each step's *factor*: the rate of step ``t`` is ``factor(t) * learning_rate``, the optimizer's
``learning_rate`` being the schedule's peak (or starting) rate. Factors are computed once, in
NumPy, and looked up inside the compiled loop; the seeds trained together share them::

    from polyexp.core.schedules import SCHEDULES, factors

    schedule = SCHEDULES["cosine"].bind({"warmup_epochs": 5, "final_factor": 0.01})
    factors(schedule, epochs=100, steps_per_epoch=4)    # (400,): 0.0, 0.05, ..., 1.0, ..., ~0.01

The math lives in the plain functions below (each with its formula); the plugins turn their
fields, counted in epochs, into steps.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np

from polyexp.core.errors import ConfigError, PluginError
from polyexp.core.registry import BoundPlugin, Ge, Gt, Le, Registry

SCHEDULES = Registry("schedule", call_args=("steps", "steps_per_epoch"))

Epochs = Annotated[int, Ge(1)]
Factor = Annotated[float, Ge(0)]


def cosine_factors(t: np.ndarray, total: int, warmup: int, final: float) -> np.ndarray:
    """Linear warm-up, then half a cosine down to ``final`` (Keras' ``CosineDecay`` with ``alpha=final``)::

        f(t) = t / warmup                                              for t < warmup
        f(t) = final + (1 - final) * (1 + cos(pi * (t - warmup) / (total - warmup))) / 2   after

    ``cosine_factors(np.arange(4), 4, 0, 0.0)`` is ``[1, 0.854, 0.5, 0.146]``.
    """
    decay = (1 + np.cos(np.pi * np.clip(t - warmup, 0, None) / max(total - warmup, 1))) / 2
    return np.where(t < warmup, t / max(warmup, 1), final + (1 - final) * decay)


def step_factors(t: np.ndarray, every: int, factor: float) -> np.ndarray:
    """Multiplied by ``factor`` every ``every`` steps: ``f(t) = factor ** floor(t / every)``.

    ``step_factors(np.arange(4), 2, 0.1)`` is ``[1, 1, 0.1, 0.1]``.
    """
    return factor ** np.floor_divide(t, every).astype(np.float64)


def cyclic_factors(t: np.ndarray, cycle: int, low: float) -> np.ndarray:
    """SWA's cyclical rate (Izmailov et al. 2018, eq. 2), linear from 1 down to ``low`` in each cycle::

        f(t) = (1 - s) + s * low,   s = (t mod cycle + 1) / cycle

    so the last step of every cycle runs at ``low``, where SWA takes its checkpoint.
    ``cyclic_factors(np.arange(4), 2, 0.0)`` is ``[0.5, 0, 0.5, 0]``.
    """
    s = (np.mod(t, cycle) + 1) / cycle
    return (1 - s) + s * low


def swa_factors(t: np.ndarray, start: int, anneal: int, swa: float, strategy: str) -> np.ndarray:
    """The rate until ``start``, then annealed to ``swa`` over ``anneal`` steps and held (torch's ``SWALR``)::

        f(t) = 1 - a(u) + a(u) * swa,   u = clip((t - start) / anneal, 0, 1)
        a(u) = (1 - cos(pi * u)) / 2 (strategy "cos")  or  u (strategy "linear")

    torch steps ``SWALR`` once an epoch; here ``u`` moves every step. With ``anneal`` 0 the rate
    jumps to ``swa`` at ``start``. ``swa_factors(np.arange(4), 1, 2, 0.5, "linear")`` is ``[1, 1, 0.75, 0.5]``.
    """
    u = np.clip((t - start) / anneal, 0, 1) if anneal else (t >= start).astype(np.float64)
    a = (1 - np.cos(np.pi * u)) / 2 if strategy == "cos" else u
    return 1 - a + a * swa


def wsd_factors(t: np.ndarray, total: int, warmup: int, decay: int, shape: str, final: float) -> np.ndarray:
    """Warmup-stable-decay (Hägele et al. 2024; MiniCPM 2024): linear warm-up, the full rate, then a
    decay over the last ``decay`` steps to ``final``::

        f(t) = t / warmup                          for t < warmup
        f(t) = 1                                   until the decay starts at s = total - decay
        f(t) = final + (1 - final) * g(p),  p = (t - s) / decay,   for t >= s
        g(p) = 1 - p (linear),  (1 + cos(pi p)) / 2 (cosine),  1 - sqrt(p) (1-sqrt)

    ``p`` counts from 0 at the decay's first step, as ``cosine_factors`` does (and Hugging Face's
    ``get_wsd_schedule``), so the last step runs just above ``final``.
    ``wsd_factors(np.arange(6), 6, 1, 2, "linear", 0.0)`` is ``[0, 1, 1, 1, 1, 0.5]``.
    """
    p = np.clip((t - (total - decay)) / max(decay, 1), 0, 1)
    g = {"linear": 1 - p, "cosine": (1 + np.cos(np.pi * p)) / 2, "1-sqrt": 1 - np.sqrt(p)}[shape]
    return np.where(t < warmup, t / max(warmup, 1), np.where(t < total - decay, 1.0, final + (1 - final) * g))


@SCHEDULES.register
def constant(steps: np.ndarray, steps_per_epoch: int) -> np.ndarray:
    """The optimizer's learning_rate at every step (the seed's)."""
    return np.ones(len(steps))


@SCHEDULES.register
def cosine(
    steps: np.ndarray, steps_per_epoch: int, *, warmup_epochs: Annotated[int, Ge(0)] = 0,
    final_factor: Annotated[float, Ge(0), Le(1)] = 0.0,
) -> np.ndarray:
    """Linear warm-up from 0 over warmup_epochs, then cosine decay to final_factor x learning_rate at the end."""
    return cosine_factors(steps, len(steps), warmup_epochs * steps_per_epoch, final_factor)


@SCHEDULES.register
def step(
    steps: np.ndarray, steps_per_epoch: int, *, every_epochs: Epochs = 100, factor: Annotated[float, Gt(0)] = 0.1,
) -> np.ndarray:
    """The rate multiplied by factor every every_epochs epochs."""
    return step_factors(steps, every_epochs * steps_per_epoch, factor)


@SCHEDULES.register
def cyclic(
    steps: np.ndarray, steps_per_epoch: int, *, cycle_epochs: Epochs = 1, low_factor: Factor = 0.01,
) -> np.ndarray:
    """SWA's cyclical rate: linear from learning_rate down to low_factor x learning_rate over each cycle."""
    return cyclic_factors(steps, cycle_epochs * steps_per_epoch, low_factor)


@SCHEDULES.register
def swa(
    steps: np.ndarray, steps_per_epoch: int, *, start_epoch: Annotated[int, Ge(0)] = 400,
    swa_factor: Factor = 0.5, anneal_epochs: Annotated[int, Ge(0)] = 10,
    anneal: Literal["cos", "linear"] = "cos",
) -> np.ndarray:
    """learning_rate until start_epoch, then annealed to swa_factor x learning_rate and held (torch's SWALR)."""
    return swa_factors(steps, start_epoch * steps_per_epoch, anneal_epochs * steps_per_epoch, swa_factor, anneal)


@SCHEDULES.register
def wsd(
    steps: np.ndarray, steps_per_epoch: int, *, warmup_epochs: Annotated[int, Ge(0)] = 0,
    decay_fraction: Annotated[float, Gt(0), Le(1)] = 0.2,
    decay_shape: Literal["linear", "cosine", "1-sqrt"] = "1-sqrt",
    final_factor: Annotated[float, Ge(0), Le(1)] = 0.0,
) -> np.ndarray:
    """Warmup-stable-decay: warm-up over warmup_epochs, learning_rate held, then decayed to final_factor x
    learning_rate over the last decay_fraction of the steps (linear, cosine or 1-sqrt)."""
    total = len(steps)
    decay = max(1, round(decay_fraction * total))
    warmup = warmup_epochs * steps_per_epoch
    if warmup + decay > total:
        raise ConfigError(
            f"schedule.warmup_epochs={warmup_epochs} and schedule.decay_fraction={decay_fraction} leave no room: "
            f"warm-up ({warmup} steps) and decay ({decay} steps) must fit in the {total} steps of training"
        )
    return wsd_factors(steps, total, warmup, decay, decay_shape, final_factor)


def factors(schedule: BoundPlugin, epochs: int, steps_per_epoch: int) -> np.ndarray:
    """The schedule's factor at each of the ``epochs * steps_per_epoch`` steps, checked: finite and >= 0."""
    total = epochs * steps_per_epoch
    values = np.asarray(schedule(np.arange(total), steps_per_epoch), dtype=np.float64)
    if values.shape != (total,):
        raise PluginError(f"{schedule.label} returned shape {values.shape}, not one factor per step ({total},)")
    bad = np.flatnonzero(~(values >= 0))  # negative or NaN
    if bad.size:
        t = int(bad[0])
        raise ConfigError(
            f"schedule={schedule.name} gives the rate factor {values[t]:g} at step {t} (epoch "
            f"{t // steps_per_epoch + 1}): a learning rate must be >= 0; change the schedule's fields"
        )
    return values


def batches_per_epoch(rows: int, batch_size: int) -> int:
    """The optimizer steps of one epoch: one per batch, the last one smaller."""
    return math.ceil(rows / batch_size)
