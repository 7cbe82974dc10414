"""Accuracy and cross-entropy, the one scoring function that training and evaluation share.

Accuracy is counted (correct rows), so that a split's accuracy is an exact fraction of its rows;
the loss is Keras' categorical cross-entropy on class ids, averaged over the rows::

    correct, loss = correct_and_cross_entropy(labels, probabilities)   # probabilities (..., rows, C)
    accuracy = correct / len(labels)
"""

from __future__ import annotations

import keras
import tensorflow as tf


def correct_and_cross_entropy(labels: tf.Tensor, probabilities: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Correct predictions and mean cross-entropy over the rows; leading axes (seeds, sets) are kept.

    ``probabilities`` is ``(..., rows, classes)``; ``labels`` is ``(rows,)`` class ids.
    """
    labels = tf.convert_to_tensor(labels)
    probabilities = tf.convert_to_tensor(probabilities)
    predicted = tf.argmax(probabilities, axis=-1, output_type=labels.dtype)
    correct = tf.reduce_sum(tf.cast(tf.equal(predicted, labels), tf.float32), axis=-1)
    per_row = keras.losses.sparse_categorical_crossentropy(
        tf.broadcast_to(labels, tf.shape(probabilities)[:-1]), probabilities
    )
    return correct, tf.reduce_mean(per_row, axis=-1)


def mean_cross_entropy(labels: tf.Tensor, probabilities: tf.Tensor) -> tf.Tensor:
    """The training loss of one batch: categorical cross-entropy on class ids, averaged over the rows."""
    return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, probabilities))
