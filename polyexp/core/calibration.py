"""Calibration: how far a model's confidence is from its accuracy (expected calibration error).

The usual definition (Naeini et al. 2015; Guo et al. 2017, "On calibration of modern neural networks"):
a row's *confidence* is its top class probability and it is *correct* when that class is its label.
The rows are put into ``B = 15`` equal-width bins of confidence, bin ``b`` holding the rows with
``b/B < confidence <= (b+1)/B``; then

    ECE = sum over bins b of  |B_b| / N * | accuracy(B_b) - mean confidence(B_b) |,

N the number of rows (empty bins count zero). 0 is perfectly calibrated; an overconfident model's
ECE approaches the gap between its confidence and its accuracy::

    ece = expected_calibration_error(labels, probabilities)   # probabilities (..., rows, classes) -> (...)
"""

from __future__ import annotations

import numpy as np

BINS = 15


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = BINS) -> np.ndarray:
    """The ECE of ``(..., rows, classes)`` probabilities against ``(rows,)`` class ids; leading axes kept."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    confidence = probabilities.max(axis=-1)
    correct = (probabilities.argmax(axis=-1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.digitize(confidence, edges[1:-1], right=True)  # b with edges[b] < confidence <= edges[b+1]
    in_bin = which[..., None] == np.arange(bins)  # (..., rows, bins)
    gap = np.einsum("...rb,...r->...b", in_bin, correct - confidence)  # per bin: correct count - confidence sum
    return np.abs(gap).sum(axis=-1) / confidence.shape[-1]
