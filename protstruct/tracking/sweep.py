"""The Hydra callback that gives every multirun one MLflow parent run, and makes it end.

The parent's id reaches every job through Hydra itself: an ``hydra.job.env_set`` override added
to the sweep's config, which each launcher (basic, joblib, submitit, Ray) recomposes into every
job's config — no file relative to the launcher's directory. The parent records how many jobs
the sweep launches; jobs record their outcome on it (:mod:`protstruct.tracking.ledger`); it ends
FINISHED only if every job did, KILLED on SIGTERM/SIGINT, FAILED otherwise — also when the
sweep dies of an exception that escaped a job.
"""

from __future__ import annotations

import atexit
import json
import logging
import signal
import sys
import uuid
from pathlib import Path

from hydra.experimental.callback import Callback
from hydra.types import RunMode
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, read_write

from protstruct.config import project_root
from protstruct.tracking import ledger, liveness, mlflow_store
from protstruct.tracking.redact import redact, redact_file

log = logging.getLogger(__name__)
PARENT_ENV = "PROTSTRUCT_PARENT_RUN_ID"
SWEPT_ENV = "PROTSTRUCT_SWEPT_KEYS"
TOKEN_ENV = "PROTSTRUCT_SWEEP_TOKEN"
DRY_RUN_FILE = "dry-run-{token}.jsonl"


class Interrupted(KeyboardInterrupt):
    """SIGTERM (or SIGINT) to a protstruct process, raised like Ctrl-C so no ``except Exception``
    swallows it."""


def planned_jobs(config: DictConfig) -> tuple[list[list[str]] | None, set[str]]:
    """(each job's overrides, the swept keys) of a grid sweep; (None, keys) for other sweepers."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    sweeper = config.hydra.sweeper
    params = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
    parsed = OverridesParser.create().parse_overrides([*params, *config.hydra.overrides.task])
    swept = {o.key_or_group for o in parsed if o.is_sweep_override()} | set((sweeper.get("params") or {}).keys())
    if not str(sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return None, swept
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper  # what the sweeper itself runs

    batches = BasicSweeper.split_arguments(parsed, None)
    return [list(job) for batch in batches for job in batch], swept


def job_name(overrides: list[str], swept: set[str], plumbing: tuple[str, ...]) -> str:
    """A job's name: its swept overrides in a multirun, else all but plumbing."""
    named = (
        [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in swept]
        if swept
        else [o for o in overrides if not o.startswith(plumbing)]
    )
    return redact(",".join(named)) or "defaults"


def record_dry_run(sweep_dir, token: str | None, num, name: str, reused_run_id: str | None) -> None:
    """A dry run has no parent run: its plan goes to a file of this sweep's own."""
    if sweep_dir is None or not token:
        return
    plan = "would-skip" if reused_run_id else "would-run"
    line = json.dumps({"job": num, "name": name, "status": plan, "run_id": reused_run_id})
    with open(Path(sweep_dir) / DRY_RUN_FILE.format(token=token), "a") as fh:
        fh.write(line + "\n")


def _summary_rows(client, parent_run_id, sweep_dir, token) -> list[dict]:
    if parent_run_id:
        state = ledger.read(client, client.get_run(parent_run_id))
        return [{"job": n, **o} for n, o in sorted(state.outcomes.items())]
    path = Path(sweep_dir) / DRY_RUN_FILE.format(token=token)
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    return sorted(rows, key=lambda r: (r["job"] is None, r["job"]))


def print_summary(rows: list[dict]) -> None:
    if not rows:
        return
    width = max(len(r["name"]) for r in rows)
    lines = [
        f"  #{r['job']:<3} {r['status']:<8} {r['name']:<{width}}  run {r['run_id'] or '-'}"
        + (f"  test/rmse={r['test_rmse']:.4g}" if r.get("test_rmse") is not None else "")
        for r in rows
    ]
    counts = {s: sum(r["status"] == s for r in rows) for s in sorted({r["status"] for r in rows})}
    print(redact(f"sweep summary ({counts}):\n" + "\n".join(lines)), flush=True)


class MlflowSweepCallback(Callback):
    def __init__(self) -> None:
        self._client: MlflowClient | None = None
        self._parent: str | None = None  # the sweep's MLflow run id, once created
        self._token: str | None = None
        self._sweep_dir: Path | None = None
        self._interrupted = self._settled = self._holding_signals = False
        self._previous_handlers: dict = {}

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        # a signal while the parent run is being created is held until it exists
        self._holding_signals = True
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous_handlers[sig] = signal.signal(sig, self._interrupt)
        atexit.register(self._settle_at_exit)
        self._token = token = uuid.uuid4().hex
        self._sweep_dir = sweep_dir = Path(config.hydra.sweep.dir).resolve()
        jobs, swept = planned_jobs(config)
        env = {TOKEN_ENV: token, SWEPT_ENV: ",".join(sorted(swept))}
        if not config.get("dry_run"):
            env[PARENT_ENV] = self._start_parent(config, jobs, swept, sweep_dir)
        else:  # create the store once here, not in parallel by every job
            mlflow_store.client_for(config.tracking.uri).search_experiments(max_results=1)
        with read_write(config.hydra.overrides):  # every launcher recomposes jobs from these
            for key, value in env.items():
                config.hydra.overrides.hydra.append(f"++hydra.job.env_set.{key}='{value}'")
            # jobs on other machines (Ray, Slurm) run elsewhere: their sweep folder must not be relative
            config.hydra.overrides.hydra.append(f"++hydra.sweep.dir='{sweep_dir}'")
        self._holding_signals = False
        if self._interrupted:
            raise Interrupted("signal received while the sweep started")

    def _start_parent(self, config: DictConfig, jobs: list[list[str]] | None, swept: set[str], sweep_dir: Path) -> str:
        """Create the sweep's MLflow run (the jobs' parent); → its run id."""
        tracking = config.tracking
        self._client = client = mlflow_store.client_for(tracking.uri)
        liveness.reap_vanished(client)
        exp_id = mlflow_store.ensure_experiment(client, tracking.experiment, tracking.artifact_root)
        overrides = list(config.hydra.overrides.task)
        study = config.get("study_name")
        expected = len(jobs) if jobs is not None else config.hydra.sweeper.get("n_trials")
        logger = mlflow_store.RunLogger.start(
            client,
            exp_id,
            f"{study or 'sweep'} {sweep_dir.name}",
            tags={
                "protstruct.role": "sweep",
                "protstruct.study": study or "",
                "protstruct.sweep_dir": str(sweep_dir),
                "protstruct.overrides": " ".join(overrides),
                "protstruct.git_commit": mlflow_store.git_commit(project_root()),
                **mlflow_store.source_tags(sys.argv[0], mlflow_store.git_commit(project_root())),
                **liveness.process_tags(),
                **({ledger.EXPECTED_TAG: str(int(expected))} if expected is not None else {}),
            },
        )
        self._parent = logger.run_id
        if jobs is not None:
            names = [{"num": i, "name": job_name(job, swept, ()), "overrides": job} for i, job in enumerate(jobs)]
            logger.log_text(json.dumps(names, indent=1), ledger.JOBS_ARTIFACT)
        log.info(
            "MLflow parent run %s (experiment %r, %s; %s jobs)",
            self._parent,
            tracking.experiment,
            redact(str(tracking.uri)),
            expected if expected is not None else "unknown number of",
        )
        return logger.run_id

    def on_job_start(self, config: DictConfig, **kwargs) -> None:
        """Hydra has just written the job's ``.hydra/*.yaml`` (and the sweep's ``multirun.yaml``)
        with the raw command line: mask their secrets before anything reads them."""
        output = Path(config.hydra.runtime.output_dir)
        subdir = config.hydra.get("output_subdir")
        files = list((output / subdir).glob("*.yaml")) if subdir else []
        if config.hydra.mode == RunMode.MULTIRUN:
            files.append(Path(config.hydra.sweep.dir) / "multirun.yaml")
        for path in files:
            if path.is_file():
                redact_file(path)

    def _interrupt(self, signum, frame):
        self._interrupted = True
        if not self._holding_signals:
            raise Interrupted(f"signal {signum}")

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        for sig, handler in self._previous_handlers.items():
            signal.signal(sig, handler)
        sweep_dir = self._sweep_dir
        if sweep_dir is None:
            raise RuntimeError("on_multirun_end before on_multirun_start: no sweep folder")
        print_summary(_summary_rows(self._client, self._parent, sweep_dir, self._token))
        multirun_yaml = sweep_dir / "multirun.yaml"
        if multirun_yaml.is_file():
            redact_file(multirun_yaml)
        if self._parent is not None:
            status = ledger.settle(self._client, self._parent)
            self._settled = True
            log.info("sweep %s ended %s", self._parent, status)

    def _settle_at_exit(self) -> None:
        """The sweep died before ``on_multirun_end`` (an exception, a signal): end its run."""
        if self._client is None or self._parent is None or self._settled:
            return
        self._settled = True
        try:
            if self._client.get_run(self._parent).info.status == "RUNNING":
                status = ledger.settle(self._client, self._parent, interrupted=self._interrupted)
                log.warning("sweep %s ended %s before all its jobs ran", self._parent, status)
        except Exception as exc:  # the store itself may be what failed; say so, do not mask the cause
            log.error("sweep %s: could not record its end: %s", self._parent, redact(str(exc)))


def env_of_job(hydra_cfg) -> dict[str, str]:
    """The sweep's values passed to a job through ``hydra.job.env_set``."""
    env = hydra_cfg.job.get("env_set") or {}
    return {k: str(env[k]) for k in (PARENT_ENV, SWEPT_ENV, TOKEN_ENV) if k in env}
