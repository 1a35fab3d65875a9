"""One job's lifecycle around training: MLflow run, resume/skip, dry run, failure and signals.

Imported by ``run.py`` before TensorFlow: thread settings must precede TensorFlow's start.
"""
from __future__ import annotations

import logging
import math
import os
import signal
import sys
import tempfile
import traceback
from importlib import metadata
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from protstruct.config import project_root
from protstruct.tracking import artifacts, mlflow_store, resume, sweep
from protstruct.train import device

log = logging.getLogger(__name__)
NAME_EXCLUDES = ("study=", "tracking.", "hydra.", "debug=", "rerun=", "dry_run=")
VERSIONED = ("tensorflow", "keras", "mlflow", "hydra-core", "numpy", "pandas", "gemmi", "protstruct")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that no ``except Exception`` swallows it."""


def _raise_terminated(signum, frame):
    raise Terminated(f"signal {signum}")


def _swept_keys(sweep_dir: Path) -> set[str]:
    """Keys a multirun varies: comma lists / sweep functions on its command line, sweeper params."""
    path = sweep_dir / "multirun.yaml"
    if not path.is_file():
        return set()
    hydra_cfg = OmegaConf.load(path).hydra
    keys = {o.split("=", 1)[0].lstrip("+~") for o in hydra_cfg.overrides.task
            if "=" in o and ("," in o.split("=", 1)[1] or "(" in o.split("=", 1)[1])}
    return keys | set((hydra_cfg.sweeper.get("params") or {}).keys())


def _run_name(overrides: list[str], swept: set[str]) -> str:
    """A job's name from its overrides: the swept ones in a multirun, else all but plumbing."""
    named = [o for o in overrides if o.split("=", 1)[0] in swept] if swept else \
        [o for o in overrides if not o.startswith(NAME_EXCLUDES)]
    return ",".join(named) or "defaults"


def _context() -> dict:
    hc = HydraConfig.get()
    overrides = list(hc.overrides.task)
    multirun = hc.mode == RunMode.MULTIRUN
    n_jobs = hc.launcher.get("n_jobs") if multirun else None
    return {
        "name": _run_name(overrides, _swept_keys(Path(hc.sweep.dir)) if multirun else set()),
        "num": hc.job.get("num"),
        "overrides": overrides,
        "choices": dict(hc.runtime.choices),
        "output_dir": Path(hc.runtime.output_dir),
        "log_file": Path(hc.runtime.output_dir) / f"{hc.job.name}.log",
        "sweep_dir": Path(hc.sweep.dir) if multirun else None,
        "parent": sweep.parent_run_id(hc.sweep.dir) if multirun else None,
        "multirun": multirun,
        "workers": 1 if not n_jobs else (n_jobs if n_jobs > 0 else os.cpu_count() or 1),
    }


def _versions() -> dict[str, str]:
    out = {}
    for pkg in VERSIONED:
        try:
            out[f"protstruct.version.{pkg}"] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _start_run(client, exp_id: str, ctx: dict, cfg: DictConfig, tags: dict) -> mlflow_store.RunLogger:
    choices = ctx["choices"]
    return mlflow_store.RunLogger.start(
        client, exp_id, ctx["name"], parent_run_id=ctx["parent"],
        tags={"protstruct.role": "job", "protstruct.git_commit": mlflow_store.git_commit(project_root()),
              "protstruct.output_dir": str(ctx["output_dir"].resolve()),
              "protstruct.overrides": " ".join(ctx["overrides"]),
              "protstruct.command": " ".join(sys.argv),
              "protstruct.study": cfg.get("study_name") or "",
              "protstruct.worker_pid": str(os.getpid()),
              **_versions(),
              **{f"protstruct.{g}": choices.get(g, "") for g in
                 ("backbone", "decoder", "dropout", "optimizer", "loss", "data", "features",
                  "attention", "target", "variant")},
              **tags},
    )


def _reuse(client, done, ctx: dict) -> float:
    """A FINISHED run with the same key stands in for this job: say so, and link it to this sweep
    so that the sweep's report still sees every job."""
    commit = mlflow_store.git_commit(project_root())
    old_commit = done.data.tags.get("protstruct.git_commit", "unknown")
    if old_commit != commit:
        log.warning("job %s: the FINISHED run %s was made at git commit %s, this checkout is %s; "
                    "pass rerun=true to train again with this code", ctx["name"], done.info.run_id,
                    old_commit, commit)
    if ctx["parent"]:
        client.set_tag(done.info.run_id, f"{sweep.REUSED_TAG_PREFIX}{ctx['parent']}", "1")
    log.info("[skipped] %s: identical config and data already FINISHED as run %s", ctx["name"], done.info.run_id)
    sweep.record_job(ctx["sweep_dir"], ctx["num"], ctx["name"], "skipped", done.info.run_id,
                     done.data.metrics.get("test/rmse"))
    return _best_val(client, done.info.run_id)


def run_job(cfg: DictConfig) -> float:
    ctx = _context()
    threads = device.set_cpu_threads(ctx["workers"])
    previous_handler = signal.signal(signal.SIGTERM, _raise_terminated)
    client = exp_id = run_logger = None
    status, metrics = "FAILED", {}
    try:
        device.enable_memory_growth()  # before anything (a TFRecord parse) touches a GPU
        client = mlflow_store.client_for(cfg.tracking.uri)
        exp_id = mlflow_store.ensure_experiment(client, cfg.tracking.experiment, cfg.tracking.artifact_root)
        splits = instantiate(cfg.data.source)
        resolved = OmegaConf.to_container(cfg, resolve=True)
        key = resume.job_key(resolved, splits.fingerprint())
        done = resume.finished_run(client, exp_id, key)
        if cfg.dry_run:
            plan = f"skip (FINISHED run {done.info.run_id})" if done and not cfg.rerun else "run"
            print(f"[dry-run] #{ctx['num']} {ctx['name']}: would {plan}", flush=True)
            sweep.record_job(ctx["sweep_dir"], ctx["num"], ctx["name"], "dry-run:" + plan, None)
            return math.nan
        if done and not cfg.rerun:
            return _reuse(client, done, ctx)
        run_logger = _start_run(client, exp_id, ctx, cfg, {resume.KEY_TAG: key})
        run_logger.log_params({**mlflow_store.flatten(resolved), "overrides": " ".join(ctx["overrides"])})
        run_logger.log_text(OmegaConf.to_yaml(resolved), "config/resolved.yaml")
        log.info("job %s → MLflow run %s%s", ctx["name"], run_logger.run_id,
                 f" ({threads} CPU threads)" if threads else "")
        from protstruct.train.fit import fit_and_evaluate  # TensorFlow's training machinery

        with tempfile.TemporaryDirectory() as tmp:
            metrics = fit_and_evaluate(cfg, splits, run_logger, Path(tmp))
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        if ctx["parent"] and client is not None:
            client.set_terminated(ctx["parent"], "KILLED")
        raise
    except Exception as exc:
        log.error("job %s failed: %s: %s", ctx["name"], type(exc).__name__, exc)
        if run_logger is None and exp_id is not None:  # failed before its run existed: record one
            run_logger = _start_run(client, exp_id, ctx, cfg, {})
        if run_logger is not None:
            run_logger.set_tags({"protstruct.error": f"{type(exc).__name__}: {exc}"[:5000]})
            run_logger.log_text(traceback.format_exc(), "error.txt")
        else:
            sweep.record_job(ctx["sweep_dir"], ctx["num"], ctx["name"], "failed", None)
        if not ctx["multirun"]:
            raise
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        if run_logger is not None:
            try:
                artifacts.log_hydra_files(run_logger, ctx["output_dir"], ctx["log_file"])
            finally:
                run_logger.finish(status)
            word = {"FINISHED": "ok", "FAILED": "failed", "KILLED": "killed"}[status]
            sweep.record_job(ctx["sweep_dir"], ctx["num"], ctx["name"], word, run_logger.run_id,
                             metrics.get("test/rmse"))
            summary = " ".join(f"{k}={metrics[k]:.4g}" for k in ("test/rmse", "test/mse", "baseline/test_rmse")
                               if k in metrics)
            log.info("[%s] %s %s run_id=%s", word, ctx["name"], summary, run_logger.run_id)
    return _best_val(client, run_logger.run_id) if status == "FINISHED" else math.nan


def _best_val(client, run_id: str) -> float:
    """The job's return value, which Optuna-style sweepers minimise: the best finite val/rmse."""
    values = [m.value for m in client.get_metric_history(run_id, "val/rmse") if math.isfinite(m.value)]
    return min(values, default=math.nan)
