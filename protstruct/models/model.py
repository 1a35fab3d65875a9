"""Backbone + decoder → one functional Keras model."""
from __future__ import annotations

import keras


def build_model(backbone, decoder, crop_size: int, in_channels: int, output_stride: int,
                dropout_rate: float = 0.0, name: str = "protein_structure_predictor") -> keras.Model:
    """``backbone(input_shape, output_stride=…)`` and ``decoder(x, output_stride, dropout_rate)``
    are the partially-applied callables that Hydra builds from the backbone/decoder groups."""
    inputs = keras.Input((crop_size, crop_size, in_channels), name="features")
    body = backbone((crop_size, crop_size, in_channels), output_stride=output_stride)
    features = body(inputs)
    distances = decoder(features, output_stride=output_stride, dropout_rate=dropout_rate)
    return keras.Model(inputs, distances, name=name)
