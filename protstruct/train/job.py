"""One job's lifecycle around training: MLflow run, resume/skip, dry run, failure and signals.

Imported by ``run.py`` before TensorFlow: thread settings must precede TensorFlow's start.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from protstruct import console
from protstruct.config import project_root
from protstruct.tracking import ledger, liveness, mlflow_store, resume, sweep
from protstruct.tracking.redact import redact, redact_tree
from protstruct.train import context, device, outcome

log = logging.getLogger(__name__)
VERSIONED = ("tensorflow", "keras", "mlflow", "hydra-core", "numpy", "pandas", "gemmi", "protstruct")


def _raise_terminated(signum, frame):
    raise sweep.Interrupted(f"signal {signum}")


def _versions() -> dict[str, str]:
    out = {}
    for pkg in VERSIONED:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[f"protstruct.version.{pkg}"] = metadata.version(pkg)
    return out


def _start_run(client, exp_id: str, ctx: dict, cfg: DictConfig, tags: dict) -> mlflow_store.RunLogger:
    choices = ctx["choices"]
    return mlflow_store.RunLogger.start(
        client,
        exp_id,
        ctx["name"],
        parent_run_id=ctx["parent"],
        tags={
            "protstruct.role": "job",
            "protstruct.git_commit": mlflow_store.git_commit(project_root()),
            **mlflow_store.source_tags(sys.argv[0], mlflow_store.git_commit(project_root())),
            **liveness.process_tags(),
            **({liveness.JOB_NUM_TAG: str(ctx["num"])} if ctx["num"] is not None else {}),
            "protstruct.output_dir": str(ctx["output_dir"].resolve()),
            "protstruct.overrides": " ".join(ctx["overrides"]),
            "protstruct.command": " ".join(sys.argv),
            "protstruct.study": cfg.get("study_name") or "",
            "protstruct.worker_pid": str(os.getpid()),
            **_versions(),
            **context.engine_tags(),
            **{
                f"protstruct.{g}": choices.get(g, "")
                for g in (
                    "backbone",
                    "decoder",
                    "dropout",
                    "optimizer",
                    "loss",
                    "data",
                    "features",
                    "attention",
                    "target",
                    "variant",
                )
            },
            **tags,
        },
    )


def _reuse(client, done, ctx: dict) -> float:
    """A FINISHED run with the same key stands in for this job: say so, and link it to this sweep
    so that the sweep's report still sees every job."""
    changed = {
        k.rsplit(".", 1)[-1]: (v, now)
        for k, now in _versions().items()
        if (v := done.data.tags.get(k, "unknown")) != now
    }
    if changed:
        log.warning(
            "job %s: the FINISHED run %s was made with other library versions (%s); its results "
            "are reused — pass rerun=true to train again",
            ctx["name"],
            done.info.run_id,
            ", ".join(f"{pkg} {old} → {new}" for pkg, (old, new) in sorted(changed.items())),
        )
    if ctx["parent"]:
        client.set_tag(done.info.run_id, f"{ledger.REUSED_TAG_PREFIX}{ctx['parent']}", "1")
    log.info("[skipped] %s: identical config, data and code already FINISHED as run %s", ctx["name"], done.info.run_id)
    ledger.record(
        client, ctx["parent"], ctx["num"], ctx["name"], "skipped", done.info.run_id, done.data.metrics.get("test/rmse")
    )
    return outcome.best_val_rmse(client, done.info.run_id)


def _key(cfg: DictConfig, resolved: dict, splits) -> str:
    import protstruct

    code = resume.code_fingerprint(Path(protstruct.__file__).resolve().parent, project_root() / "conf")
    return resume.job_key(resolved, splits.fingerprint(), code)


@dataclass
class _Tracking:
    """What the failure path needs of a job, whatever step it failed in."""

    client: Any = None
    exp_id: str | None = None
    run_logger: Any = None

    def experiment_id(self) -> str:
        """The job's experiment, which every step after connecting to the store has."""
        if self.exp_id is None:
            raise RuntimeError("no MLflow experiment yet: the job has not connected to its store")
        return self.exp_id


def run_job(cfg: DictConfig) -> float:
    job_started = time.perf_counter()
    ctx = context.job_context()
    threads = device.set_cpu_threads(ctx["workers"], context.engine_cpus())
    console.import_tensorflow()  # after the thread settings, which only a fresh TensorFlow reads
    previous_handler = signal.signal(signal.SIGTERM, _raise_terminated)
    tracking = _Tracking()
    status, metrics = "FAILED", {}
    try:
        splits, resolved, key, load_seconds = _connect_and_load(cfg, tracking)
        done = resume.finished_run(tracking.client, tracking.experiment_id(), key)
        if cfg.dry_run:
            return _plan_only(cfg, ctx, done)
        if done and not cfg.rerun:
            return _reuse(tracking.client, done, ctx)
        checkpoints, resumed = _open_run(cfg, ctx, tracking, key, resolved)
        _log_start(ctx, tracking.run_logger, threads, load_seconds)
        ctx["monitor"] = _system_metrics(cfg, tracking.run_logger, resumed=resumed)
        metrics = _train(cfg, splits, tracking.run_logger, checkpoints, resumed, job_started)
        status = "FINISHED"
        if not cfg.trainer.keep_checkpoints:
            shutil.rmtree(checkpoints, ignore_errors=True)
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except Exception as exc:
        tracking.run_logger = _record_failure(exc, tracking.client, tracking.exp_id, tracking.run_logger, ctx, cfg)
        if not ctx["multirun"]:  # exit non-zero without Hydra echoing the raw command line
            raise SystemExit(1) from None
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        outcome.finish_run(tracking.client, tracking.run_logger, status, metrics, ctx)
    return outcome.best_val_rmse(tracking.client, tracking.run_logger.run_id) if status == "FINISHED" else math.nan


def _connect_and_load(cfg: DictConfig, tracking: _Tracking):
    """The store (reaping runs whose process is gone), the data, and the job's resume key."""
    device.enable_memory_growth()  # before anything (a TFRecord parse) touches a GPU
    tracking.client = mlflow_store.client_for(cfg.tracking.uri)
    liveness.reap_vanished(tracking.client)
    tracking.exp_id = mlflow_store.ensure_experiment(
        tracking.client, cfg.tracking.experiment, cfg.tracking.artifact_root
    )
    load_started = time.perf_counter()
    splits = instantiate(cfg.data.source)
    load_seconds = time.perf_counter() - load_started
    resolved = OmegaConf.to_container(cfg, resolve=True)
    if not isinstance(resolved, dict):  # a DictConfig always resolves to a dict
        raise TypeError(f"the job's config resolved to {type(resolved).__name__}, not a mapping")
    return splits, resolved, _key(cfg, resolved, splits), load_seconds


def _plan_only(cfg: DictConfig, ctx: dict, done) -> float:
    """dry_run=true: say whether this job would train or reuse a FINISHED run, and record it."""
    reused = done.info.run_id if done and not cfg.rerun else None
    print(
        f"[dry-run] #{ctx['num']} {ctx['name']}: would {f'skip (FINISHED run {reused})' if reused else 'run'}",
        flush=True,
    )
    sweep.record_dry_run(ctx["sweep_dir"], ctx["token"], ctx["num"], ctx["name"], reused)
    return math.nan


def _open_run(cfg: DictConfig, ctx: dict, tracking: _Tracking, key: str, resolved: dict) -> tuple[Path, bool]:
    """Continue this job's stopped run in place, or start a new one; → (checkpoint folder, resumed)."""
    stopped = (
        None
        if cfg.rerun
        else resume.interrupted_run(tracking.client, tracking.experiment_id(), key, liveness.owner_alive)
    )
    if stopped is not None:
        tracking.run_logger = _reopen(tracking.client, stopped, ctx)
        return Path(stopped.data.tags[resume.CHECKPOINT_TAG]), True
    checkpoints = _checkpoint_root(cfg, ctx) / key
    tracking.run_logger = _start_run(
        tracking.client,
        tracking.experiment_id(),
        ctx,
        cfg,
        {resume.KEY_TAG: key, resume.KEY_VERSION_TAG: resume.KEY_VERSION, resume.CHECKPOINT_TAG: str(checkpoints)},
    )
    _log_config(tracking.run_logger, resolved, ctx)
    return checkpoints, False


def _log_start(ctx: dict, run_logger, threads: int | None, load_seconds: float) -> None:
    log.info("job %s → MLflow run %s%s", ctx["name"], run_logger.run_id, f" ({threads} CPU threads)" if threads else "")
    run_logger.log_metrics({"time/data_load_seconds": load_seconds})
    if threads:
        run_logger.set_tags({"protstruct.cpu_threads": str(threads)})


def _train(cfg: DictConfig, splits, run_logger, checkpoints: Path, resumed: bool, job_started: float) -> dict:
    from protstruct.train.checkpoint import latest
    from protstruct.train.fit import fit_and_evaluate  # TensorFlow's training machinery

    with tempfile.TemporaryDirectory() as tmp:
        return fit_and_evaluate(
            cfg, splits, run_logger, Path(tmp), checkpoints, latest(checkpoints) if resumed else None, job_started
        )


def _checkpoint_root(cfg: DictConfig, ctx: dict) -> Path:
    if cfg.trainer.get("checkpoint_dir"):
        return Path(str(cfg.trainer.checkpoint_dir)).expanduser().resolve()
    return (ctx["sweep_dir"] or ctx["output_dir"]).resolve() / "checkpoints"


def _reopen(client, run, ctx: dict) -> mlflow_store.RunLogger:
    """Continue a stopped run in place: RUNNING again, owned by this process, linked to this sweep
    (its own sweep's ledger is brought up to date when it ends)."""
    run_id, tags = run.info.run_id, run.data.tags
    client.update_run(run_id, status="RUNNING")
    if "protstruct.error" in tags:
        client.delete_tag(run_id, "protstruct.error")
    logger = mlflow_store.RunLogger(client, run_id, run.info.run_name or ctx["name"])
    logger.set_tags(
        {
            **liveness.process_tags(),
            **context.engine_tags(),
            resume.RESUMED_TAG: f"{int(tags.get(resume.RESUMED_TAG, '0') or 0) + 1}",
        }
    )
    if ctx["parent"] and ctx["parent"] != tags.get(mlflow_store.PARENT_TAG):
        client.set_tag(run_id, f"{ledger.REUSED_TAG_PREFIX}{ctx['parent']}", "1")
    ctx["earlier_sweep"] = (tags.get(mlflow_store.PARENT_TAG), tags.get(liveness.JOB_NUM_TAG))
    log.info("[resumed] %s: continuing stopped run %s (%s)", ctx["name"], run_id, run.info.status)
    return logger


def _system_metrics(cfg: DictConfig, run_logger, resumed: bool):
    """MLflow's own system-metrics sampler on the job's run (explicit URI, no active run)."""
    if not cfg.tracking.get("system_metrics"):
        return None
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(
        run_logger.run_id,
        sampling_interval=float(cfg.tracking.system_metrics_interval),
        resume_logging=resumed,
        tracking_uri=run_logger.client.tracking_uri,
    )
    monitor.start()
    return monitor


def _log_config(run_logger, resolved: dict, ctx: dict) -> None:
    # a study's ``report`` block (e.g. the original report's published numbers) is not a setting of the job
    clean = redact_tree({k: v for k, v in resolved.items() if k != "report"})
    choices = {f"choice.{g}": v for g, v in ctx["choices"].items() if not g.startswith("hydra") and v is not None}
    run_logger.log_params({**mlflow_store.flatten(clean), **choices, "overrides": " ".join(ctx["overrides"])})
    run_logger.log_text(OmegaConf.to_yaml(clean), "config/resolved.yaml")


def _record_failure(exc: Exception, client, exp_id, run_logger, ctx: dict, cfg: DictConfig):
    """The error on the job's run (one is created when the job failed before its run existed)."""
    message = redact(f"{type(exc).__name__}: {exc}")
    log.error("job %s failed: %s", ctx["name"], message)
    if not ctx["multirun"]:
        print(redact(traceback.format_exc()), file=sys.stderr)
    if run_logger is None and exp_id is not None:
        run_logger = _start_run(client, exp_id, ctx, cfg, {})
    if run_logger is not None:
        run_logger.set_tags({"protstruct.error": message[:5000]})
        run_logger.log_text(traceback.format_exc(), "error.txt")
    elif client is not None:
        ledger.record(client, ctx["parent"], ctx["num"], ctx["name"], "failed", None)
    return run_logger
