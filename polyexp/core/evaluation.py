"""Scoring: the accuracy and loss of many weight sets of one model, in one compiled call.

Each checkpoint and each averaged model is one *weight set*. The sets are stacked, and one graph call
loads each set into the model and scores it, so no Keras model is built per set and the cost grows
linearly with the number of sets::

    scorer = Scorer(model, data.x_train, recompute_bn=True)
    accuracy, loss = scorer(sets, data.x_val, data.y_val, averaged=True)         # (M,) each
    probabilities = scorer.probabilities(sets, data.x_test, averaged=True)       # (M, rows, classes)

**BatchNorm.** The statistics an averaged model carries (the average of its members' moving means and
variances) no longer match its averaged weights. For a set marked ``averaged``, the scorer first
recomputes them as ``torch.optim.swa_utils.update_bn`` does, with one pass over the training rows:
each BatchNorm layer, in order, gets the mean and (biased, as Keras keeps it) variance of its inputs
over all training rows, computed with the layers before it already updated; dropout stays off in that
pass. ``recompute_bn=False`` keeps the averaged statistics, to show the difference.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from polyexp.core.metrics import correct_and_cross_entropy

log = logging.getLogger(__name__)


def batchnorm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """The model's BatchNormalization layers, in the order a forward pass meets them."""
    return [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]


class Scorer:
    """Scores ``model`` under many weight sets; each variant is traced once, then reused for any number of sets."""

    def __init__(self, model: keras.Model, x_train: np.ndarray, *, recompute_bn: bool = True) -> None:
        self.model = model
        self.weights = model.weights
        self.x_train = tf.constant(x_train)
        layers = batchnorm_layers(model) if recompute_bn else []
        if layers and not getattr(model, "inputs", None):
            log.warning("model %s is not a functional Keras model: its averaged models keep their averaged "
                        "BatchNorm statistics", model.name)
            layers = []
        # Each BatchNorm layer's inputs, seen through the layers before it.
        self.bn_inputs = [(layer, keras.Model(model.inputs, layer.input)) for layer in layers]
        self.recomputes = bool(self.bn_inputs)
        self._score = tf.function(self._score_sets, autograph=False, reduce_retracing=True)
        self._predict = tf.function(self._predict_sets, autograph=False, reduce_retracing=True)
        self._hold = tf.function(self._hold_set, autograph=False, reduce_retracing=True)

    def __call__(
        self, weight_sets: Sequence[np.ndarray], x: np.ndarray, y: np.ndarray, *, averaged: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Accuracy and mean cross-entropy on ``(x, y)`` under each of ``M`` weight sets.

        ``weight_sets`` holds one array per model weight, shaped ``(M, *weight.shape)``. Sets marked
        ``averaged`` get their BatchNorm statistics recomputed first. The model is left holding the last set.
        """
        correct, loss = self._score([tf.constant(w) for w in weight_sets], tf.constant(x), tf.constant(y),
                                    averaged and self.recomputes)
        return correct.numpy().astype(np.float64) / len(x), loss.numpy().astype(np.float64)

    def probabilities(self, weight_sets: Sequence[np.ndarray], x: np.ndarray, *, averaged: bool = False) -> np.ndarray:
        """The predicted class probabilities on ``x`` under each of ``M`` weight sets: ``(M, rows, classes)``.

        Sets marked ``averaged`` get their BatchNorm statistics recomputed first, as in ``__call__``.
        """
        return self._predict([tf.constant(w) for w in weight_sets], tf.constant(x),
                             averaged and self.recomputes).numpy()

    def holding(self, weights: Sequence[np.ndarray], *, averaged: bool) -> keras.Model:
        """The model, holding ``weights`` (one set, BatchNorm statistics recomputed if ``averaged``)."""
        self._hold([tf.constant(w[None]) for w in weights], averaged and self.recomputes)
        return self.model

    def _load(self, sets: list[tf.Tensor], m: tf.Tensor, recompute: bool) -> list[tf.Operation]:
        """Assign set ``m`` to the model (and recompute its BatchNorm statistics)."""
        loads = [w.assign(values[m]) for w, values in zip(self.weights, sets, strict=True)]
        if not recompute:
            return loads
        for layer, inputs_of in self.bn_inputs:
            with tf.control_dependencies(loads):
                inputs = inputs_of(self.x_train, training=False)
                axes = [a for a in range(len(inputs.shape)) if a != layer.axis % len(inputs.shape)]
                mean, variance = tf.nn.moments(inputs, axes=axes)
                loads = [layer.moving_mean.assign(mean), layer.moving_variance.assign(variance)]
        return loads

    def _hold_set(self, sets: list[tf.Tensor], recompute: bool) -> None:
        self._load(sets, tf.constant(0), recompute)

    def _score_sets(
        self, sets: list[tf.Tensor], x: tf.Tensor, y: tf.Tensor, recompute: bool
    ) -> tuple[tf.Tensor, tf.Tensor]:
        def score_one(m: tf.Tensor, correct: tf.TensorArray, losses: tf.TensorArray) -> tuple:
            with tf.control_dependencies(self._load(sets, m, recompute)):
                hits, loss = correct_and_cross_entropy(y, self.model(x, training=False))
            return m + 1, correct.write(m, hits), losses.write(m, loss)

        count = tf.shape(sets[0])[0]
        arrays = tf.TensorArray(tf.float32, size=count), tf.TensorArray(tf.float32, size=count)
        _, correct, losses = tf.while_loop(lambda m, *_: m < count, score_one, (tf.constant(0), *arrays))
        return correct.stack(), losses.stack()

    def _predict_sets(self, sets: list[tf.Tensor], x: tf.Tensor, recompute: bool) -> tf.Tensor:
        def predict_one(m: tf.Tensor, outputs: tf.TensorArray) -> tuple:
            with tf.control_dependencies(self._load(sets, m, recompute)):
                return m + 1, outputs.write(m, self.model(x, training=False))

        count = tf.shape(sets[0])[0]
        _, outputs = tf.while_loop(lambda m, _: m < count, predict_one,
                                   (tf.constant(0), tf.TensorArray(tf.float32, size=count)))
        return outputs.stack()


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
