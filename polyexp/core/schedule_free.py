"""Schedule-free training's evaluation point: the averaged sequence ``x`` of Keras' ``ScheduleFreeAdamW``.

Schedule-free AdamW (Defazio et al. 2024, "The Road Less Scheduled") keeps three sequences: ``z``,
where the gradient steps go; ``x``, the running average of the ``z``'s, where the method is meant
to be evaluated; and their interpolation ``y``, where the gradient is taken::

    y_t     = (1 - beta_1) z_t + beta_1 x_t
    z_{t+1} = z_t - rate * g(y_t) / (sqrt(v_{t+1} / (1 - beta_2^(t+1))) + epsilon)
    x_{t+1} = (1 - c) x_t + c z_{t+1},   c = 1 / (t + 1)

Keras' optimizer keeps ``y`` in the model and ``z`` as its ``momentum`` variables, and has no switch
to evaluation, so a checkpoint holds ``y``. ``x`` follows from the two::

    x = (y - (1 - beta_1) z) / beta_1

polyexp scores ``x`` after training as an in-training average (``schedule_free_x``, beside EMA and
SWA), and the checkpoints as the model holds them (``y``)::

    x = evaluation_weights(optimizer, model.trainable_variables)   # after training with the optimizer

Keras' update (3.15) departs from the paper's in three ways; :class:`PaperScheduleFreeAdamW` (the
default of ``optimizer=schedule_free_adamw``, ``update=paper``) follows the paper and its reference
code, ``update=keras`` keeps Keras' own:

- it recovers ``x_t`` from ``y_t`` and ``z_{t+1}`` instead of ``z_t`` (it reads its ``momentum``
  variable after updating it), which moves ``x`` by ``(1 - beta_1) / beta_1`` of every step;
- during its warm-up it averages with ``c = 1 / (t + 1)``, where the reference weights each ``z`` by
  its rate squared (``c = rate_t^2 / sum of rate_i^2``);
- its weight decay shrinks ``y`` before the step, where the reference adds ``decay * y`` to the
  gradient of the ``z`` step.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

AVERAGE = "schedule_free_x"  # its name among the in-training averages


def evaluation_point(y: np.ndarray, z: np.ndarray, beta_1: float) -> np.ndarray:
    """``x = (y - (1 - beta_1) z) / beta_1``: the averaged sequence from the interpolation and the step sequence."""
    return (y - (1 - beta_1) * z) / beta_1


class PaperScheduleFreeAdamW(keras.optimizers.ScheduleFreeAdamW):
    """Keras' ScheduleFreeAdamW with the paper's update (Defazio et al. 2024, Algorithm 1 with Adam's second
    moment, as their reference ``AdamWScheduleFree`` computes it, ``weight_lr_power=2``)::

        y = (1 - beta_1) z + beta_1 x                      (the model's weights)
        v <- beta_2 v + (1 - beta_2) g^2,  g the gradient at y
        z <- z - rate_t (g / (sqrt(v / (1 - beta_2^t)) + epsilon) + decay y)
        x <- (1 - c) x + c z,   c = w_t / (w_1 + ... + w_t),   w_t = (rate_t / rate)^2 of the warm-up
        y <- (1 - beta_1) z + beta_1 x

    ``rate_t`` ramps linearly over ``warmup_steps`` (then ``rate``); with none, ``c = 1 / t``.
    """

    def __init__(self, *args: object, decay: float = 0.0, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.decay = decay

    def update_step(self, gradient: object, variable: keras.Variable, learning_rate: object) -> None:
        from keras import ops

        dtype = variable.dtype
        t = ops.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = ops.cast(self.beta_1, dtype), ops.cast(self.beta_2, dtype)
        warm = ops.minimum(t / self.warmup_steps, 1.0) if self.warmup_steps else ops.cast(1.0, dtype)
        rate = ops.cast(learning_rate, dtype) * warm
        gradient = ops.cast(gradient, dtype)
        index = self._get_variable_index(variable)
        z, v = self._momentums[index], self._velocities[index]
        y = ops.convert_to_tensor(variable)
        z_old = ops.convert_to_tensor(z)  # a value, read before z is updated (Keras' own reads it after)
        x_old = evaluation_point(y, z_old, beta_1)
        self.assign_add(v, (ops.square(gradient) - v) * (1 - beta_2))
        step = gradient / (ops.sqrt(v / (1 - ops.power(beta_2, t))) + self.epsilon) + self.decay * y
        z_new = z_old - rate * step
        self.assign(z, z_new)
        c = ops.square(warm) / _warmup_weight_sum(t, self.warmup_steps, dtype)
        x_new = (1 - c) * x_old + c * z_new
        self.assign(variable, (1 - beta_1) * z_new + beta_1 * x_new)

    def get_config(self) -> dict:
        return {**super().get_config(), "decay": self.decay}


def _warmup_weight_sum(t: object, warmup: int, dtype: str) -> object:
    """``sum_{i<=t} min(i / warmup, 1)^2``: i (i + 1) (2i + 1) / (6 warmup^2) over the warm-up, then 1 a step."""
    from keras import ops

    if not warmup:
        return t
    w = ops.minimum(t, float(warmup))
    return w * (w + 1) * (2 * w + 1) / (6.0 * warmup**2) + ops.maximum(t - warmup, 0.0)


def is_schedule_free(optimizer: keras.optimizers.Optimizer) -> bool:
    return isinstance(optimizer, keras.optimizers.ScheduleFreeAdamW)


def evaluation_weights(optimizer: keras.optimizers.Optimizer, variables: Sequence[keras.Variable]) -> list[np.ndarray]:
    """``x`` for each of ``variables`` (those the optimizer was built on, in that order).

    Keras names ``z`` ``momentum`` and keeps it in ``_momentums``, by the order of ``build``'s variables;
    ``tests/test_schedule_free.py`` fails if that changes.
    """
    beta_1 = float(optimizer.beta_1)
    return [evaluation_point(np.asarray(y), np.asarray(z), beta_1)
            for y, z in zip(variables, optimizer._momentums, strict=True)]
