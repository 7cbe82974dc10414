"""Training: a compiled TensorFlow loop that runs many epochs per call and keeps the window.

The semantics are Keras' ``fit(shuffle=True)``: every epoch visits the training rows in a fresh
random order, in batches of ``batch_size`` (the last one smaller), one optimizer step per batch,
loss categorical cross-entropy plus the model's own losses. After every epoch the model is scored on
the whole training and test splits (``fit`` reports a running mean over the epoch's batches
instead). The window's checkpoints are copied inside the graph into ``K`` preallocated slots, so
memory holds the model, its optimizer and ``K`` copies of the weights, never more.

Epoch ``e``'s order depends only on ``(seed, e)``, so the numbers do not depend on how the epochs
are split into calls::

    trajectory = train(model, optimizer, data, epochs=500, batch_size=32,
                       window=[500, 499, ..., 491], seed=0)
    trajectory.checkpoints[0].shape     # (10, 2, 25): the first kernel of the 10 members
    trajectory.history["test_acc"][-1]  # test accuracy after epoch 500
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from polyexp.data import Dataset
from polyexp.errors import TrainingDiverged
from polyexp.trajectory import HISTORY_KEYS, Trajectory

# Bump when a change to the loop changes the numbers it produces: it is part of the cache key.
LOOP_VERSION = 1

_SECONDS_PER_CALL = 0.25  # long enough to amortise a call, short enough for progress and Ctrl-C


def train(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    data: Dataset,
    *,
    epochs: int,
    batch_size: int,
    window: Sequence[int],
    seed: int,
    on_progress: Callable[[int], None] | None = None,
) -> Trajectory:
    """Train ``model`` for ``epochs`` and keep its weights at the ``window`` epochs (newest first).

    Raises TrainingDiverged, with the epoch, as soon as the training loss is NaN or infinite.
    """
    loop = _Loop(model, optimizer, data, epochs, batch_size, window, seed)
    chunks: list[np.ndarray] = []
    done, count = 0, 1  # the first call also traces the graph: keep it short
    while done < epochs:
        count = min(count, epochs - done)
        started = time.perf_counter()
        chunks.append(loop.run(tf.constant(done + 1), tf.constant(count)).numpy())
        elapsed = time.perf_counter() - started
        losses = chunks[-1][:, HISTORY_KEYS.index("train_loss")]
        bad = np.flatnonzero(~np.isfinite(losses))
        if bad.size:
            epoch = done + int(bad[0]) + 1
            history = {k: v[:epoch] for k, v in _history(chunks, data).items()}
            raise TrainingDiverged(epoch, float(losses[bad[0]]), history)
        done += count
        if on_progress is not None:
            on_progress(done)
        grow = 16 if len(chunks) == 1 else _SECONDS_PER_CALL / max(elapsed, 1e-4)
        count = max(1, min(int(count * grow), 8 * count))
    return Trajectory(
        epochs=np.asarray(window, dtype=np.int64),
        names=[w.path for w in model.weights],
        checkpoints=[v.numpy() for v in loop.slots],
        history=_history(chunks, data),
    )


def _history(chunks: list[np.ndarray], data: Dataset) -> dict[str, np.ndarray]:
    history = np.concatenate(chunks).astype(np.float64)
    history[:, 0] /= len(data.x_train)  # the graph counts correct predictions: exact accuracies
    history[:, 2] /= len(data.x_test)
    return {key: history[:, i] for i, key in enumerate(HISTORY_KEYS)}


def configure_threads(threads: int) -> None:
    """Limit TensorFlow's thread pools, as long as TensorFlow has not started yet in this process."""
    config = tf.config.threading
    if (config.get_intra_op_parallelism_threads(), config.get_inter_op_parallelism_threads()) == (threads, threads):
        return
    try:
        config.set_intra_op_parallelism_threads(threads)
        config.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # already started: a pool worker's later jobs keep the first setting
        pass


class _Loop:
    """The graph: ``run(first_epoch, count)`` trains ``count`` epochs and returns their metrics."""

    def __init__(
        self,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        data: Dataset,
        epochs: int,
        batch_size: int,
        window: Sequence[int],
        seed: int,
    ) -> None:
        self.model, self.optimizer = model, optimizer
        self.x_train, self.y_train = tf.constant(data.x_train), tf.constant(data.y_train)
        self.x_test, self.y_test = tf.constant(data.x_test), tf.constant(data.y_test)
        self.rows, self.batch_size = len(data.x_train), batch_size
        self.steps = math.ceil(self.rows / batch_size)
        self.seed = tf.constant(seed, tf.int64)
        slot_of_epoch = np.full(epochs + 1, -1, dtype=np.int32)
        slot_of_epoch[np.asarray(window)] = np.arange(len(window), dtype=np.int32)
        self.slot_of_epoch = tf.constant(slot_of_epoch)
        self.slots = [
            tf.Variable(tf.zeros((len(window), *w.shape), w.dtype), trainable=False) for w in model.weights
        ]
        optimizer.build(model.trainable_variables)
        # Plain tf.while_loop instead of AutoGraph: tracing takes half the time.
        self.run = tf.function(self._run, autograph=False, reduce_retracing=True)

    def _run(self, first: tf.Tensor, count: tf.Tensor) -> tf.Tensor:
        def epoch(i: tf.Tensor, metrics: tf.TensorArray) -> tuple[tf.Tensor, tf.TensorArray]:
            self._train_epoch(first + i)
            train_correct, train_loss = self._score(self.x_train, self.y_train)
            test_correct, test_loss = self._score(self.x_test, self.y_test)
            with tf.control_dependencies([self._keep(first + i)]):
                return i + 1, metrics.write(i, tf.stack([train_correct, train_loss, test_correct, test_loss]))

        metrics = tf.TensorArray(tf.float32, size=count)
        _, metrics = tf.while_loop(lambda i, _: i < count, epoch, (tf.constant(0), metrics))
        return metrics.stack()

    def _train_epoch(self, epoch: tf.Tensor) -> None:
        seed = tf.stack([self.seed, tf.cast(epoch, tf.int64)])
        order = tf.argsort(tf.random.stateless_uniform([self.rows], seed=seed))

        def step(i: tf.Tensor) -> tuple[tf.Tensor]:
            batch = order[i * self.batch_size : (i + 1) * self.batch_size]
            x, y = tf.gather(self.x_train, batch), tf.gather(self.y_train, batch)
            with tf.GradientTape() as tape:
                loss = _cross_entropy(y, self.model(x, training=True))
                if self.model.losses:
                    loss += tf.add_n(self.model.losses)
            grads = tape.gradient(loss, self.model.trainable_variables)
            self.optimizer.apply(grads, self.model.trainable_variables)
            return (i + 1,)

        tf.while_loop(lambda i: i < self.steps, step, (tf.constant(0),))

    def _keep(self, epoch: tf.Tensor) -> tf.Operation:
        """Copy the weights into the epoch's window slot, if it has one."""
        slot = self.slot_of_epoch[epoch]

        def copy() -> tf.Operation:
            return tf.group(*[kept[slot].assign(w) for kept, w in zip(self.slots, self.model.weights, strict=True)])

        return tf.cond(slot >= 0, copy, tf.no_op)

    def _score(self, x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        probabilities = self.model(x, training=False)
        predicted = tf.argmax(probabilities, axis=-1, output_type=y.dtype)
        correct = tf.reduce_sum(tf.cast(tf.equal(predicted, y), tf.float32))
        return correct, _cross_entropy(y, probabilities)


def _cross_entropy(labels: tf.Tensor, probabilities: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, probabilities))
