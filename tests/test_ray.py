"""hydra/launcher=ray_cluster for real: a sweep whose jobs run as Ray tasks on the worker node of a
two-node loopback cluster (tests/ray_cluster.py), logging to a real password-protected MLflow
server (tests/mlflow_server.py).

What it proves: run.py's task function reaches a worker started from another folder and imports
protstruct there; the jobs find the sweep's parent run from their own config; the worker's
credentials come from the worker node's environment (set before `ray start`), not from the
launcher; every job runs on the worker node (tag protstruct.ray.node_id); the launcher's sweep
summary sees every job. Skips without ray/hydra-ray-launcher unless PROTSTRUCT_REQUIRE_RAY is set.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import run_cli

SEEDS = (0, 1, 2, 3)
EXPERIMENT = "ray_cluster"


def test_sweep_runs_as_ray_tasks_on_the_worker_node(ray_cluster, mlflow_auth_server, tmp_path, monkeypatch):
    server = mlflow_auth_server
    launcher_cwd = tmp_path / "launcher"
    launcher_cwd.mkdir()
    assert ray_cluster.worker_cwd != launcher_cwd
    started = time.monotonic()
    proc = run_cli(
        [
            "-m",
            "hydra/launcher=ray_cluster",
            f"seed={','.join(map(str, SEEDS))}",
            "debug=smoke",
            f"tracking.uri={server.url}",
            "tracking.artifact_root=null",
            f"tracking.experiment={EXPERIMENT}",
            f"hydra.launcher.ray.init.address={ray_cluster.address}",
            "hydra.launcher.ray.remote.num_cpus=1",
            "hydra.launcher.ray.remote.num_gpus=0",
        ],
        cwd=launcher_cwd,
        env={**server.credentials_env(), "RAY_DEDUP_LOGS": "0"},
        timeout=420,
    )
    took = time.monotonic() - started
    output = proc.stdout + proc.stderr
    why = f"(exit {proc.returncode}, {took:.0f} s)\n{output[-6000:]}\n{ray_cluster.log_tail(1500)}"
    assert proc.returncode == 0, why
    assert f"sweep summary ({{'ok': {len(SEEDS)}}})" in output, why
    assert server.password not in output and server.encoded_password not in output

    from mlflow.tracking import MlflowClient

    for key, value in server.credentials_env().items():
        monkeypatch.setenv(key, value)
    client = MlflowClient(tracking_uri=server.url)
    exp = client.get_experiment_by_name(EXPERIMENT)
    assert exp is not None, why
    runs = client.search_runs([exp.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("protstruct.role") == "sweep"]
    assert len(parents) == 1, [r.data.tags for r in parents]
    parent = parents[0]
    assert parent.info.status == "FINISHED", parent.data.tags
    assert parent.data.tags.get("protstruct.expected_jobs") == str(len(SEEDS))
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(SEEDS) and len(runs) == len(SEEDS) + 1, [r.data.tags for r in runs]
    assert sorted(int(r.data.params["seed"]) for r in children) == list(SEEDS)
    for run in children:
        tags = run.data.tags
        assert run.info.status == "FINISHED", tags.get("protstruct.error")
        assert tags.get("protstruct.ray.node_id") == ray_cluster.worker_node_id, tags.get("protstruct.ray.node_id")
        # the default, relative sweep folder is the launcher's: the worker writes each job's folder
        # there, not under its own working directory
        assert Path(tags["protstruct.output_dir"]).parent == Path(parent.data.tags["protstruct.sweep_dir"])
        assert Path(tags["protstruct.output_dir"]).is_relative_to(launcher_cwd), tags["protstruct.output_dir"]
        assert tags.get("protstruct.cpu_threads") == "1"  # Ray's CPU share, not every core of the node
        assert "test/rmse" in run.data.metrics
    assert not any(ray_cluster.worker_cwd.iterdir()), list(ray_cluster.worker_cwd.iterdir())
    # measured for the README's cost model (printed, never asserted)
    to_run = sorted((r.info.start_time - parent.info.start_time) / 1000 for r in children)
    print(f"[measure] 4-job Ray sweep {took:.0f} s; sweep start → job run {to_run[0]:.1f}–{to_run[-1]:.1f} s")
