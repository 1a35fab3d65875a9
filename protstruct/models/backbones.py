"""Backbones: ``(input_shape, output_stride) -> keras.Model`` whose output is a feature map
``output_stride`` times smaller than the input. Built from the ``backbone=`` group."""

from __future__ import annotations

import keras
from keras import layers


def _check_stride(model: keras.Model, input_shape, output_stride: int) -> keras.Model:
    size = input_shape[0]
    out = model.output.shape[1]
    if size % output_stride or out * output_stride != size:
        raise ValueError(
            f"data.crop_size={size} does not fit backbone '{model.name}': it must be a multiple "
            f"of the backbone's output stride {output_stride} (got a {out}x{out} feature map)"
        )
    return model


def _set_bn_momentum(model: keras.Model, momentum: float | None) -> keras.Model:
    """Keras applications fix BatchNorm momentum at 0.99: its moving statistics then need
    hundreds of steps to settle, longer than a short CPU run. ``None`` keeps Keras' value."""
    if momentum is not None:
        for layer in model.layers:
            if isinstance(layer, layers.BatchNormalization):
                layer.momentum = float(momentum)
    return model


def resnet50(input_shape, output_stride: int = 32, bn_momentum: float | None = None) -> keras.Model:
    """The original report's backbone: ResNet50, no pretrained weights, any number of input channels."""
    return keras_application(input_shape, "ResNet50", output_stride, bn_momentum)


def keras_application(input_shape, name: str, output_stride: int = 32, bn_momentum: float | None = None) -> keras.Model:
    """Any ``keras.applications`` model without its top and without pretrained weights."""
    factory = getattr(keras.applications, name, None)
    if factory is None:
        raise ValueError(f"backbone.build.name: keras.applications has no model called {name!r}")
    model = factory(weights=None, include_top=False, input_shape=tuple(input_shape))
    return _check_stride(_set_bn_momentum(model, bn_momentum), input_shape, output_stride)


def small_cnn(
    input_shape, output_stride: int = 8, filters=(32, 64, 128), bn_momentum: float | None = None
) -> keras.Model:
    """A small CNN for fast CPU runs: one stride-2 stage (two 3x3 convs + BN) per filter count."""
    if 2 ** len(filters) != output_stride:
        raise ValueError(
            f"backbone.filters: {len(filters)} stride-2 stages give output stride "
            f"{2 ** len(filters)}, but backbone.output_stride is {output_stride}"
        )
    inputs = keras.Input(tuple(input_shape))
    x = inputs
    for f in filters:
        x = layers.Conv2D(f, 3, strides=2, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.Conv2D(f, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    model = _set_bn_momentum(keras.Model(inputs, x, name="small_cnn"), bn_momentum)
    return _check_stride(model, input_shape, output_stride)
