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

from protstruct.data import clusters, folder, homology, pipeline
from protstruct.models.model import model_from_config
from protstruct.tracking import artifacts, mlflow_store, models
from protstruct.train import device, evaluate
from protstruct.train.callbacks import FirstStepTimer, MlflowEpochLogger
from protstruct.train.checkpoint import EpochCheckpoint
from protstruct.train.losses import MaskedRMSE

log = logging.getLogger(__name__)


def fit_and_evaluate(
    cfg: DictConfig,
    splits,
    run_logger,
    workdir: Path,
    checkpoints: Path,
    resume: dict | None = None,
    job_started: float | None = None,
) -> dict[str, float]:
    """Train one job (from ``resume``, a checkpoint, when given), evaluate it, log everything.
    ``job_started`` (a ``time.perf_counter()``) is when the job began, for ``time/to_first_step_seconds``."""
    splits.require_all_splits()
    strategy = _prepare_device(cfg, run_logger)
    _log_data(splits, run_logger, workdir)
    features = instantiate(cfg.features)
    model = _build_model(cfg, features, strategy)
    run_logger.log_metrics({"model/params": model.count_params()})

    started = time.perf_counter()
    stopper, history = _train(
        cfg, model, splits, features, run_logger, checkpoints, resume, started if job_started is None else job_started
    )
    fit_seconds = time.perf_counter() - started
    metrics, per_protein, sample = _evaluate_on_test(cfg, model, splits, features)
    metrics.update(
        {
            "train/best_epoch": stopper.best_epoch,
            "train/epochs_run": len(history),
            "time/fit_seconds": fit_seconds,
            "time/fit_and_test_seconds": time.perf_counter() - started,
            "memory/peak_rss_mb": device.peak_rss_mb(),
        }
    )
    _log_model_and_metrics(cfg, model, splits, features, metrics, run_logger)
    _log_results(per_protein, sample, history, run_logger, workdir)
    _log_validation_by_identity_bin(cfg, model, splits, features, run_logger, workdir)
    return metrics


def _evaluate_on_test(cfg: DictConfig, model, splits, features):
    """Test metrics from the restored best-validation weights, per protein on the fixed windows."""
    crop = int(cfg.data.crop_size)
    pred = model.predict(pipeline.eval_dataset(splits.test, crop, int(cfg.trainer.batch_size), features), verbose=0)
    return evaluate.evaluate_test_set(pred, splits.test, splits.train, crop)


def _log_validation_by_identity_bin(cfg: DictConfig, model, splits, features, run_logger, workdir: Path) -> None:
    """ProteinNet's validation set is stratified by identity to training (its ``NN#`` bins): its
    per-protein table, with the bin as a column, lets a report break results down by it."""
    if not any(folder.VALIDATION_IDENTITY in r.meta for r in splits.val):
        return
    crop = int(cfg.data.crop_size)
    pred = model.predict(pipeline.eval_dataset(splits.val, crop, int(cfg.trainer.batch_size), features), verbose=0)
    _, table, _ = evaluate.evaluate_test_set(pred, splits.val, splits.train, crop)
    table.to_csv(workdir / "val_per_protein.csv", index=False)
    run_logger.log_artifact(workdir / "val_per_protein.csv", "evaluation")


def _log_model_and_metrics(cfg: DictConfig, model, splits, features, metrics: dict, run_logger) -> None:
    """The model, stored once as an MLflow Model, and the metrics, the test ones linked to it and
    to the test dataset."""
    model_id = None
    if cfg.tracking.log_model:
        example = pipeline.window_features(splits.test[0], 0, int(cfg.data.crop_size), features)
        model_id = models.log_keras_model(
            run_logger.client, run_logger.experiment_id(), run_logger.run_id, model, example
        )
    on_test = {k: v for k, v in metrics.items() if k.startswith(("test/", "baseline/"))}
    run_logger.log_metrics(on_test, model_id=model_id, dataset=(f"{splits.name}/test", splits.split_digest("test")))
    run_logger.log_metrics({k: v for k, v in metrics.items() if k not in on_test}, model_id=model_id)


def _prepare_device(cfg: DictConfig, run_logger):
    gpus = device.enable_memory_growth()  # both must come before TensorFlow touches a device
    strategy = device.strategy(str(cfg.trainer.strategy), cfg.trainer.get("cpu_replicas"))
    keras.backend.clear_session()  # jobs of one multirun share this process: drop the last model
    keras.utils.set_random_seed(int(cfg.seed))
    device.set_precision(str(cfg.trainer.precision))
    run_logger.log_metrics({"trainer/num_replicas_in_sync": strategy.num_replicas_in_sync, "trainer/gpus": len(gpus)})
    return strategy


def _log_data(splits, run_logger, workdir: Path) -> None:
    manifest = splits.manifest()
    (workdir / "data_manifest.json").write_text(json.dumps(manifest, indent=1))
    run_logger.log_artifact(workdir / "data_manifest.json", "data")
    run_logger.set_tags({"data.fingerprint": manifest["fingerprint"], "data.source": splits.name})
    source_type = splits.name.split(":", 1)[0]
    run_logger.log_inputs(
        [
            mlflow_store.dataset_input(
                f"{splits.name}/{split}",
                splits.split_digest(split),
                source_type,
                splits.uri,
                splits.profile(split),
                split,
            )
            for split, _ in splits.items()
        ]
    )
    run_logger.log_metrics({f"data/{s}_proteins": n for s, n in manifest["counts"].items()})
    if splits.split_info:  # how the homology split was made, as the run's record of it
        info = splits.split_info
        run_logger.log_metrics(
            {
                f"data/split/{k}": info[k]
                for k in (
                    "components",
                    "largest_component",
                    "largest_component_share",
                    "edges",
                    "entry_edges",
                    "seconds",
                )
                if k in info
            }
        )
        run_logger.set_tags(
            {
                "data.split.method": f"mmseqs2 {info.get('mmseqs_version', '')[:12]} components",
                "data.split.search": str(info.get("search", ""))[:500],
                "data.split.identity": str(info.get("identity")),
                "data.split.coverage": str(info.get("coverage")),
            }
        )
    run_logger.log_metrics(
        {
            "data/skipped": len(splits.skips),
            **{f"data/skipped/{reason}": n for reason, n in splits.skip_counts().items()},
        }
    )
    if splits.skips:
        artifacts.skips_table(splits.skips).to_csv(workdir / "skipped.csv", index=False)
        run_logger.log_artifact(workdir / "skipped.csv", "data")
        log.warning(
            "data: skipped %d input(s): %s (see data/skipped.csv on the run)", len(splits.skips), splits.skip_counts()
        )


def _build_model(cfg: DictConfig, features, strategy) -> keras.Model:
    with strategy.scope():  # batch_size stays global: each replica sees batch / replicas
        model = model_from_config(cfg, features.channels)
        model.compile(
            optimizer=instantiate(cfg.optimizer),
            loss=instantiate(cfg.loss),
            metrics=[MaskedRMSE()],
            jit_compile=bool(cfg.trainer.jit_compile),
        )
    return model


def _train_clusters(cfg: DictConfig, splits, run_logger):
    """Cluster labels of the training chains for ``data.sampling=cluster`` (None for ``chain``)."""
    sampling = str(cfg.data.get("sampling") or "chain")
    if sampling not in ("chain", "cluster"):
        raise ValueError(f"data.sampling: expected chain or cluster, got {sampling!r}")
    if sampling == "chain":
        return None
    split = cfg.data.get("split") or {}
    cache_dir = cfg.data.get("cache_dir")
    labels = clusters.train_clusters(
        splits.train,
        float(split.get("identity", homology.DEFAULT_IDENTITY)),
        float(split.get("coverage", homology.DEFAULT_COVERAGE)),
        Path(str(cache_dir)).expanduser() if cache_dir else folder.default_cache_dir(),
    )
    run_logger.log_metrics({"data/train_clusters": len(np.unique(labels))})
    return labels


def _train(
    cfg: DictConfig, model, splits, features, run_logger, checkpoints: Path, resume: dict | None, job_started: float
):
    """``fit`` with early stopping, a checkpoint per epoch and per-epoch MLflow logging (after the
    checkpoint, so a resumed run never logs an epoch twice)."""
    crop, batch, epochs = int(cfg.data.crop_size), int(cfg.trainer.batch_size), int(cfg.trainer.epochs)
    first = int(resume["epochs_done"]) if resume else 0
    if resume and resume.get("stopped"):
        epochs = first  # early stopping had ended training: nothing left to fit
    stopper = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=int(cfg.trainer.patience), restore_best_weights=True
    )
    checkpoint = EpochCheckpoint(checkpoints, stopper, resume)
    epoch_logger = MlflowEpochLogger(run_logger)
    if resume:
        epoch_logger.restore(resume["logs"])
        run_logger.log_metrics({"train/resumed_from_epoch": first})
        log.info("resuming from the checkpoint after epoch %d of %d (%s)", first, epochs, resume["dir"])
    labels = _train_clusters(cfg, splits, run_logger)
    steps = pipeline.epoch_steps(len(splits.train), batch, labels, cfg.trainer.get("steps_per_epoch"))
    train_ds = pipeline.train_dataset(
        splits.train,
        crop,
        batch,
        features,
        int(cfg.seed),
        epochs=epochs,
        first_epoch=first,
        clusters=labels,
        steps=steps,
    )
    val_ds = pipeline.eval_dataset(splits.val, crop, batch, features)
    model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=epochs,
        initial_epoch=first,
        steps_per_epoch=steps,
        callbacks=[FirstStepTimer(run_logger, job_started), stopper, checkpoint, epoch_logger],
        verbose=int(cfg.trainer.verbose),
        shuffle=False,
    )
    return stopper, epoch_logger.history


def _log_results(per_protein, sample, history, run_logger, workdir: Path) -> None:
    per_protein.to_csv(workdir / "test_per_protein.csv", index=False)
    run_logger.log_artifact(workdir / "test_per_protein.csv", "evaluation")
    np.savez_compressed(workdir / "test_predictions.npz", **sample)
    run_logger.log_artifact(workdir / "test_predictions.npz", "evaluation")
    artifacts.loss_curve(history, workdir / "loss_curve.png", title=run_logger.name)
    run_logger.log_artifact(workdir / "loss_curve.png", "plots")
