"""Row orders drawn in NumPy equal TensorFlow's stateless draws, number for number."""

import numpy as np
import pytest
import tensorflow as tf

from polyexp.core.shuffle import orders, uniform


@pytest.mark.parametrize("rows", [1, 3, 4, 5, 32, 100, 1001, 10007])
def test_uniform_numbers_and_orders_equal_tensorflows(rows):
    rng = np.random.default_rng(rows)
    seeds = [0, 1, 2**32 - 1, *rng.integers(0, 2**32, 3).tolist()]
    epochs = [1, 2, 499, int(rng.integers(1, 10**6))]
    drawn = orders(seeds, epochs, rows)
    assert drawn.shape == (len(epochs), len(seeds), rows) and drawn.dtype == np.int32
    for i, epoch in enumerate(epochs):
        for j, seed in enumerate(seeds):
            expected = tf.random.stateless_uniform([rows], seed=tf.constant([seed, epoch], tf.int64))
            np.testing.assert_array_equal(uniform(np.array(seed), np.array(epoch), rows), expected.numpy())
            np.testing.assert_array_equal(drawn[i, j], tf.argsort(expected).numpy())


def test_a_seeds_order_does_not_depend_on_the_others():
    alone = orders([7], [3, 4], 50)
    together = orders([5, 7, 9], [3, 4], 50)
    np.testing.assert_array_equal(together[:, 1], alone[:, 0])
    assert not np.array_equal(together[:, 0], together[:, 1])


def test_equal_numbers_keep_their_rows_order_as_tensorflows_sort_does():
    rows = 100_000  # 23-bit numbers: about rows**2 / 2**24 = 600 pairs of equal ones
    numbers = uniform(np.array(3), np.array(5), rows)
    assert len(np.unique(numbers)) < rows - 100
    drawn = orders([3], [5], rows)[0, 0]
    np.testing.assert_array_equal(drawn, tf.argsort(numbers).numpy())
    np.testing.assert_array_equal(drawn, np.argsort(numbers, kind="stable"))
