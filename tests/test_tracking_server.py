"""The tracking-server mode for real: a throwaway PostgreSQL cluster, `mlflow server
--serve-artifacts` on loopback, a 2-job smoke sweep logged over HTTP, runs and an artifact read
back over HTTP. `.ci/run` prepares the unprivileged user PostgreSQL insists on."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from protstruct.report.mlflow_ui import free_port, spawn_server, stop_server, wait_for_health
from tests.conftest import run_cli

PG_USER = os.environ.get("PROTSTRUCT_PG_USER", "protstruct_pg")


def _pg_tool(name: str) -> str | None:
    """On PATH, or where Debian's postgresql package puts it."""
    found = shutil.which(name)
    return found or next((str(p) for p in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))), None)


def _why_no_postgres() -> str | None:
    missing = [tool for tool in ("initdb", "pg_ctl", "psql") if _pg_tool(tool) is None]
    if missing:
        return f"PostgreSQL tools not on PATH: {missing}"
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        return f"no unprivileged user {PG_USER!r} to run PostgreSQL as (.ci/run creates it)"
    if os.geteuid() != 0:
        return "switching to the PostgreSQL user needs root (su)"
    return None


def _as_pg_user(cmd: str):
    return subprocess.run(
        ["su", PG_USER, "-s", "/bin/sh", "-c", cmd], capture_output=True, text=True, timeout=120, check=True
    )


@pytest.fixture
def postgres():
    why = _why_no_postgres()
    if why:
        if os.environ.get("PROTSTRUCT_REQUIRE_PG") == "1":
            pytest.fail(f"PROTSTRUCT_REQUIRE_PG=1 but {why}")
        pytest.skip(why)
    root = Path(tempfile.mkdtemp(prefix="protstruct-pg-"))
    shutil.chown(root, PG_USER)
    port = free_port()
    data = root / "data"
    _as_pg_user(f"{_pg_tool('initdb')} -D {data} -A trust -U postgres --no-sync >/dev/null")
    _as_pg_user(
        f"{_pg_tool('pg_ctl')} -D {data} -l {root}/pg.log -w "
        f"-o '-p {port} -k {root} -c listen_addresses=127.0.0.1' start >/dev/null"
    )
    try:
        subprocess.run(
            [_pg_tool("psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-c", "create database mlflow"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/mlflow"  # SQLAlchemy 2.1 defaults to psycopg 3
    finally:
        _as_pg_user(f"{_pg_tool('pg_ctl')} -D {data} -m fast -w stop >/dev/null")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def mlflow_server(postgres, tmp_path):
    port, log = free_port(), tmp_path / "server.log"
    cmd = [str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri", postgres,
           "--serve-artifacts", "--artifacts-destination", str(tmp_path / "served-artifacts"),
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]  # fmt: skip
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = spawn_server(cmd, tmp_path, env, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, proc, 120, lambda: log.read_text()[-3000:], "mlflow server")
        yield url
    finally:
        stop_server(proc)


def test_sweep_logs_over_http_to_a_postgres_backed_server(mlflow_server, tmp_path):
    proc = run_cli(
        [
            "-m",
            "decoder=transpose,upsample",
            "debug=smoke",
            f"tracking.uri={mlflow_server}",
            "tracking.artifact_root=null",
            "tracking.experiment=server",
            f"hydra.sweep.dir={tmp_path}/sweep",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name("server")
    runs = client.search_runs([exp.experiment_id])
    jobs = [r for r in runs if r.data.tags.get("protstruct.role") == "job"]
    parents = [r for r in runs if r.data.tags.get("protstruct.role") == "sweep"]
    assert len(jobs) == 2 and len(parents) == 1
    assert all(r.info.status == "FINISHED" and "test/rmse" in r.data.metrics for r in jobs)
    assert all(r.info.artifact_uri.startswith("mlflow-artifacts:") for r in jobs)
    local = client.download_artifacts(jobs[0].info.run_id, "plots/loss_curve.png", str(tmp_path))
    assert Path(local).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any((tmp_path / "served-artifacts").rglob("model.keras"))  # stored by the server, not the client
    # MLflow's own lineage survives PostgreSQL's column limits (digest: 36 characters at most)
    for run in jobs:
        inputs = {i.tags[0].value: i.dataset for i in client.get_run(run.info.run_id).inputs.dataset_inputs}
        assert set(inputs) == {"train", "val", "test"} and all(len(d.digest) == 32 for d in inputs.values())
        assert run.data.tags["mlflow.source.name"].endswith("run.py")
    models = client.search_logged_models([exp.experiment_id])
    assert len(models) == 2 and {m.source_run_id for m in models} == {r.info.run_id for r in jobs}
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
