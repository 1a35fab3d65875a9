"""Where a job runs: its Hydra context, and the cluster engine (Slurm, Ray) around it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from protstruct.tracking import sweep

NAME_EXCLUDES = ("study=", "tracking.", "hydra.", "debug=", "rerun=", "dry_run=")  # not part of a run's name


def job_context() -> dict:
    """The running Hydra job: its name, number, overrides, folders, sweep parent and parallelism."""
    hc = HydraConfig.get()
    overrides = list(hc.overrides.task)
    multirun = hc.mode == RunMode.MULTIRUN
    env = sweep.env_of_job(hc) if multirun else {}
    swept = set(filter(None, env.get(sweep.SWEPT_ENV, "").split(",")))
    n_jobs = hc.launcher.get("n_jobs") if multirun else None
    return {
        "name": sweep.job_name(overrides, swept, NAME_EXCLUDES),
        "num": hc.job.num if multirun else None,
        "overrides": overrides,
        "choices": dict(hc.runtime.choices),
        "output_dir": Path(hc.runtime.output_dir),
        "log_file": Path(hc.runtime.output_dir) / f"{hc.job.name}.log",
        "sweep_dir": Path(hc.sweep.dir) if multirun else None,
        "parent": env.get(sweep.PARENT_ENV),
        "token": env.get(sweep.TOKEN_ENV),
        "multirun": multirun,
        "workers": 1 if not n_jobs else (n_jobs if n_jobs > 0 else os.cpu_count() or 1),
    }


SLURM_ENV = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_JOB_NODELIST", "SLURM_RESTART_COUNT")


def engine_tags() -> dict[str, str]:
    """Where a job ran under a cluster engine: its Slurm job ids, its Ray node."""
    tags = {f"protstruct.slurm.{k[len('SLURM_') :].lower()}": os.environ[k] for k in SLURM_ENV if k in os.environ}
    if "ray" in sys.modules:  # imported by the Ray launcher's worker, never by protstruct itself
        ray = sys.modules["ray"]
        if ray.is_initialized():
            tags["protstruct.ray.node_id"] = ray.get_runtime_context().get_node_id()
    return tags


def engine_cpus() -> int | None:
    """The CPUs a cluster engine gave this job (several jobs share a node: each takes its share):
    Slurm's ``--cpus-per-task``, or Ray's assigned resources."""
    if os.environ.get("SLURM_CPUS_PER_TASK", "").isdigit():
        return int(os.environ["SLURM_CPUS_PER_TASK"])
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    return int(cpus) if cpus else None
