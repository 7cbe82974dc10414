"""Weighted averages of a window of checkpoints, and the averagings (``averaging=...``) that weigh them.

Member 1 is the latest checkpoint. An averaging takes ``n`` and returns ``n`` non-negative weights,
newest first; the framework checks and normalises them. The *average* for ``n`` is the model whose
every weight array is the weighted average of that array over the ``n`` latest checkpoints::

    import numpy as np
    from polyexp.core.averaging import AVERAGINGS, average, weight_matrix

    exp = AVERAGINGS["exp"].bind({"alpha": 2.0})
    matrix = weight_matrix(exp, 10)            # row n-1: the normalised weights of n members
    kernels = np.random.rand(10, 2, 25)        # one weight array of 10 checkpoints, newest first
    averaged = average([kernels], matrix[2])  # the model averaged over the 3 latest checkpoints

An averaging that *selects* takes a parameter named ``validation`` as well: a :class:`Validation`
holding what it may look at, the members' validation accuracies and a function that scores any
weights for them on the validation rows; it never sees a test row. ``greedy_soup`` is one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated

import numpy as np

from polyexp.core.errors import PluginError
from polyexp.core.registry import Affects, BoundPlugin, Gt, Registry

AVERAGINGS = Registry("averaging", call_args=("n",), context=("validation",), affects=Affects.SCORING)
WEIGHTINGS = AVERAGINGS  # its earlier name, which docs/plugins.md gave plugins to register with


@dataclass(frozen=True)
class Validation:
    """What a selecting averaging may look at, for one seed: validation rows only."""

    member_acc: np.ndarray  # (K,) each member's validation accuracy, member 1 first
    score: Callable[[Sequence[float]], float]  # validation accuracy of the average with these weights


@AVERAGINGS.register
def equal(n: int) -> list[float]:
    """Every member weighs 1/n (the seed's first strategy)."""
    return [1.0 / n for _ in range(1, n + 1)]


@AVERAGINGS.register
def linear(n: int) -> list[float]:
    """Linearly decreasing: the latest weighs 1, the oldest 1/n."""
    return [i / n for i in range(n, 0, -1)]


@AVERAGINGS.register
def exp(n: int, *, alpha: Annotated[float, Gt(0)] = 2.0) -> list[float]:
    """Exponentially decreasing: member i weighs exp(-i/alpha)."""
    return [math.exp(-i / alpha) for i in range(1, n + 1)]


@AVERAGINGS.register
def greedy_soup(n: int, validation: Validation) -> list[float]:
    """Greedy soup (Wortsman et al. 2022): members ranked by validation accuracy join the equal
    average only if validation accuracy does not drop.

    The best member starts the soup; each next one (by validation accuracy, the newer first on ties)
    stays in if the soup with it scores at least as well on the validation rows.
    """
    ranked = sorted(range(n), key=lambda i: -validation.member_acc[i])
    soup = [ranked[0]]
    best = validation.score(_members(soup, n))
    for candidate in ranked[1:]:
        score = validation.score(_members([*soup, candidate], n))
        if score >= best:
            soup.append(candidate)
            best = score
    return _members(soup, n)


def _members(chosen: Sequence[int], n: int) -> list[float]:
    return [1.0 if i in chosen else 0.0 for i in range(n)]


def member_weights(averaging: BoundPlugin, n: int, **context: object) -> np.ndarray:
    """The averaging's ``n`` weights, checked and normalised to sum to 1."""
    name = averaging.label
    returned = averaging(n, **context)
    try:
        raw = np.asarray(returned, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PluginError(f"{name} returned something that is not a list of numbers for n={n}: {exc}") from exc
    if raw.shape != (n,):
        got = raw.size if raw.ndim == 1 else f"an array of shape {raw.shape}"
        raise PluginError(f"{name} returned {got} weights for n={n}; it must return exactly n, newest first")
    if not np.all(np.isfinite(raw)):
        i = int(np.flatnonzero(~np.isfinite(raw))[0])
        raise PluginError(f"{name} returned a non-finite weight for n={n}: {raw[i]} for member {i + 1}")
    if np.any(raw < 0):
        i = int(np.flatnonzero(raw < 0)[0])
        raise PluginError(f"{name} returned a negative weight for n={n}: {raw[i]} for member {i + 1}")
    with np.errstate(over="ignore"):
        total = raw.sum()
    if total <= 0:
        raise PluginError(f"{name} returned only zero weights for n={n}; at least one must be positive")
    if not np.isfinite(total):  # [1e308] * n: scaled by the largest first, the sum fits
        raw = raw / raw.max()
        total = raw.sum()
    return raw / total


def weight_matrix(averaging: BoundPlugin, k: int, **context: object) -> np.ndarray:
    """A ``k x k`` matrix whose row ``n-1`` holds the normalised weights of the ``n`` latest members."""
    matrix = np.zeros((k, k))
    for n in range(1, k + 1):
        matrix[n - 1, :n] = member_weights(averaging, n, **context)
    return matrix


def average(checkpoints: Sequence[np.ndarray], weights: np.ndarray) -> list[np.ndarray]:
    """Average each weight array over the checkpoints (axis 0, newest first) with ``weights``.

    ``weights`` may be shorter than the window (only the latest members count), or a matrix of
    such rows, giving one averaged model per row.
    """
    weights = np.asarray(weights)
    n = weights.shape[-1]
    return [np.tensordot(weights, stacked[:n], axes=1).astype(stacked.dtype) for stacked in checkpoints]
