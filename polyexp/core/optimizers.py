"""Optimizers (``optimizer=...``): Keras optimizers, built fresh for every training run::

    from polyexp.core.optimizers import OPTIMIZERS

    optimizer = OPTIMIZERS["sgd"].bind({"learning_rate": 0.01, "momentum": 0.9})()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from polyexp.core.registry import Ge, Gt, Lt, Registry

if TYPE_CHECKING:
    import keras

OPTIMIZERS = Registry("optimizer")

LearningRate = Annotated[float, Gt(0)]


@OPTIMIZERS.register
def sgd(
    *,
    learning_rate: LearningRate = 0.01,
    momentum: Annotated[float, Ge(0), Lt(1)] = 0.9,
    nesterov: bool = False,
) -> keras.optimizers.Optimizer:
    """Stochastic gradient descent with momentum; the defaults are the seed's."""
    import keras  # here, so that composing a config does not wait for TensorFlow

    return keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov)


@OPTIMIZERS.register
def adam(
    *,
    learning_rate: LearningRate = 0.001,
    beta_1: Annotated[float, Ge(0), Lt(1)] = 0.9,
    beta_2: Annotated[float, Ge(0), Lt(1)] = 0.999,
    epsilon: Annotated[float, Gt(0)] = 1e-7,
) -> keras.optimizers.Optimizer:
    """Adam with Keras' defaults."""
    import keras

    return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)
