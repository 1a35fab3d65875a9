"""Sweeps always end, and resume never reuses the wrong run — real CLI processes, real signals."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

from mlflow.tracking import MlflowClient

from tests.conftest import ROOT, run_cli, store_overrides

SMOKE = ["debug=smoke"]


def _client(base):
    return MlflowClient(f"sqlite:///{base}/mlflow.db")


def _runs(base, experiment, role):
    client = _client(base)
    exp = client.get_experiment_by_name(experiment)
    return [
        r
        for r in client.search_runs([exp.experiment_id], max_results=1000)
        if r.data.tags.get("protstruct.role") == role
    ]


def _popen(base, *args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), *args, *SMOKE, *store_overrides(base)],
        cwd=base,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for(db, sql: str, params: tuple, proc, timeout=300) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            with sqlite3.connect(db) as con:
                if con.execute(sql, params).fetchone()[0] > 0:
                    return True
        except sqlite3.OperationalError:
            pass  # the store is still being created
        time.sleep(0.1)
    return False


SWEEP_EXISTS = (
    "select count(*) from tags t join runs r on t.run_uuid = r.run_uuid "
    "join experiments e on r.experiment_id = e.experiment_id "
    "where e.name = ? and t.key = 'protstruct.role' and t.value = 'sweep'"
)
METRIC_LOGGED = (
    "select count(*) from metrics m join runs r on m.run_uuid = r.run_uuid "
    "join experiments e on r.experiment_id = e.experiment_id where e.name = ? and m.key = ?"
)


def test_sigterm_to_the_launcher_before_any_job_run_ends_the_sweep_killed(tmp_path):
    proc = _popen(tmp_path, "-m", "seed=0,1", "tracking.experiment=term", f"hydra.sweep.dir={tmp_path}/s")
    try:
        assert _wait_for(tmp_path / "mlflow.db", SWEEP_EXISTS, ("term",), proc), "no sweep run appeared"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode != 0
    (parent,) = _runs(tmp_path, "term", "sweep")
    assert parent.info.status == "KILLED", out[-3000:]


def test_sigkilled_processes_are_found_vanished_by_the_next_command(tmp_path):
    db = tmp_path / "mlflow.db"
    # 1. killed while starting up, before the job's own run exists: only the parent exists
    early = _popen(tmp_path, "-m", "seed=0,1", "tracking.experiment=vanish", f"hydra.sweep.dir={tmp_path}/a")
    try:
        assert _wait_for(db, SWEEP_EXISTS, ("vanish",), early), "no sweep run appeared"
        early.send_signal(signal.SIGKILL)
        early.communicate(timeout=60)
    finally:
        early.kill()
    # 2. killed while training: the job's run has logged an epoch
    late = _popen(
        tmp_path,
        "-m",
        "seed=0,1",
        "trainer.epochs=30",
        "trainer.patience=30",
        "tracking.experiment=vanish2",
        f"hydra.sweep.dir={tmp_path}/b",
    )
    try:
        assert _wait_for(db, METRIC_LOGGED, ("vanish2", "val/rmse"), late), "job never logged an epoch"
        late.send_signal(signal.SIGKILL)
        late.communicate(timeout=60)
    finally:
        late.kill()
    # the second sweep was the next command against the store: it ended the first one
    (parent,) = _runs(tmp_path, "vanish", "sweep")
    assert parent.info.status == "FAILED" and "process vanished" in parent.data.tags["protstruct.error"]
    assert [r.info.status for r in _runs(tmp_path, "vanish2", "job")] == ["RUNNING"]  # nobody ended it yet

    # the next protstruct command against the store (here a dry run) ends the second
    nxt = run_cli([*SMOKE, "dry_run=true", "tracking.experiment=other", *store_overrides(tmp_path)], cwd=tmp_path)
    assert nxt.returncode == 0, nxt.stderr[-3000:]
    (job,) = _runs(tmp_path, "vanish2", "job")
    assert job.info.status == "FAILED" and job.data.tags["protstruct.error"].startswith("process vanished")
    (parent2,) = _runs(tmp_path, "vanish2", "sweep")
    assert parent2.info.status == "FAILED"
    assert json.loads(parent2.data.tags["protstruct.job.0"])["status"] == "vanished"
    assert "vanished" in nxt.stdout + nxt.stderr


def test_an_error_inside_the_jobs_own_error_handling_still_ends_job_and_sweep(tmp_path):
    # an artifact store nobody can write: training fails at its first artifact, and so does
    # the job's own attempt to log the error — the exception escapes into Hydra
    proc = run_cli(
        [
            "-m",
            "seed=0,1",
            *SMOKE,
            "tracking.experiment=broken",
            f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
            "tracking.artifact_root=/proc/protstruct-unwritable",
            f"hydra.sweep.dir={tmp_path}/s",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode != 0
    (parent,) = _runs(tmp_path, "broken", "sweep")
    assert parent.info.status == "FAILED"
    jobs = _runs(tmp_path, "broken", "job")
    assert jobs and all(r.info.status == "FAILED" for r in jobs)


def test_a_sweep_with_no_jobs_fails(tmp_path):
    proc = run_cli(
        [
            "-m",
            "seed=range(0,0)",
            *SMOKE,
            "tracking.experiment=empty",
            *store_overrides(tmp_path),
            f"hydra.sweep.dir={tmp_path}/s",
        ],
        cwd=tmp_path,
    )
    (parent,) = _runs(tmp_path, "empty", "sweep")
    assert parent.info.status == "FAILED", proc.stdout[-2000:] + proc.stderr[-2000:]
    assert parent.data.tags["protstruct.expected_jobs"] == "0"


def test_resume_key_and_per_sweep_summaries(tmp_path):
    sweep_dir = f"hydra.sweep.dir={tmp_path}/shared"
    args = ["-m", "tracking.log_model=false,true", *SMOKE, "tracking.experiment=key", *store_overrides(tmp_path)]
    dry = run_cli([*args, "dry_run=true", sweep_dir], cwd=tmp_path)
    assert dry.returncode == 0 and "would-run" in dry.stdout, dry.stderr[-3000:]
    real = run_cli([*args, sweep_dir], cwd=tmp_path)
    assert real.returncode == 0, real.stderr[-3000:]
    out = real.stdout + real.stderr
    # log_model is part of the key: the run without a model never stands in for one with it
    assert "sweep summary ({'ok': 2})" in out, out[-3000:]
    assert "would-run" not in out  # the dry run's plan, written to the same folder, stays out
    jobs = _runs(tmp_path, "key", "job")
    assert len(jobs) == 2 and {j.data.tags["protstruct.key_version"] for j in jobs} == {"2"}
    # a run keyed by an older recipe is never reused
    client = _client(tmp_path)
    for job in jobs:
        client.set_tag(job.info.run_id, "protstruct.key_version", "1")
    again = run_cli([*args, f"hydra.sweep.dir={tmp_path}/again"], cwd=tmp_path)
    assert "sweep summary ({'ok': 2})" in again.stdout + again.stderr


def test_job_key_covers_results_not_display():
    from protstruct.tracking.resume import job_key

    cfg = {
        "seed": 0,
        "trainer": {"epochs": 1, "verbose": 2},
        "tracking": {"uri": "sqlite:////a.db", "experiment": "x", "artifact_root": "/a", "log_model": True},
    }
    key = job_key(cfg, "data", "code")
    display = {
        **cfg,
        "trainer": {"epochs": 1, "verbose": 0},
        "dry_run": True,
        "tracking": {**cfg["tracking"], "uri": "http://h", "experiment": "y", "artifact_root": None},
    }
    assert job_key(display, "data", "code") == key
    assert job_key({**cfg, "tracking": {**cfg["tracking"], "log_model": False}}, "data", "code") != key
    assert job_key(cfg, "data2", "code") != key and job_key(cfg, "data", "code2") != key


def test_code_fingerprint_follows_every_source_and_config_file(tmp_path):
    from protstruct.tracking.resume import code_fingerprint

    pkg, conf = tmp_path / "pkg", tmp_path / "conf"
    (pkg / "sub").mkdir(parents=True)
    (conf / "data").mkdir(parents=True)
    (pkg / "sub" / "m.py").write_text("x = 1\n")
    (conf / "data" / "d.yaml").write_text("a: 1\n")
    first = code_fingerprint(pkg, conf)
    (pkg / "sub" / "m.py").write_text("x = 1  # a comment changes the code's hash too\n")
    second = code_fingerprint.__wrapped__(pkg, conf)
    (conf / "data" / "d.yaml").write_text("a: 2\n")
    third = code_fingerprint.__wrapped__(pkg, conf)
    assert len({first, second, third}) == 3


def test_data_fingerprint_covers_pssm_values():
    import numpy as np

    from protstruct.data.records import ProteinRecord
    from protstruct.data.sources import Splits

    def splits(pssm):
        rec = ProteinRecord("p", "ACDE", np.zeros((4, 3), np.float32), np.ones(4, bool), pssm=pssm)
        return Splits([rec], [], [], name="t")

    pssm = np.full((4, 20), 0.05, np.float32)
    changed = pssm.copy()
    changed[2, 3] = 0.5
    assert splits(pssm).fingerprint() != splits(changed).fingerprint()
    assert splits(pssm).fingerprint() != splits(None).fingerprint()
