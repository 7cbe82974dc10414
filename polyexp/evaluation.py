"""Scoring: the test accuracy and loss of many weight sets of one model, in one compiled call.

Each member of the window scored alone (``single``) and each average of the ``n`` latest members
(``ensemble``) is one weight set. They are stacked, and a single graph call loads each set into the
model and scores it, so no Keras model is built per ``n`` and the cost grows linearly with the
number of sets::

    scores = score_window(Scorer(model), trajectory, weight_matrix(exp, 10), data)
    scores.single_acc[0], scores.ensemble_acc[-1]   # the last checkpoint; the average of all 10
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from polyexp.averaging import average
from polyexp.data import Dataset
from polyexp.training import Trajectory


@dataclass
class WindowScores:
    """Test scores for n = 1..K (index n-1): member n alone, and the average of the n latest."""

    single_acc: np.ndarray
    single_loss: np.ndarray
    ensemble_acc: np.ndarray
    ensemble_loss: np.ndarray


def score_window(scorer: Scorer, trajectory: Trajectory, matrix: np.ndarray, data: Dataset) -> WindowScores:
    """Score every single member and every weighted average (rows of ``matrix``) on the test split."""
    k = len(trajectory.epochs)
    sets = average(trajectory.checkpoints, np.vstack([np.eye(k), matrix]))
    accuracy, loss = scorer(sets, data.x_test, data.y_test)
    return WindowScores(accuracy[:k], loss[:k], accuracy[k:], loss[k:])


class Scorer:
    """Scores ``model`` under many weight sets; traced once, then reused for any number of sets."""

    def __init__(self, model: keras.Model) -> None:
        weights = model.weights
        signature = (
            [tf.TensorSpec((None, *w.shape), w.dtype) for w in weights],
            tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32),
            tf.TensorSpec((None,), tf.int32),
        )

        @tf.function(input_signature=signature, autograph=False)
        def score_sets(sets: list[tf.Tensor], x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            def score_one(m: tf.Tensor, correct: tf.TensorArray, losses: tf.TensorArray) -> tuple:
                with tf.control_dependencies([w.assign(values[m]) for w, values in zip(weights, sets, strict=True)]):
                    probabilities = model(x, training=False)
                predicted = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
                hits = tf.reduce_sum(tf.cast(tf.equal(predicted, y), tf.int32))
                loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, probabilities))
                return m + 1, correct.write(m, hits), losses.write(m, loss)

            count = tf.shape(sets[0])[0]
            arrays = tf.TensorArray(tf.int32, size=count), tf.TensorArray(tf.float32, size=count)
            _, correct, losses = tf.while_loop(lambda m, *_: m < count, score_one, (tf.constant(0), *arrays))
            return correct.stack(), losses.stack()

        self._score_sets = score_sets

    def __call__(
        self, weight_sets: Sequence[np.ndarray], x: np.ndarray, y: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Accuracy and mean cross-entropy under each of ``M`` weight sets.

        ``weight_sets`` holds one array per model weight, shaped ``(M, *weight.shape)``. The model
        is left holding the last set.
        """
        correct, loss = self._score_sets([tf.constant(w) for w in weight_sets], tf.constant(x), tf.constant(y))
        return correct.numpy().astype(np.float64) / len(x), loss.numpy().astype(np.float64)
