"""Training and evaluation of one job: data pipeline → model → fit → test metrics → MLflow."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import keras
import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig

from protstruct.data import pipeline
from protstruct.models.model import build_model
from protstruct.tracking import artifacts
from protstruct.train import device, evaluate
from protstruct.train.callbacks import MlflowEpochLogger
from protstruct.train.losses import MaskedRMSE

log = logging.getLogger(__name__)


def fit_and_evaluate(cfg: DictConfig, splits, run_logger, workdir: Path) -> dict[str, float]:
    splits.require_all_splits()
    gpus = device.enable_memory_growth()  # both must come before TensorFlow touches a device
    strategy = device.strategy(str(cfg.trainer.strategy), cfg.trainer.get("cpu_replicas"))
    keras.backend.clear_session()  # jobs of one multirun share this process: drop the last model
    keras.utils.set_random_seed(int(cfg.seed))
    device.set_precision(str(cfg.trainer.precision))
    run_logger.log_metrics({"trainer/num_replicas_in_sync": strategy.num_replicas_in_sync,
                            "trainer/gpus": len(gpus)})
    manifest = splits.manifest()
    (workdir / "data_manifest.json").write_text(json.dumps(manifest, indent=1))
    run_logger.log_artifact(workdir / "data_manifest.json", "data")
    run_logger.set_tags({"data.fingerprint": manifest["fingerprint"], "data.source": splits.name})
    run_logger.log_metrics({f"data/{s}_proteins": n for s, n in manifest["counts"].items()})
    run_logger.log_metrics({"data/skipped": len(splits.skips),
                            **{f"data/skipped/{reason}": n for reason, n in splits.skip_counts().items()}})
    if splits.skips:
        artifacts.skips_table(splits.skips).to_csv(workdir / "skipped.csv", index=False)
        run_logger.log_artifact(workdir / "skipped.csv", "data")
        log.warning("data: skipped %d input(s): %s (see data/skipped.csv on the run)",
                    len(splits.skips), splits.skip_counts())

    crop, batch = int(cfg.data.crop_size), int(cfg.trainer.batch_size)
    features = instantiate(cfg.features)
    train_ds = pipeline.train_dataset(splits.train, crop, batch, features, int(cfg.seed))
    val_ds = pipeline.eval_dataset(splits.val, crop, batch, features)
    test_ds = pipeline.eval_dataset(splits.test, crop, batch, features)

    with strategy.scope():  # batch_size stays global: each replica sees batch / replicas
        model = build_model(instantiate(cfg.backbone.build), instantiate(cfg.decoder), crop,
                            features.channels, int(cfg.backbone.output_stride), float(cfg.dropout.rate),
                            neck=instantiate(cfg.attention), output_transform=str(cfg.target.transform))
        model.compile(optimizer=instantiate(cfg.optimizer), loss=instantiate(cfg.loss),
                      metrics=[MaskedRMSE()], jit_compile=bool(cfg.trainer.jit_compile))
    run_logger.log_metrics({"model/params": model.count_params()})
    epoch_logger = MlflowEpochLogger(run_logger)
    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=int(cfg.trainer.patience),
                                            restore_best_weights=True)
    started = time.perf_counter()
    model.fit(train_ds, validation_data=val_ds, epochs=int(cfg.trainer.epochs),
              callbacks=[epoch_logger, stopper], verbose=int(cfg.trainer.verbose), shuffle=False)

    # test metrics from the restored best-validation weights, per protein on the fixed windows
    fit_seconds = time.perf_counter() - started
    pred = model.predict(test_ds, verbose=0)
    metrics, per_protein, sample = evaluate.test_evaluation(pred, splits.test, splits.train, crop)
    metrics["train/best_epoch"] = stopper.best_epoch
    metrics["train/epochs_run"] = len(epoch_logger.history)
    metrics["time/fit_seconds"] = fit_seconds
    metrics["time/fit_and_test_seconds"] = time.perf_counter() - started
    run_logger.log_metrics(metrics)

    per_protein.to_csv(workdir / "test_per_protein.csv", index=False)
    run_logger.log_artifact(workdir / "test_per_protein.csv", "evaluation")
    np.savez_compressed(workdir / "test_predictions.npz", **sample)
    run_logger.log_artifact(workdir / "test_predictions.npz", "evaluation")
    artifacts.loss_curve(epoch_logger.history, workdir / "loss_curve.png", title=run_logger.name)
    run_logger.log_artifact(workdir / "loss_curve.png", "plots")
    if cfg.tracking.log_model:
        model.save(workdir / "model.keras")
        run_logger.log_artifact(workdir / "model.keras", "model")
    return metrics
