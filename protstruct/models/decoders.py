"""Decoders: ``(feature_map, output_stride, dropout_rate) -> (B, H, W, 1)`` distance map.

Both seed decoders double the resolution in every layer but the last, whose factor is whatever
remains of the backbone's output stride (8 for ResNet50's 32 after two doublings), then apply the
optional dropout and a linear 1-filter 3x3 Conv2D head. Kernel 3, ``same`` padding, ReLU between
layers, as the seed's model summaries imply.
"""
from __future__ import annotations

from keras import layers


def _final_factor(output_stride: int, doublings: int, what: str) -> int:
    factor, rest = divmod(output_stride, 2 ** doublings)
    if rest or factor < 1:
        raise ValueError(
            f"decoder.filters: {what} doubles {doublings} times, which does not divide the "
            f"backbone's output stride {output_stride}"
        )
    return factor


def _head(x, dropout_rate: float, kernel_size: int):
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"dropout.rate: expected a value in [0, 1), got {dropout_rate}")
    if dropout_rate > 0:
        x = layers.Dropout(dropout_rate)(x)
    # float32 head: distances up to ~100 Å lose too much precision in float16/bfloat16
    return layers.Conv2D(1, kernel_size, padding="same", activation=None, name="distance_head",
                         dtype="float32")(x)


def transpose(x, output_stride: int, dropout_rate: float = 0.0, filters=(128, 64, 32), kernel_size: int = 3):
    """P0: one Conv2DTranspose per filter count (strides 2, 2, …, remainder)."""
    last = _final_factor(output_stride, len(filters) - 1, "the transpose decoder")
    for i, f in enumerate(filters):
        stride = last if i == len(filters) - 1 else 2
        x = layers.Conv2DTranspose(f, kernel_size, strides=stride, padding="same", activation="relu")(x)
    return _head(x, dropout_rate, kernel_size)


def upsample(x, output_stride: int, dropout_rate: float = 0.0, filters=(128, 64), kernel_size: int = 3):
    """P1: UpSampling2D(2) + Conv2D per filter count, then UpSampling2D(remainder)."""
    last = _final_factor(output_stride, len(filters), "the upsample decoder")
    for f in filters:
        x = layers.UpSampling2D(2)(x)
        x = layers.Conv2D(f, kernel_size, padding="same", activation="relu")(x)
    if last > 1:
        x = layers.UpSampling2D(last)(x)
    return _head(x, dropout_rate, kernel_size)
