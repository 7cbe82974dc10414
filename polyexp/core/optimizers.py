"""Optimizers (``optimizer=...``): Keras optimizers, built fresh for every training run::

    from polyexp.core.optimizers import OPTIMIZERS

    optimizer = OPTIMIZERS["sgd"].bind({"learning_rate": 0.01, "momentum": 0.9})()

A group's seeds are stepped as one model (``polyexp.core.training``), so every optimizer here is
elementwise, weight decay included; a schedule (``polyexp.core.schedules``) sets the rate each step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from polyexp.core.registry import Ge, Gt, Lt, Registry

if TYPE_CHECKING:
    import keras

OPTIMIZERS = Registry("optimizer")

LearningRate = Annotated[float, Gt(0)]
Beta = Annotated[float, Ge(0), Lt(1)]
WeightDecay = Annotated[float, Ge(0)]


@OPTIMIZERS.register
def sgd(
    *,
    learning_rate: LearningRate = 0.01,
    momentum: Annotated[float, Ge(0), Lt(1)] = 0.9,
    nesterov: bool = False,
    weight_decay: WeightDecay = 0.0,
) -> keras.optimizers.Optimizer:
    """Stochastic gradient descent with momentum; the defaults are the seed's.

    ``weight_decay`` is Keras' decoupled decay: before each step, ``w <- w - weight_decay * rate * w``.
    """
    import keras  # here, so that composing a config does not wait for TensorFlow

    return keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov,
                                weight_decay=weight_decay or None)


@OPTIMIZERS.register
def adam(
    *,
    learning_rate: LearningRate = 0.001,
    beta_1: Beta = 0.9,
    beta_2: Beta = 0.999,
    epsilon: Annotated[float, Gt(0)] = 1e-7,
) -> keras.optimizers.Optimizer:
    """Adam with Keras' defaults."""
    import keras

    return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)


@OPTIMIZERS.register
def adamw(
    *,
    learning_rate: LearningRate = 0.001,
    weight_decay: WeightDecay = 0.004,
    beta_1: Beta = 0.9,
    beta_2: Beta = 0.999,
    epsilon: Annotated[float, Gt(0)] = 1e-7,
) -> keras.optimizers.Optimizer:
    """Adam with decoupled weight decay (Keras' AdamW and its defaults): w <- w - weight_decay * rate * w a step."""
    import keras

    return keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay, beta_1=beta_1,
                                  beta_2=beta_2, epsilon=epsilon)


@OPTIMIZERS.register
def schedule_free_adamw(
    *,
    learning_rate: LearningRate = 0.0025,
    beta_1: Annotated[float, Gt(0), Lt(1)] = 0.9,
    beta_2: Beta = 0.999,
    epsilon: Annotated[float, Gt(0)] = 1e-8,
    warmup_steps: Annotated[int, Ge(0)] = 0,
    weight_decay: WeightDecay = 0.0,
    update: Literal["paper", "keras"] = "paper",
) -> keras.optimizers.Optimizer:
    """Schedule-free AdamW (Defazio et al. 2024; Keras' defaults): the model holds the interpolation y, and its
    averaged sequence x is scored too (schedule_free_x). update=paper: the paper's update; keras: Keras' own."""
    import keras

    from polyexp.core.schedule_free import PaperScheduleFreeAdamW

    if update == "keras":
        return keras.optimizers.ScheduleFreeAdamW(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                                                  epsilon=epsilon, warmup_steps=warmup_steps,
                                                  weight_decay=weight_decay or None)
    return PaperScheduleFreeAdamW(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                                  warmup_steps=warmup_steps, decay=weight_decay)
