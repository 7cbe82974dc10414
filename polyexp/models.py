"""Models (``model=...``): Keras models whose weights get averaged.

A model plugin takes ``(num_features, num_classes)`` and returns a Keras model
that maps a batch of feature rows to class probabilities (a softmax output). Import Keras inside
the function, so that checking a config does not wait for TensorFlow to load::

    from polyexp.models import MODELS

    model = MODELS["mlp"].bind({"hidden": [25], "activation": "relu"})(2, 3)
    model.count_params()   # 153, the seed's model
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from polyexp.registry import Ge, Lt, Registry

if TYPE_CHECKING:
    import keras

MODELS = Registry("model", call_args=("num_features", "num_classes"))

Activation = Literal["relu", "tanh", "sigmoid", "elu", "selu", "gelu", "silu", "softplus", "linear"]


@MODELS.register
def mlp(
    num_features: int,
    num_classes: int,
    *,
    hidden: list[Annotated[int, Ge(1)]] = (25,),
    activation: Activation = "relu",
    dropout: Annotated[float, Ge(0), Lt(1)] = 0.0,
) -> keras.Model:
    """A multilayer perceptron: Dense layers of the given widths, then a softmax over the classes."""
    import keras  # here, so that composing a config does not wait for TensorFlow

    inputs = keras.Input((num_features,))
    x = inputs
    for width in hidden:
        x = keras.layers.Dense(width, activation=activation)(x)
        if dropout:
            x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="mlp")
