"""A Hydra callback that gives every multirun one MLflow parent run.

The parent run's id is written to ``<sweep dir>/mlflow_parent_run_id`` so that jobs — in this
process (basic launcher) or in other processes and machines (joblib, submitit, ray) — attach
their child runs to it.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from protstruct.tracking import mlflow_store

log = logging.getLogger(__name__)
PARENT_FILE = "mlflow_parent_run_id"
JOBS_FILE = "jobs.jsonl"
REUSED_TAG_PREFIX = "protstruct.reused_by."  # + parent run id: a FINISHED run that stood in for a job


def record_job(sweep_dir, num, name: str, status: str, run_id: str | None, test_rmse: float | None = None):
    """Append one job's outcome to the sweep's summary (one short line: atomic on POSIX appends)."""
    if sweep_dir is None:
        return
    line = json.dumps({"job": num, "name": name, "status": status, "run_id": run_id, "test_rmse": test_rmse})
    with open(Path(sweep_dir) / JOBS_FILE, "a") as fh:
        fh.write(line + "\n")


def job_summary(sweep_dir) -> list[dict]:
    path = Path(sweep_dir) / JOBS_FILE
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    return sorted(rows, key=lambda r: (r["job"] is None, r["job"]))


def parent_run_id(sweep_dir: str | Path) -> str | None:
    path = Path(sweep_dir) / PARENT_FILE
    return path.read_text().strip() if path.is_file() else None


class MlflowSweepCallback(Callback):
    def __init__(self):
        self._logger = None

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        if config.get("dry_run"):
            return
        tracking = config.tracking
        client = mlflow_store.client_for(tracking.uri)
        exp_id = mlflow_store.ensure_experiment(client, tracking.experiment, tracking.artifact_root)
        sweep_dir = Path(config.hydra.sweep.dir).resolve()
        overrides = list(config.hydra.overrides.task)
        study = config.get("study_name")
        name = study or "sweep"
        self._logger = mlflow_store.RunLogger.start(
            client, exp_id, f"{name} {sweep_dir.name}",
            tags={
                "protstruct.role": "sweep",
                "protstruct.study": study or "",
                "protstruct.sweep_dir": str(sweep_dir),
                "protstruct.overrides": " ".join(overrides),
                "protstruct.git_commit": mlflow_store.git_commit(Path(__file__).resolve().parents[2]),
            },
        )
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / PARENT_FILE).write_text(self._logger.run_id)
        log.info("MLflow parent run %s (experiment %r, %s)", self._logger.run_id, tracking.experiment, tracking.uri)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        rows = job_summary(config.hydra.sweep.dir)
        if rows:
            width = max(len(r["name"]) for r in rows)
            lines = [f"  #{r['job']:<3} {r['status']:<8} {r['name']:<{width}}  run {r['run_id'] or '-'}"
                     + (f"  test/rmse={r['test_rmse']:.4g}" if r.get("test_rmse") is not None else "")
                     for r in rows]
            counts = {s: sum(r["status"] == s for r in rows) for s in sorted({r["status"] for r in rows})}
            print(f"sweep summary ({counts}):\n" + "\n".join(lines), flush=True)
        if self._logger is None:
            return
        client, run_id = self._logger.client, self._logger.run_id
        exp = [client.get_run(run_id).info.experiment_id]
        children = [r for tag in (f"`{mlflow_store.PARENT_TAG}`", f"`{REUSED_TAG_PREFIX}{run_id}`")
                    for r in client.search_runs(exp, f"tags.{tag} = '{run_id if 'parent' in tag else '1'}'",
                                                max_results=10000)]
        statuses = [c.info.status for c in children]
        counts = {s: statuses.count(s) for s in sorted(set(statuses))}
        self._logger.set_tags({"protstruct.jobs": str(len(children)),
                               "protstruct.job_status": ", ".join(f"{k}={v}" for k, v in counts.items())})
        self._logger.finish("FINISHED" if all(s == "FINISHED" for s in statuses) else "FAILED")
        log.info("sweep finished: %d job runs (%s) under parent run %s", len(children), counts, run_id)
