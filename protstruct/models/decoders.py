"""Decoders: ``(feature_map, output_stride, dropout_rate) -> (B, H, W, 1)`` distance map.

Both of the original report's decoders double the resolution in every layer but the last, whose
factor is whatever remains of the backbone's output stride (8 for ResNet50's 32 after two
doublings), then apply the optional dropout and a linear 1-filter 3x3 Conv2D head. Kernel 3,
``same`` padding, ReLU between layers, as the original's model summaries imply. The stride rules
are :mod:`protstruct.models.geometry`'s.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from protstruct.models.geometry import final_factor, layer_factors

INTERPOLATIONS = ("nearest", "bilinear")


def _head(x, dropout_rate: float, kernel_size: int):
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"dropout.rate: expected a value in [0, 1), got {dropout_rate}")
    if dropout_rate > 0:
        x = layers.Dropout(dropout_rate)(x)
    # float32 head: distances up to ~100 Å lose too much precision in float16/bfloat16
    return layers.Conv2D(1, kernel_size, padding="same", activation=None, name="distance_head", dtype="float32")(x)


def transpose(x, output_stride: int, dropout_rate: float = 0.0, filters=(128, 64, 32), kernel_size: int = 3):
    """P0: one Conv2DTranspose per filter count (strides 2, 2, …, remainder)."""
    for f, stride in zip(filters, layer_factors(output_stride, len(filters), "the transpose decoder")):
        x = layers.Conv2DTranspose(f, kernel_size, strides=stride, padding="same", activation="relu")(x)
    return _head(x, dropout_rate, kernel_size)


def upsample(
    x,
    output_stride: int,
    dropout_rate: float = 0.0,
    filters=(128, 64),
    kernel_size: int = 3,
    interpolation: str = "nearest",
):
    """P1: UpSampling2D(2) + Conv2D per filter count, then UpSampling2D(remainder); ``interpolation``
    ``nearest`` (P1's, ``decoder=upsample``) or ``bilinear`` (``decoder=bilinear``)."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"decoder.interpolation: expected one of {INTERPOLATIONS}, got {interpolation!r}")
    last = final_factor(output_stride, len(filters), f"the upsample decoder ({interpolation})")
    for f in filters:
        x = layers.UpSampling2D(2, interpolation=interpolation)(x)
        x = layers.Conv2D(f, kernel_size, padding="same", activation="relu")(x)
    if last > 1:
        x = layers.UpSampling2D(last, interpolation=interpolation)(x)
    return _head(x, dropout_rate, kernel_size)


@keras.saving.register_keras_serializable("protstruct")
class ICNR(keras.initializers.Initializer):
    """Sub-pixel convolution init (Aitken et al. 2017): every r×r output block starts as a copy of
    one sub-kernel, so depth-to-space begins as nearest-neighbour upsampling — no checkerboard."""

    def __init__(self, scale: int, seed: int | None = None):
        self.scale, self.seed = int(scale), seed

    def __call__(self, shape, dtype=None):
        kh, kw, cin, cout = shape
        sub = keras.initializers.GlorotUniform(self.seed)((kh, kw, cin, cout // self.scale**2), dtype)
        # depth-to-space reads output channel c of sub-pixel k from input channel k·C + c
        return ops.tile(sub, (1, 1, 1, self.scale**2))

    def get_config(self):
        return {"scale": self.scale, "seed": self.seed}


@keras.saving.register_keras_serializable("protstruct")
class DepthToSpace(layers.Layer):
    def __init__(self, block_size: int, **kwargs):
        super().__init__(**kwargs)
        self.block_size = int(block_size)

    def call(self, x):
        return (
            ops.depth_to_space(x, self.block_size)
            if hasattr(ops, "depth_to_space")
            else _depth_to_space(x, self.block_size)
        )

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}


def _depth_to_space(x, r: int):
    b, h, w, c = ops.shape(x)
    x = ops.reshape(x, (b, h, w, r, r, c // (r * r)))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (b, h * r, w * r, c // (r * r)))


def subpixel(x, output_stride: int, dropout_rate: float = 0.0, filters=(128, 64, 32), kernel_size: int = 3):
    """Sub-pixel convolutions (Conv2D to f·r² channels, ICNR init, depth-to-space), strides as P0's."""
    for f, r in zip(filters, layer_factors(output_stride, len(filters), "the subpixel decoder")):
        x = layers.Conv2D(f * r * r, kernel_size, padding="same", activation="relu", kernel_initializer=ICNR(r))(x)
        x = DepthToSpace(r)(x)
    return _head(x, dropout_rate, kernel_size)
