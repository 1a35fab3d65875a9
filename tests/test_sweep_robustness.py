"""Sweeps that survive real use — real CLI subprocesses, combined into as few sweeps as honesty
allows: failures, SIGTERM + resume + dry run, parallel joblib workers, mirrored strategy,
Optuna search, reproducibility."""

from __future__ import annotations

import itertools
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT, run_cli, store_overrides

SMOKE = ["debug=smoke"]


def _runs(base, experiment):
    client = MlflowClient(f"sqlite:///{base}/mlflow.db")
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return client, [r for r in runs if r.data.tags.get("protstruct.role") == "job"]


def _cli(base, experiment, *args, env=None):
    return run_cli([*args, *SMOKE, f"tracking.experiment={experiment}", *store_overrides(base)], cwd=base, env=env)


def test_failing_jobs_are_isolated_and_recorded(tmp_path):
    proc = _cli(
        tmp_path,
        "failures",
        "-m",
        "optimizer=sgd",
        "optimizer.learning_rate=1e-3,1e12",
        "dropout.rate=0.0,1.5",
        "trainer.epochs=2",
        f"hydra.sweep.dir={tmp_path}/sweep",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, runs = _runs(tmp_path, "failures")
    by_values = {
        (float(r.data.params["optimizer.learning_rate"]), float(r.data.params["dropout.rate"])): r for r in runs
    }
    assert len(by_values) == 4
    ok = by_values[(1e-3, 0.0)]
    assert ok.info.status == "FINISHED" and math.isfinite(ok.data.metrics["test/rmse"])
    nan = by_values[(1e12, 0.0)]
    assert nan.info.status == "FAILED"
    assert "NonFiniteLoss" in nan.data.tags["protstruct.error"] and "non-finite" in nan.data.tags["protstruct.error"]
    history = client.get_metric_history(nan.info.run_id, "train/loss")
    assert len(history) >= 1  # the epoch(s) before the stop are kept
    assert "test/rmse" not in nan.data.metrics
    for lr in (1e-3, 1e12):
        bad = by_values[(lr, 1.5)]
        assert bad.info.status == "FAILED"
        assert "dropout.rate: expected a value in [0, 1), got 1.5" in bad.data.tags["protstruct.error"]
        assert "error.txt" in {a.path for a in client.list_artifacts(bad.info.run_id)}
    out = proc.stdout + proc.stderr
    assert "sweep summary ({'failed': 3, 'ok': 1})" in out
    assert out.count(" failed ") >= 3 and ok.info.run_id in out


def _wait_for_metric(db, run_name, key, proc, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            with sqlite3.connect(db) as con:
                row = con.execute(
                    "select count(*) from metrics m join runs r on m.run_uuid = r.run_uuid "
                    "where r.name = ? and m.key = ?",
                    (run_name, key),
                ).fetchone()
            if row and row[0] > 0:
                return True
        except sqlite3.OperationalError:
            pass  # the store is still being created
        time.sleep(0.2)
    return False


def test_sigterm_kills_the_run_and_rerunning_launches_exactly_the_missing_jobs(tmp_path):
    args = [
        "-m",
        "seed=0,1,2",
        "trainer.epochs=30",
        "trainer.patience=30",
        *SMOKE,
        "tracking.experiment=resume",
        *store_overrides(tmp_path),
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), *args, f"hydra.sweep.dir={tmp_path}/s1"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert _wait_for_metric(tmp_path / "mlflow.db", "seed=1", "val/rmse", proc), "job seed=1 never logged"
        proc.send_signal(signal.SIGTERM)
        _out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode != 0
    client, runs = _runs(tmp_path, "resume")
    status = {r.info.run_name: r.info.status for r in runs}
    assert status == {"seed=0": "FINISHED", "seed=1": "KILLED"}
    killed = next(r for r in runs if r.info.run_name == "seed=1")
    assert len(client.get_metric_history(killed.info.run_id, "val/rmse")) >= 1
    assert client.get_run(killed.data.tags["mlflow.parentRunId"]).info.status == "KILLED"

    dry = run_cli([*args, "dry_run=true", f"hydra.sweep.dir={tmp_path}/dry"], cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "[dry-run] #0 seed=0: would skip (FINISHED run" in dry.stdout
    assert "[dry-run] #1 seed=1: would run" in dry.stdout and "[dry-run] #2 seed=2: would run" in dry.stdout
    assert len(_runs(tmp_path, "resume")[1]) == 2  # a dry run trains and logs nothing

    finished0 = next(r for r in runs if r.info.run_name == "seed=0")
    client.set_tag(finished0.info.run_id, "protstruct.version.keras", "3.0.0")  # as if made by older Keras
    again = run_cli([*args, f"hydra.sweep.dir={tmp_path}/s2"], cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    out2 = again.stdout + again.stderr
    assert "[skipped] seed=0" in out2 and "sweep summary ({'ok': 2, 'skipped': 1})" in out2
    assert "other library versions (keras 3.0.0 → " in out2 and "rerun=true" in out2
    client, runs = _runs(tmp_path, "resume")
    finished = sorted(r.info.run_name for r in runs if r.info.status == "FINISHED")
    assert finished == ["seed=0", "seed=1", "seed=2"] and len(runs) == 3
    # the killed job continued from its checkpoint in its own run, rather than starting over
    resumed = next(r for r in runs if r.info.run_name == "seed=1")
    assert resumed.info.run_id == killed.info.run_id and resumed.data.tags["protstruct.resumed"] == "1"
    assert "[resumed] seed=1" in out2
    # the resumed sweep's report sees all three jobs: two trained now, one reused from before
    from protstruct.report.build import make_report

    text = make_report(f"sqlite:///{tmp_path}/mlflow.db", "resume", None, None, ["seed"], None, None)
    assert "3 jobs" in text


def test_joblib_runs_jobs_in_parallel_without_losing_runs(tmp_path):
    proc = _cli(
        tmp_path,
        "parallel",
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "seed=0,1,2,3",
        "trainer.epochs=2",
        "trainer.patience=2",
        f"hydra.sweep.dir={tmp_path}/sweep",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "database is locked" not in proc.stdout + proc.stderr
    client, runs = _runs(tmp_path, "parallel")
    assert sorted(r.info.run_name for r in runs) == ["seed=0", "seed=1", "seed=2", "seed=3"]
    for r in runs:
        assert r.info.status == "FINISHED"
        for key in ("train/loss", "val/loss", "val/rmse"):
            assert [m.step for m in client.get_metric_history(r.info.run_id, key)] == [0, 1]
    assert len({r.data.tags["protstruct.worker_pid"] for r in runs}) == 2
    spans = sorted((r.info.start_time, r.info.end_time) for r in runs)
    assert any(b_start < a_end for (_, a_end), (b_start, _) in itertools.pairwise(spans)), spans


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    proc = _cli(
        tmp_path, "mirrored", "trainer.strategy=mirrored", "trainer.cpu_replicas=2", f"hydra.run.dir={tmp_path}/run"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, (run,) = _runs(tmp_path, "mirrored")
    assert run.info.status == "FINISHED"
    assert run.data.metrics["trainer/num_replicas_in_sync"] == 2
    assert math.isfinite(run.data.metrics["test/rmse"])


def test_optuna_search_logs_each_trial_as_a_child_run(tmp_path):
    proc = _cli(
        tmp_path,
        "search",
        "-m",
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=3",
        f"hydra.sweep.dir={tmp_path}/sweep",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    _client, runs = _runs(tmp_path, "search")
    assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)
    parents = {r.data.tags["mlflow.parentRunId"] for r in runs}
    assert len(parents) == 1
    for r in runs:
        assert {"optimizer.learning_rate", "dropout.rate", "decoder"} <= {
            o.split("=")[0] for o in r.data.tags["protstruct.overrides"].split()
        }
    assert (tmp_path / "sweep" / "optimization_results.yaml").is_file()


def test_same_seed_same_metrics_other_seed_different(tmp_path):
    proc = _cli(tmp_path, "repro", "-m", "seed=0,0,1", "rerun=true", f"hydra.sweep.dir={tmp_path}/sweep")
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, runs = _runs(tmp_path, "repro")
    by_seed = {}
    for r in runs:
        by_seed.setdefault(r.data.params["seed"], []).append(r.data.metrics["test/mse"])
        assert r.data.tags["protstruct.command"].startswith(str(ROOT / "run.py"))
        assert r.data.tags["protstruct.version.tensorflow"] and r.data.tags["protstruct.git_commit"]
    a, b = by_seed["0"]
    assert a == pytest.approx(b, rel=1e-5)  # CPU float reductions may differ in the last bits
    assert by_seed["1"][0] != pytest.approx(a, rel=1e-3)
