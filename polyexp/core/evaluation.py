"""Scoring: the accuracy and loss of many weight sets of one model, in batches of rows.

Each checkpoint and each averaged model is one *weight set*. The sets are stacked (one array per model
weight, ``(M, *shape)``); for each batch of rows one graph call loads every set into the model in turn
and scores it, so no Keras model is built per set, the cost grows linearly with the number of sets, and
memory grows with the batch, not with the split::

    scorer = Scorer(model, data.x_train, batch_size=1024)
    averaged = scorer.recomputed(sets)                                # BatchNorm statistics, see below
    accuracy, loss = scorer(averaged, data.x_val, data.y_val)         # (M,) each
    probabilities = scorer.probabilities(averaged, data.x_test)       # (M, rows, classes)

**BatchNorm.** The statistics an averaged model carries (the average of its members' moving means and
variances) no longer match its averaged weights. :meth:`Scorer.recomputed` recomputes them as
``torch.optim.swa_utils.update_bn`` does, with one full pass over the training rows per BatchNorm layer:
each layer, in order, gets the mean and (biased, as Keras keeps it) variance of its inputs over all
training rows, computed with the layers before it already updated; dropout stays off. The pass runs in
batches and merges each batch's mean and variance exactly (Chan et al.'s pairwise update, in float64), so
the statistics are those of one pass over all rows, to float32 rounding. ``recompute_bn=False`` keeps
the averaged statistics, to show the difference.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf

from polyexp.core.metrics import correct_and_cross_entropy

log = logging.getLogger(__name__)

BATCH_SIZE = 1024  # rows per graph call: a CIFAR-sized split scores in a few hundred MB of activations


def batchnorm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """The model's BatchNormalization layers, in the order a forward pass meets them."""
    return [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]


def merge_moments(
    count: int, mean: np.ndarray, m2: np.ndarray, batch_count: int, batch_mean: np.ndarray, batch_variance: np.ndarray
) -> tuple[int, np.ndarray, np.ndarray]:
    """Chan et al.'s pairwise update: the count, mean and sum of squared deviations ``m2`` of two parts.

    With ``delta = batch_mean - mean`` and ``n = count + batch_count``::

        mean' = mean + delta * batch_count / n
        m2'   = m2 + batch_variance * batch_count + delta**2 * count * batch_count / n

    The variance of all rows is ``m2 / n`` (biased), whatever the batches.
    """
    total = count + batch_count
    delta = batch_mean - mean
    return (total, mean + delta * (batch_count / total),
            m2 + batch_variance * batch_count + delta**2 * (count * batch_count / total))


class Scorer:
    """Scores ``model`` under many weight sets, ``batch_size`` rows at a time; each graph is traced once.

    ``on_progress(done, total)`` (settable, with ``done`` and ``total``) is called after every batch with
    the weight sets scored so far and the ``total`` expected: one set through one split (or through one
    BatchNorm pass) counts one, fractions as batches finish.
    """

    def __init__(
        self, model: keras.Model, x_train: np.ndarray, *, recompute_bn: bool = True, batch_size: int = BATCH_SIZE,
        on_progress: Callable[[float, float], None] | None = None,
    ) -> None:
        self.model = model
        self.weights = model.weights
        self.x_train = x_train
        self.batch_size = batch_size
        self.on_progress = on_progress
        self.done, self.total = 0.0, 0.0
        layers = batchnorm_layers(model) if recompute_bn else []
        if layers and not getattr(model, "inputs", None):
            log.warning("model %s is not a functional Keras model: its averaged models keep their averaged "
                        "BatchNorm statistics", model.name)
            layers = []
        where = {w.path: i for i, w in enumerate(self.weights)}
        # Each BatchNorm layer's inputs, seen through the layers before it; where its statistics sit in a set.
        self.bn_layers = [(keras.Model(model.inputs, layer.input), layer.axis,
                           where[layer.moving_mean.path], where[layer.moving_variance.path]) for layer in layers]
        self.recomputes = bool(self.bn_layers)
        # One trace each, whatever the number of sets and the rows of a batch (the last one is shorter).
        sets = [tf.TensorSpec((None, *w.shape), w.dtype) for w in self.weights]
        rows = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
        self._predict = tf.function(self._predict_batch, input_signature=[sets, rows], autograph=False)
        self._score = tf.function(self._score_batch, input_signature=[sets, rows, tf.TensorSpec((None,), tf.int32)],
                                  autograph=False)
        self._moments = [tf.function(functools.partial(self._moments_batch, layer=layer),
                                     input_signature=[sets, rows], autograph=False)
                         for layer in range(len(self.bn_layers))]

    def __call__(
        self, weight_sets: Sequence[np.ndarray], x: np.ndarray, y: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Accuracy and mean cross-entropy on ``(x, y)`` under each of ``M`` weight sets (``(M,)`` each).

        ``weight_sets`` holds one array per model weight, shaped ``(M, *weight.shape)``. The model is
        left holding the last set.
        """
        sets = _tensors(weight_sets)
        correct = np.zeros(len(weight_sets[0]), np.float64)
        loss = np.zeros(len(weight_sets[0]), np.float64)
        for rows in self._batches(len(x), len(weight_sets[0])):
            hits, mean_loss = self._score(sets, tf.constant(x[rows], tf.float32), tf.constant(y[rows], tf.int32))
            correct += hits.numpy()
            loss += mean_loss.numpy().astype(np.float64) * (rows.stop - rows.start)
        return correct / len(x), loss / len(x)

    def probabilities(self, weight_sets: Sequence[np.ndarray], x: np.ndarray) -> np.ndarray:
        """The predicted class probabilities on ``x`` under each of ``M`` weight sets: ``(M, rows, classes)``."""
        sets = _tensors(weight_sets)
        out = None
        for rows in self._batches(len(x), len(weight_sets[0])):
            batch = self._predict(sets, tf.constant(x[rows], tf.float32)).numpy()
            if out is None:
                out = np.empty((len(weight_sets[0]), len(x), batch.shape[-1]), np.float32)
            out[:, rows] = batch
        assert out is not None
        return out

    def recomputed(self, weight_sets: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The sets with every BatchNorm layer's statistics recomputed on the training rows (see the module
        docstring); the sets as they are where nothing is recomputed."""
        if not self.recomputes:
            return list(weight_sets)
        sets = [np.array(w) for w in weight_sets]  # a copy: the statistics are replaced layer by layer
        m = len(sets[0])
        for layer, (_, _, mean_at, variance_at) in enumerate(self.bn_layers):
            count, mean, m2 = 0, np.zeros(sets[mean_at].shape, np.float64), np.zeros(sets[mean_at].shape, np.float64)
            tensors = _tensors(sets)  # with the layers before this one already updated
            for rows in self._batches(len(self.x_train), m):
                batch_mean, batch_variance = self._moments[layer](tensors, tf.constant(self.x_train[rows], tf.float32))
                count, mean, m2 = merge_moments(count, mean, m2, rows.stop - rows.start,
                                                batch_mean.numpy().astype(np.float64),
                                                batch_variance.numpy().astype(np.float64))
            sets[mean_at] = mean.astype(sets[mean_at].dtype)
            sets[variance_at] = (m2 / count).astype(sets[variance_at].dtype)
        return sets

    def holding(self, weights: Sequence[np.ndarray]) -> keras.Model:
        """The model, holding ``weights`` (one set, as it is)."""
        for variable, value in zip(self.weights, weights, strict=True):
            variable.assign(value)
        return self.model

    def _batches(self, rows: int, sets: int) -> Iterator[slice]:
        """The row batches of one pass; each one, as it is scored, advances the progress by its share of ``sets``."""
        batches = [slice(start, min(start + self.batch_size, rows)) for start in range(0, rows, self.batch_size)]
        for batch in batches:
            yield batch
            self.done += sets * (batch.stop - batch.start) / rows
            if self.on_progress is not None:
                self.on_progress(self.done, max(self.total, self.done))

    def _load(self, sets: list[tf.Tensor], m: tf.Tensor) -> list[tf.Operation]:
        return [w.assign(values[m]) for w, values in zip(self.weights, sets, strict=True)]

    def _each_set(self, sets: list[tf.Tensor], compute: Callable[[], tuple[tf.Tensor, ...]], dtypes: int) -> tuple:
        """``compute()`` under each set in turn, stacked: a graph loop, the model's variables reassigned."""

        def one(m: tf.Tensor, *arrays: tf.TensorArray) -> tuple:
            with tf.control_dependencies(self._load(sets, m)):
                values = compute()
            return m + 1, *(array.write(m, value) for array, value in zip(arrays, values, strict=True))

        count = tf.shape(sets[0])[0]
        arrays = tuple(tf.TensorArray(tf.float32, size=count) for _ in range(dtypes))
        _, *results = tf.while_loop(lambda m, *_: m < count, one, (tf.constant(0), *arrays))
        return tuple(result.stack() for result in results)

    def _predict_batch(self, sets: list[tf.Tensor], x: tf.Tensor) -> tf.Tensor:
        (outputs,) = self._each_set(sets, lambda: (self.model(x, training=False),), 1)
        return outputs

    def _score_batch(self, sets: list[tf.Tensor], x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return self._each_set(sets, lambda: correct_and_cross_entropy(y, self.model(x, training=False)), 2)

    def _moments_batch(self, sets: list[tf.Tensor], x: tf.Tensor, layer: int) -> tuple[tf.Tensor, tf.Tensor]:
        inputs_of, axis = self.bn_layers[layer][:2]

        def moments() -> tuple[tf.Tensor, tf.Tensor]:
            inputs = inputs_of(x, training=False)
            rank = len(inputs.shape)
            return tf.nn.moments(inputs, axes=[a for a in range(rank) if a != axis % rank])

        return self._each_set(sets, moments, 2)


def _tensors(weight_sets: Sequence[np.ndarray]) -> list[tf.Tensor]:
    return [tf.constant(w) for w in weight_sets]


def ensemble_probabilities(probabilities: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Output ensembles: the members' probabilities averaged with ``matrix``'s weights.

    ``probabilities`` is ``(S, K, rows, classes)`` (member 1 first), ``matrix`` ``(S, K, K)`` (row n-1:
    the weights of the n latest members); returns ``(S, K, rows, classes)``, one ensemble per n.
    """
    s, k = probabilities.shape[:2]
    flat = probabilities.reshape(s, k, -1).astype(np.float32)
    return np.matmul(matrix.astype(np.float32), flat).reshape(probabilities.shape)  # BLAS: K*K*rows*classes


def accuracy_and_loss(labels: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and loss of ``(..., rows, classes)`` probabilities, the leading axes kept."""
    correct, loss = correct_and_cross_entropy(labels, probabilities)
    return correct.numpy().astype(np.float64) / len(labels), loss.numpy().astype(np.float64)
