"""Expected calibration error against a plain loop over the 15 bins, and a case worked by hand."""

import numpy as np

from polyexp.core.calibration import expected_calibration_error


def ece_by_loop(labels: np.ndarray, probabilities: np.ndarray, bins: int = 15) -> float:
    """Guo et al. (2017): bins (lower, upper] of the top-class confidence, |accuracy - confidence| weighted by size."""
    confidence, predicted = probabilities.max(axis=1), probabilities.argmax(axis=1)
    total = 0.0
    for b in range(bins):
        lower, upper = b / bins, (b + 1) / bins
        inside = (confidence > lower) & (confidence <= upper)
        if inside.any():
            gap = np.mean(predicted[inside] == labels[inside]) - np.mean(confidence[inside])
            total += inside.mean() * abs(gap)
    return total


def test_ece_equals_a_loop_over_the_bins_with_leading_axes_kept():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=500)
    probabilities = rng.dirichlet(np.full(4, 0.3), size=(3, 2, 500))  # sharp and flat rows, many bins used
    ece = expected_calibration_error(labels, probabilities)
    assert ece.shape == (3, 2)
    for index in np.ndindex(3, 2):
        assert abs(ece[index] - ece_by_loop(labels, probabilities[index])) < 1e-12


def test_ece_by_hand():
    # Two rows at confidence 0.9 (one right), one at 0.5 (right): |0.5 - 0.9| * 2/3 + |1 - 0.5| * 1/3.
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.5, 0.5]])
    assert np.isclose(expected_calibration_error(np.array([0, 1, 0]), probabilities), 0.4 * 2 / 3 + 0.5 / 3)
    confident_and_right = np.eye(3)[[0, 1, 2, 1]]
    assert expected_calibration_error(np.array([0, 1, 2, 1]), confident_and_right) == 0
