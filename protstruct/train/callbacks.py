"""Keras callbacks: per-epoch MLflow logging under the project's metric names."""

from __future__ import annotations

import math
import time

import keras

# Keras log key → protstruct metric name (named once; the report reads the same names)
EPOCH_METRICS = {"loss": "train/loss", "rmse": "train/rmse", "val_loss": "val/loss", "val_rmse": "val/rmse"}


class NonFiniteLoss(RuntimeError):
    pass


class MlflowEpochLogger(keras.callbacks.Callback):
    """Logs every epoch's metrics as it ends, so a crash or kill keeps the history so far."""

    def __init__(self, run_logger) -> None:
        super().__init__()
        self.run_logger = run_logger
        self.history: list[dict[str, float]] = []

    def restore(self, epoch_logs: list[dict]) -> None:
        """A resumed run: take back the epochs before the checkpoint, logging any the killed
        process had not logged yet (it logs after checkpointing, so none is ever logged twice)."""
        logged = {m.step for m in self.run_logger.client.get_metric_history(self.run_logger.run_id, "val/loss")}
        for epoch, logs in enumerate(epoch_logs):
            metrics = {name: float(logs[key]) for key, name in EPOCH_METRICS.items() if key in logs}
            self.history.append(metrics)
            if epoch not in logged:
                self.run_logger.log_metrics(metrics, step=epoch)

    def on_epoch_end(self, epoch, logs=None):
        metrics = {name: float(logs[key]) for key, name in EPOCH_METRICS.items() if key in (logs or {})}
        self.history.append(metrics)
        self.run_logger.log_metrics(metrics, step=epoch)
        bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
        if bad:
            raise NonFiniteLoss(
                f"epoch {epoch}: non-finite {bad}; stopping instead of training on garbage "
                f"(lower optimizer.learning_rate?)"
            )


class FirstStepTimer(keras.callbacks.Callback):
    """Logs ``time/to_first_step_seconds``: from ``since`` (a ``time.perf_counter()``, the job's
    start) to the end of the first training step — data loading, pipeline and model building,
    tracing included: what a user waits before training really starts."""

    def __init__(self, run_logger, since: float):
        super().__init__()
        self.run_logger, self.since, self.done = run_logger, since, False

    def on_train_batch_end(self, batch, logs=None):
        if not self.done:
            self.done = True
            self.run_logger.log_metrics({"time/to_first_step_seconds": time.perf_counter() - self.since})
