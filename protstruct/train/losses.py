"""Masked losses and metrics. ``y_true`` is ``(B, H, W, 2)``: distances (Å) and the pair mask.

Padded or unobserved pairs never count: they are removed with ``where`` (not multiplied by
0), so even a NaN or 1e6 written into a padded target cell cannot leak into a loss or metric.
"""

from __future__ import annotations

import keras
from keras import ops

# Written with keras.ops only (no TensorFlow import), so the models and losses also run under
# Keras' JAX backend — the GPU benchmark machine has JAX but no TensorFlow.


def _split(y_true, y_pred):
    y_true = ops.convert_to_tensor(y_true, "float32")
    dist, mask = y_true[..., 0], y_true[..., 1] > 0.5
    pred = ops.cast(ops.convert_to_tensor(y_pred)[..., 0], "float32")  # fp32 under mixed precision
    return dist, mask, pred


def masked_squared_error(y_true, y_pred):
    """(sum of squared error over valid pairs, number of valid pairs)."""
    dist, mask, pred = _split(y_true, y_pred)
    sq = ops.where(mask, ops.square(pred - ops.where(mask, dist, 0.0)), 0.0)
    return ops.sum(sq), ops.sum(ops.cast(mask, "float32"))


@keras.saving.register_keras_serializable("protstruct")
def masked_mse(y_true, y_pred):
    """Mean squared error (Å²) over the valid pairs of the batch."""
    sse, n = masked_squared_error(y_true, y_pred)
    return sse / ops.maximum(n, 1.0)


@keras.saving.register_keras_serializable("protstruct")
class MaskedHuber(keras.losses.Loss):
    """Huber loss over valid pairs (robust to the few very long distances)."""

    def __init__(self, delta: float = 2.0, name: str = "masked_huber", **kwargs):
        super().__init__(name=name, **kwargs)
        self.delta = float(delta)

    def call(self, y_true, y_pred):
        dist, mask, pred = _split(y_true, y_pred)
        err = ops.abs(pred - ops.where(mask, dist, 0.0))
        quad = ops.minimum(err, self.delta)
        huber = 0.5 * quad * quad + self.delta * (err - quad)
        n = ops.sum(ops.cast(mask, "float32"))
        return ops.sum(ops.where(mask, huber, 0.0)) / ops.maximum(n, 1.0)

    def get_config(self):
        return {**super().get_config(), "delta": self.delta}


def mse_loss():
    return masked_mse


@keras.saving.register_keras_serializable("protstruct")
def masked_log_mse(y_true, y_pred):
    """Squared error of log(1 + d) over valid pairs: relative errors, so long distances do not
    dominate the way they do in Å²."""
    dist, mask, pred = _split(y_true, y_pred)
    err = ops.log1p(ops.maximum(pred, 0.0)) - ops.log1p(ops.where(mask, dist, 0.0))
    n = ops.sum(ops.cast(mask, "float32"))
    return ops.sum(ops.where(mask, ops.square(err), 0.0)) / ops.maximum(n, 1.0)


def log_mse_loss():
    return masked_log_mse


@keras.saving.register_keras_serializable("protstruct")
class MaskedRMSE(keras.metrics.Metric):
    """Root of the pooled mean squared error over every valid pair seen (Å)."""

    def __init__(self, name: str = "rmse", **kwargs):
        super().__init__(name=name, **kwargs)
        self.sse = self.add_variable(shape=(), initializer="zeros", name="sse")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        sse, n = masked_squared_error(y_true, y_pred)
        self.sse.assign_add(sse)
        self.count.assign_add(n)

    def result(self):
        return ops.sqrt(self.sse / ops.maximum(self.count, 1.0))
