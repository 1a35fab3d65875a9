"""Input features computed per crop inside the tf.data pipeline (the ``features=`` group)."""
from __future__ import annotations

import tensorflow as tf


class RelativePosition:
    """The seed's input: the |i - j| relative-position matrix, zero outside the chain.

    Zeroing the padded region tells the model where the chain ends; nothing about the target
    distances is ever an input.
    """

    channels = 1

    def __init__(self, scale: float = 1.0):
        self.scale = float(scale)

    def __call__(self, residue_valid: tf.Tensor) -> tf.Tensor:
        n = tf.shape(residue_valid)[0]
        idx = tf.range(n, dtype=tf.float32)
        rel = tf.abs(idx[:, None] - idx[None, :]) * self.scale
        inside = tf.cast(residue_valid[:, None] & residue_valid[None, :], tf.float32)
        return (rel * inside)[..., None]
