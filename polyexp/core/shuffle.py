"""Each epoch's row order, for many seeds and epochs at once, exactly as TensorFlow would draw it.

Seed ``s`` visits the training rows of epoch ``e`` in the order

    tf.argsort(tf.random.stateless_uniform([rows], seed=[s, e]))

so a seed's order depends on ``(s, e)`` alone, whichever seeds train beside it. Drawing that with
TensorFlow costs a few ops per seed and epoch; ``orders`` computes the same numbers in NumPy for a
whole block of epochs and seeds at once: TensorFlow's Philox-4x32-10 generator, its seed scrambling
and its float conversion, and a stable argsort (TensorFlow's sorts lower indices first among equal
values). Training takes every epoch's orders from here, for one seed as for a group: for one seed,
drawing them inside the compiled loop instead is no faster (``benchmarks/row_order.py``).
``tests/test_shuffle.py`` checks equality with TensorFlow::

    orders(seeds=[0, 1], epochs=[1, 2, 3], rows=100).shape     # (3, 2, 100): epoch, seed, position
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_MULTIPLIERS = (np.uint64(0xD2511F53), np.uint64(0xCD9E8D57))
_KEY_STEPS = (np.uint32(0x9E3779B9), np.uint32(0xBB67AE85))
_SCRAMBLE_KEY = (0x3EC8F720, 0x02461E29)  # TensorFlow's fixed key for turning a seed into key and counter
_LOW = np.uint64(0xFFFFFFFF)
_32 = np.uint64(32)


def orders(seeds: Sequence[int], epochs: Sequence[int], rows: int) -> np.ndarray:
    """``(len(epochs), len(seeds), rows)`` int32: each seed's order of the rows in each epoch."""
    seed = np.asarray(seeds, dtype=np.int64)[None, :]
    epoch = np.asarray(epochs, dtype=np.int64)[:, None]
    seed, epoch = np.broadcast_arrays(seed, epoch)
    return _stable_argsort(uniform(seed, epoch, rows))


def _stable_argsort(numbers: np.ndarray) -> np.ndarray:
    """``np.argsort(numbers, axis=-1, kind="stable")`` as int32, for float32 numbers >= 0, ten times faster.

    A non-negative float's bits order as its value, so a key of (bits, index) in one uint64 is
    distinct for every row and orders equal numbers by index: a plain sort of the keys is stable.
    """
    rows = numbers.shape[-1]
    width = np.uint64(max(rows - 1, 0).bit_length())
    keys = (numbers.view(np.uint32).astype(np.uint64) << width) | np.arange(rows, dtype=np.uint64)
    keys.sort(axis=-1)
    return (keys & ((np.uint64(1) << width) - np.uint64(1))).astype(np.int32)


def uniform(seed: np.ndarray, epoch: np.ndarray, size: int) -> np.ndarray:
    """``tf.random.stateless_uniform([size], seed=[seed, epoch])`` for arrays of seeds: ``(..., size)`` float32."""
    key, counter_high = _key_and_counter(seed, epoch)
    groups = -(-size // 4)  # Philox yields 4 numbers per counter value
    step = np.arange(groups, dtype=np.uint64)
    counter = np.empty((*seed.shape, groups, 4), dtype=np.uint32)
    counter[..., 0] = (step & _LOW).astype(np.uint32)
    counter[..., 1] = (step >> _32).astype(np.uint32)
    counter[..., 2] = counter_high[..., None, 0]
    counter[..., 3] = counter_high[..., None, 1]
    bits = _philox(counter, key[..., None, :]).reshape(*seed.shape, groups * 4)[..., :size]
    return ((bits & np.uint32(0x7FFFFF)) | np.uint32(0x3F800000)).view(np.float32) - np.float32(1.0)


def _key_and_counter(seed: np.ndarray, epoch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TensorFlow's key and counter for the seed pair: the pair, scrambled by one Philox call."""
    first, second = seed.astype(np.uint64), epoch.astype(np.uint64)
    counter = np.stack([first & _LOW, first >> _32, second & _LOW, second >> _32], axis=-1).astype(np.uint32)
    key = np.broadcast_to(np.array(_SCRAMBLE_KEY, dtype=np.uint32), (*seed.shape, 2))
    mixed = _philox(counter, key)
    return mixed[..., :2], mixed[..., 2:]  # the counter's low words start at 0


def _philox(counter: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Philox-4x32-10 (Salmon et al. 2011) on arrays: counter ``(..., 4)``, key ``(..., 2)`` uint32."""
    c0, c1, c2, c3 = (counter[..., i].astype(np.uint64) for i in range(4))
    k0, k1 = key[..., 0].copy(), key[..., 1].copy()
    with np.errstate(over="ignore"):  # the key schedule wraps around 2**32 by design
        for round_ in range(10):
            product0, product1 = _MULTIPLIERS[0] * c0, _MULTIPLIERS[1] * c2
            c0, c1, c2, c3 = (
                (product1 >> _32) ^ c1 ^ k0.astype(np.uint64), product1 & _LOW,
                (product0 >> _32) ^ c3 ^ k1.astype(np.uint64), product0 & _LOW,
            )
            if round_ < 9:
                k0, k1 = k0 + _KEY_STEPS[0], k1 + _KEY_STEPS[1]
    return np.stack([c0, c1, c2, c3], axis=-1).astype(np.uint32)
