"""Means over seeds with their confidence intervals, paired gains, and selection on validation.

Each seed is one independent repetition of the job, so a number's uncertainty is its spread over
seeds. For values ``v_1..v_S`` (one per seed) the 95% interval of their mean is Student's t interval

    mean ± t(0.975, S - 1) * sd / sqrt(S),   sd the sample standard deviation (ddof = 1),

and a comparison of two methods is the same interval over the per-seed differences (a paired
comparison: both methods saw the same seed). With one seed there is no interval (NaN)::

    estimate = mean_ci(accuracies)               # accuracies: (S, ...) -> mean, low, high per column
    gain = mean_ci(average_acc - last_acc)       # paired over seeds
    n = select(val_average_acc.mean(axis=0))     # the best n on validation (the first, on ties)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds and its confidence interval (NaN bounds with one seed)."""

    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray

    def __getitem__(self, index: int | slice) -> Estimate:
        return Estimate(self.mean[index], self.low[index], self.high[index])


def t_quantile(seeds: int, level: float = LEVEL) -> float:
    """Student's t quantile for a two-sided ``level`` interval of a mean over ``seeds`` values."""
    return float(stats.t.ppf(0.5 + level / 2, seeds - 1)) if seeds > 1 else float("nan")


def mean_ci(values: np.ndarray, level: float = LEVEL) -> Estimate:
    """The mean over seeds (axis 0) of ``values`` and its t interval, for every other index."""
    values = np.asarray(values, dtype=np.float64)
    seeds = values.shape[0]
    mean = values.mean(axis=0)
    if seeds < 2:
        nan = np.full_like(mean, np.nan)
        return Estimate(mean, nan, nan)
    half = t_quantile(seeds, level) * values.std(axis=0, ddof=1) / np.sqrt(seeds)
    return Estimate(mean, mean - half, mean + half)


def select(validation_scores: np.ndarray) -> int:
    """The index of the best validation score (the first of equals): what a selection picks."""
    return int(np.argmax(validation_scores))
