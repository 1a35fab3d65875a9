"""Keras callbacks: per-epoch MLflow logging under the project's metric names."""
from __future__ import annotations

import math

import keras

# Keras log key → protstruct metric name (named once; the report reads the same names)
EPOCH_METRICS = {"loss": "train/loss", "rmse": "train/rmse", "val_loss": "val/loss", "val_rmse": "val/rmse"}


class NonFiniteLoss(RuntimeError):
    pass


class MlflowEpochLogger(keras.callbacks.Callback):
    """Logs every epoch's metrics as it ends, so a crash or kill keeps the history so far."""

    def __init__(self, run_logger):
        super().__init__()
        self.run_logger = run_logger
        self.history: list[dict[str, float]] = []

    def on_epoch_end(self, epoch, logs=None):
        metrics = {name: float(logs[key]) for key, name in EPOCH_METRICS.items() if key in (logs or {})}
        self.history.append(metrics)
        self.run_logger.log_metrics(metrics, step=epoch)
        bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
        if bad:
            raise NonFiniteLoss(f"epoch {epoch}: non-finite {bad}; stopping instead of training on garbage "
                                f"(lower optimizer.learning_rate?)")
