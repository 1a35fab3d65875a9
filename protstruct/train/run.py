"""One job: config → data → model → fit → test metrics → MLflow. Called by ``run.py``."""
from __future__ import annotations

import json
import logging
import math
import tempfile
from pathlib import Path

import keras
import numpy as np
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from protstruct.config import project_root
from protstruct.data import pipeline
from protstruct.models.model import build_model
from protstruct.tracking import artifacts, mlflow_store, sweep
from protstruct.train import evaluate
from protstruct.train.callbacks import MlflowEpochLogger
from protstruct.train.losses import MaskedRMSE

log = logging.getLogger(__name__)
NAME_EXCLUDES = ("study=", "tracking.", "hydra.", "debug=")


def _job_context() -> dict:
    hc = HydraConfig.get()
    overrides = list(hc.overrides.task)
    name = ",".join(o for o in overrides if not o.startswith(NAME_EXCLUDES)) or "defaults"
    multirun = hc.mode == RunMode.MULTIRUN
    return {
        "name": name,
        "overrides": overrides,
        "choices": dict(hc.runtime.choices),
        "output_dir": Path(hc.runtime.output_dir),
        "log_file": Path(hc.runtime.output_dir) / f"{hc.job.name}.log",
        "parent": sweep.parent_run_id(hc.sweep.dir) if multirun else None,
        "multirun": multirun,
    }


def fit_and_evaluate(cfg: DictConfig, run_logger, workdir: Path) -> dict[str, float]:
    keras.backend.clear_session()  # jobs of one multirun share this process: drop the last model
    keras.utils.set_random_seed(int(cfg.seed))
    splits = instantiate(cfg.data.source).require_all_splits()
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

    model = build_model(instantiate(cfg.backbone.build), instantiate(cfg.decoder), crop,
                        features.channels, int(cfg.backbone.output_stride), float(cfg.dropout.rate))
    run_logger.log_metrics({"model/params": model.count_params()})
    model.compile(optimizer=instantiate(cfg.optimizer), loss=instantiate(cfg.loss),
                  metrics=[MaskedRMSE()], jit_compile=bool(cfg.trainer.jit_compile))
    epoch_logger = MlflowEpochLogger(run_logger)
    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=int(cfg.trainer.patience),
                                            restore_best_weights=True)
    model.fit(train_ds, validation_data=val_ds, epochs=int(cfg.trainer.epochs),
              callbacks=[epoch_logger, stopper], verbose=int(cfg.trainer.verbose), shuffle=False)

    # test metrics from the restored best-validation weights, per protein on the fixed windows
    pred = model.predict(test_ds, verbose=0)
    dist, pair = pipeline.eval_targets(splits.test, crop)
    sse, n_pairs = evaluate.per_protein(pred, dist, pair)
    test = evaluate.summarize(sse, n_pairs)
    profile = evaluate.separation_profile(splits.train, crop)
    base_pred = np.broadcast_to(evaluate.separation_baseline(profile, crop), dist.shape)
    base_sse, _ = evaluate.per_protein(base_pred, dist, pair)
    baseline = evaluate.summarize(base_sse, n_pairs)
    metrics = {f"test/{k}": v for k, v in test.items()}
    metrics.update({f"baseline/test_{k}": v for k, v in baseline.items()})
    metrics["train/best_epoch"] = stopper.best_epoch
    metrics["train/epochs_run"] = len(epoch_logger.history)
    run_logger.log_metrics(metrics)

    per_protein = artifacts.per_protein_table(splits.test, sse, n_pairs, base_sse)
    per_protein.to_csv(workdir / "test_per_protein.csv", index=False)
    run_logger.log_artifact(workdir / "test_per_protein.csv", "evaluation")
    artifacts.loss_curve(epoch_logger.history, workdir / "loss_curve.png", title=run_logger.name)
    run_logger.log_artifact(workdir / "loss_curve.png", "plots")
    if cfg.tracking.log_model:
        model.save(workdir / "model.keras")
        run_logger.log_artifact(workdir / "model.keras", "model")
    return metrics


def run(cfg: DictConfig) -> float:
    ctx = _job_context()
    client = mlflow_store.client_for(cfg.tracking.uri)
    exp_id = mlflow_store.ensure_experiment(client, cfg.tracking.experiment, cfg.tracking.artifact_root)
    choices = ctx["choices"]
    run_logger = mlflow_store.RunLogger.start(
        client, exp_id, ctx["name"], parent_run_id=ctx["parent"],
        tags={"protstruct.role": "job", "protstruct.git_commit": mlflow_store.git_commit(project_root()),
              "protstruct.output_dir": str(ctx["output_dir"].resolve()),
              "protstruct.overrides": " ".join(ctx["overrides"]),
              "protstruct.study": cfg.get("study_name") or "",
              **{f"protstruct.{g}": choices.get(g, "") for g in
                 ("backbone", "decoder", "dropout", "optimizer", "loss", "data", "features")}},
    )
    resolved = OmegaConf.to_container(cfg, resolve=True)
    run_logger.log_params({**mlflow_store.flatten(resolved), "overrides": " ".join(ctx["overrides"])})
    run_logger.log_text(OmegaConf.to_yaml(resolved), "config/resolved.yaml")
    log.info("job %s → MLflow run %s", ctx["name"], run_logger.run_id)
    status, metrics = "FAILED", {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            metrics = fit_and_evaluate(cfg, run_logger, Path(tmp))
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except Exception as exc:
        run_logger.set_tags({"protstruct.error": f"{type(exc).__name__}: {exc}"[:5000]})
        log.exception("job %s failed", ctx["name"])
        if not ctx["multirun"]:
            raise
    finally:
        artifacts.log_hydra_files(run_logger, ctx["output_dir"], ctx["log_file"])
        run_logger.finish(status)
        summary = " ".join(f"{k}={metrics[k]:.4g}" for k in ("test/rmse", "test/mse", "baseline/test_rmse")
                           if k in metrics)
        log.info("[%s] %s %s run_id=%s", status.lower(), ctx["name"], summary, run_logger.run_id)
    return _best_val(run_logger)


def _best_val(run_logger) -> float:
    """The job's return value, which Optuna-style sweepers minimise: the best val/rmse."""
    history = run_logger.client.get_metric_history(run_logger.run_id, "val/rmse")
    return min((m.value for m in history), default=math.nan)
