"""Averagings against the seed's formulas, their checks, and the averaging math by hand."""

import math

import numpy as np
import pytest
from misbehaving_plugins import MISBEHAVING

from polyexp.core.averaging import AVERAGINGS, average, member_weights, weight_matrix
from polyexp.core.errors import PluginError
from polyexp.core.registry import Registry


def seed_weights(strategy: str, n: int) -> list[float]:
    """The seed tutorial's three averagings, written as it writes them."""
    if strategy == "equal":
        return [1.0 / n for i in range(1, n + 1)]
    if strategy == "linear":
        return [i / n for i in range(n, 0, -1)]
    alpha = 2.0
    return [math.exp(-i / alpha) for i in range(1, n + 1)]


@pytest.mark.parametrize("strategy", ["equal", "linear", "exp"])
@pytest.mark.parametrize("n", [1, 2, 5, 10])
def test_weights_follow_the_seed_formulas(strategy, n):
    raw = AVERAGINGS[strategy].bind({})(n)
    assert np.allclose(raw, seed_weights(strategy, n), rtol=0, atol=1e-15)
    normalised = member_weights(AVERAGINGS[strategy].bind({}), n)
    expected = np.array(seed_weights(strategy, n))
    assert np.allclose(normalised, expected / expected.sum(), rtol=0, atol=1e-15)


def test_linear_gives_the_latest_member_the_most_weight():
    weights = member_weights(AVERAGINGS["linear"].bind({}), 4)
    assert np.allclose(weights, np.array([4, 3, 2, 1]) / 10)


def test_exp_alpha_is_a_config_field():
    weights = member_weights(AVERAGINGS["exp"].bind({"alpha": 1.0}), 3)
    expected = np.exp(-np.arange(1, 4))
    assert np.allclose(weights, expected / expected.sum())


def test_weight_matrix_rows_are_the_normalised_prefix_weights():
    matrix = weight_matrix(AVERAGINGS["linear"].bind({}), 4)
    assert matrix.shape == (4, 4)
    assert np.allclose(np.triu(matrix, 1), 0)
    assert np.allclose(matrix.sum(axis=1), 1)
    assert np.allclose(matrix[2, :3], [3 / 6, 2 / 6, 1 / 6])


def test_average_matches_a_hand_computation():
    kernels = np.array([[[1.0, 2.0]], [[3.0, 6.0]], [[5.0, 10.0]]])  # 3 members, newest first
    biases = np.array([[1.0], [0.0], [-1.0]])
    weights = np.array([0.5, 0.5])  # the 2 latest members only
    kernel, bias = average([kernels, biases], weights)
    assert np.allclose(kernel, [[2.0, 4.0]])
    assert np.allclose(bias, [0.5])
    by_numpy = np.average(kernels[:3], axis=0, weights=[0.2, 0.3, 0.5])
    assert np.allclose(average([kernels], np.array([0.2, 0.3, 0.5]))[0], by_numpy)


def test_average_with_a_matrix_gives_one_model_per_row():
    stacked = np.random.default_rng(0).normal(size=(4, 3, 2)).astype(np.float32)
    matrix = weight_matrix(AVERAGINGS["exp"].bind({}), 4)
    (averaged,) = average([stacked], matrix)
    assert averaged.shape == (4, 3, 2) and averaged.dtype == np.float32
    for n in range(1, 5):
        expected = np.average(stacked[:n], axis=0, weights=matrix[n - 1, :n])
        assert np.allclose(averaged[n - 1], expected, atol=1e-6)


BAD = Registry("averaging", call_args=("n",))
for plugin in MISBEHAVING:
    BAD.register(plugin)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("too_many", "returned 3 weights for n=2; it must return exactly n"),
        ("negative", "returned a negative weight for n=2: -0.5 for member 2"),
        ("nan_weight", "returned a non-finite weight for n=2: nan for member 1"),
        ("inf_weight", "returned a non-finite weight for n=2: inf for member 1"),
        ("all_zero", "returned only zero weights for n=2"),
        ("raises", "failed: RuntimeError: boom"),
        ("not_numbers", "returned something that is not a list of numbers"),
    ],
)
def test_bad_averagings_are_rejected_with_the_plugin_named(name, message):
    with pytest.raises(PluginError) as error:
        member_weights(BAD[name].bind({}), 2)
    assert f"averaging plugin {name!r}" in str(error.value)
    assert message in str(error.value)


def test_weights_too_large_to_sum_are_normalised_without_overflow():
    huge = Registry("averaging", call_args=("n",))

    @huge.register
    def enormous(n: int) -> list[float]:
        return [1e308] * (n - 1) + [5e307]

    np.testing.assert_allclose(member_weights(huge["enormous"].bind({}), 3), [0.4, 0.4, 0.2], rtol=1e-15)
