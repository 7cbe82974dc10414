"""Averages kept while training, each a small object of one shape, as ``torch.optim.swa_utils`` keeps them.

An average is made on the loop's stacked trainable variables (seeds along the leading axis), is
updated inside the compiled loop after every optimizer step (``after_step``) and every epoch
(``after_epoch``), and gives its weights when training ends (``result``)::

    averages = [ExponentialAverage([0.99, 0.999], trainable), EpochAverage(400, trainable)]
    ... after each step:  ops = [op for a in averages for op in a.after_step(trainable)]
    ... after epoch e:    ops = [op for a in averages for op in a.after_epoch(e, trainable)]
    weights = {name: w for a in averages for name, w in a.result(trainable).items()}
    # {"ema_0.99": [...], "ema_0.999": [...], "swa": [...]}: one array per trainable variable, (S, *shape)
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from polyexp.core import schedule_free


class InTrainingAverage:
    """No update, no weights: the shape every average has."""

    def after_step(self, trainable: Sequence[keras.Variable]) -> list[tf.Operation]:
        return []

    def after_epoch(self, epoch: tf.Tensor, trainable: Sequence[keras.Variable]) -> list[tf.Operation]:
        return []

    def result(self, trainable: Sequence[keras.Variable]) -> dict[str, list[np.ndarray]]:
        return {}


class ExponentialAverage(InTrainingAverage):
    """For each decay ``d`` (``ema_d``), after every optimizer step: the weights themselves after the first
    step, then ``average = d * average + (1 - d) * weights`` (Keras' ``ema_momentum``, torch's EMA update)."""

    def __init__(self, decays: Sequence[float], trainable: Sequence[keras.Variable]) -> None:
        self.decays = tuple(decays)
        self.count = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.averages = [tf.Variable(tf.zeros((len(self.decays), *v.shape), v.dtype), trainable=False)
                         for v in trainable]

    def after_step(self, trainable: Sequence[keras.Variable]) -> list[tf.Operation]:
        count = self.count.assign_add(1)
        # average <- average - (1 - d) * (average - weights): with d = 0 on the first step, the weights
        rates = tf.where(tf.equal(count, 1), 1.0, 1.0 - tf.constant(self.decays, tf.float32))
        by_rank = {rank: tf.reshape(rates, [-1] + [1] * rank) for rank in {len(w.shape) for w in trainable}}
        return [average.assign_sub(by_rank[len(weight.shape)] * (average - tf.convert_to_tensor(weight)[None]))
                for average, weight in zip(self.averages, trainable, strict=True)]

    def result(self, trainable: Sequence[keras.Variable]) -> dict[str, list[np.ndarray]]:
        return {f"ema_{d:g}": [average.numpy()[k] for average in self.averages] for k, d in enumerate(self.decays)}


class EpochAverage(InTrainingAverage):
    """SWA (``swa``): the equal running mean of the weights after every epoch from ``start`` on
    (torch's ``AveragedModel`` as ``swa_utils`` uses it): ``average += (weights - average) / (n + 1)``."""

    def __init__(self, start: int, trainable: Sequence[keras.Variable]) -> None:
        self.start = start
        self.count = tf.Variable(0.0, trainable=False)
        self.averages = [tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False) for v in trainable]

    def after_epoch(self, epoch: tf.Tensor, trainable: Sequence[keras.Variable]) -> list[tf.Operation]:
        def update() -> tf.Operation:
            n = self.count
            moves = [a.assign(a + (tf.convert_to_tensor(w) - a) / tf.cast(n + 1, a.dtype))
                     for a, w in zip(self.averages, trainable, strict=True)]
            with tf.control_dependencies(moves):
                return tf.group(n.assign_add(1.0))

        return [tf.cond(epoch >= self.start, update, tf.no_op)]

    def result(self, trainable: Sequence[keras.Variable]) -> dict[str, list[np.ndarray]]:
        return {"swa": [a.numpy() for a in self.averages]}


class ScheduleFreeAverage(InTrainingAverage):
    """Schedule-free training's averaged sequence ``x`` (``schedule_free_x``), which the optimizer keeps
    itself: read from it when training ends (``polyexp.core.schedule_free``)."""

    def __init__(self, optimizer: keras.optimizers.Optimizer) -> None:
        self.optimizer = optimizer

    def result(self, trainable: Sequence[keras.Variable]) -> dict[str, list[np.ndarray]]:
        return {schedule_free.AVERAGE: schedule_free.evaluation_weights(self.optimizer, trainable)}


def in_training_averages(
    trainable: Sequence[keras.Variable], optimizer: keras.optimizers.Optimizer,
    ema_decays: Sequence[float] = (), swa_start: int | None = None,
) -> list[InTrainingAverage]:
    """The averages a run asks for (``ema_decays``, ``swa_start``), and ``x`` with a schedule-free optimizer."""
    averages: list[InTrainingAverage] = []
    if ema_decays:
        averages.append(ExponentialAverage(ema_decays, trainable))
    if swa_start:
        averages.append(EpochAverage(swa_start, trainable))
    if schedule_free.is_schedule_free(optimizer):
        averages.append(ScheduleFreeAverage(optimizer))
    return averages
