"""Models (``model=...``): Keras models whose weights get averaged.

A model plugin takes ``(num_features, num_classes)`` and returns a Keras model that maps a batch of
rows to class probabilities (a softmax output). A plugin that takes a parameter named ``input_shape``
gets one row's shape as well: ``(features,)``, or ``(height, width, channels)`` for images
(``data=npz`` with a 4-d ``x``). Import Keras inside the function, so that checking a config does
not wait for TensorFlow to load::

    from polyexp.core.models import MODELS, build_model

    model = MODELS["mlp"].bind({"hidden": [25], "activation": "relu"})(2, 3, input_shape=(2,))
    model.count_params()   # 153, the seed's model
    model = build_model(MODELS["cnn"].bind({}), data)   # for a Dataset: its shape and classes
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Literal

from polyexp.core.errors import ConfigError
from polyexp.core.registry import BoundPlugin, Ge, Lt, Registry

if TYPE_CHECKING:
    import keras

    from polyexp.core.data import Dataset

MODELS = Registry("model", call_args=("num_features", "num_classes"), context=("input_shape",))

Activation = Literal["relu", "tanh", "sigmoid", "elu", "selu", "gelu", "silu", "softplus", "linear"]
Dropout = Annotated[float, Ge(0), Lt(1)]


@MODELS.register
def mlp(
    num_features: int,
    num_classes: int,
    *,
    hidden: list[Annotated[int, Ge(1)]] = (25,),
    activation: Activation = "relu",
    dropout: Dropout = 0.0,
    batchnorm: bool = False,
    input_shape: tuple[int, ...] | None = None,
) -> keras.Model:
    """A multilayer perceptron: Dense layers of the given widths (with BatchNorm if batchnorm), then
    a softmax over the classes (images are flattened first)."""
    import keras  # here, so that composing a config does not wait for TensorFlow

    inputs = keras.Input(input_shape or (num_features,))
    x = keras.layers.Flatten()(inputs) if len(inputs.shape) > 2 else inputs
    for width in hidden:
        if batchnorm:  # the usual order: linear, normalise, then the nonlinearity
            x = keras.layers.Dense(width, use_bias=False)(x)
            x = keras.layers.BatchNormalization()(x)
            x = keras.layers.Activation(activation)(x)
        else:
            x = keras.layers.Dense(width, activation=activation)(x)
        if dropout:
            x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="mlp")


@MODELS.register
def cnn(
    num_features: int,
    num_classes: int,
    *,
    filters: list[Annotated[int, Ge(1)]] = (16, 32),
    kernel_size: Annotated[int, Ge(1)] = 3,
    batchnorm: bool = True,
    dropout: Dropout = 0.0,
    input_shape: tuple[int, ...] | None = None,
) -> keras.Model:
    """A small convolutional network for images, (height, width, channels) of any size, or square grey
    images given as rows of pixels (digits: 8x8): per filter count a convolution, BatchNorm and ReLU,
    then global average pooling and a softmax."""
    import keras

    if input_shape is not None and len(input_shape) == 3:
        inputs = keras.Input(input_shape)
        x = inputs
    else:
        side = math.isqrt(num_features)
        if side * side != num_features:
            raise ConfigError(
                f"model=cnn needs images: (rows, height, width, channels) arrays (data=npz), or square grey "
                f"images as rows of pixels; the data has {num_features} features (data=digits has 64: 8x8)"
            )
        inputs = keras.Input((num_features,))
        x = keras.layers.Reshape((side, side, 1))(inputs)
    for width in filters:
        x = keras.layers.Conv2D(width, kernel_size, padding="same", use_bias=not batchnorm)(x)
        if batchnorm:
            x = keras.layers.BatchNormalization()(x)
        x = keras.layers.Activation("relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    if dropout:
        x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="cnn")


def build_model(model: BoundPlugin, data: Dataset) -> keras.Model:
    """The model plugin's network for ``data``'s rows and classes."""
    return model(data.num_features, data.num_classes, input_shape=data.input_shape)
