"""Shared fixtures. The smoke sweep runs the real CLI once per session; tests that only read
runs share it (every ``python run.py`` costs ~20 s of TensorFlow start-up)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from protstruct import console

console.set_log_levels()  # as run.py does: the tests see what users see
# session fixtures that start real daemons: one MLflow basic-auth server, Ray, Slurm, a browser
pytest_plugins = ["tests.mlflow_server", "tests.ray_cluster", "tests.slurm_cluster", "tests.ui_browser"]
ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


def run_cli(args: list[str], cwd: Path = ROOT, timeout: int = 600, env: dict | None = None):
    """Run ``python run.py ARGS`` for real; returns the CompletedProcess (output captured)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def store_overrides(base: Path) -> list[str]:
    return [f"tracking.uri=sqlite:///{base}/mlflow.db", f"tracking.artifact_root={base}/artifacts"]


@pytest.fixture(scope="session")
def smoke_sweep(tmp_path_factory):
    """`python run.py -m decoder=transpose,upsample debug=smoke` against a throwaway SQLite store."""
    base = tmp_path_factory.mktemp("smoke_sweep")
    proc = run_cli(
        [
            "-m",
            "decoder=transpose,upsample",
            "debug=smoke",
            "tracking.experiment=smoke",
            "tracking.system_metrics_interval=1",
            *store_overrides(base),
            f"hydra.sweep.dir={base}/multirun",
        ],
        cwd=base,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return {
        "base": base,
        "uri": f"sqlite:///{base}/mlflow.db",
        "experiment": "smoke",
        "sweep_dir": base / "multirun",
        "output": proc.stdout + proc.stderr,
    }
