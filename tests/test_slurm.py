"""`hydra/launcher=slurm` for real: sweeps submitted through submitit as Slurm job arrays to a
single-node Slurm cluster this session starts (munged, MariaDB + slurmdbd, slurmctld, slurmd:
see tests/slurm_cluster.py), tracked in a SQLite store every job of the node reaches."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT, run_cli, store_overrides


def _slurm_overrides(cluster, base: Path) -> list[str]:
    """The real-cluster preset, shrunk to the 2-CPU node: every resource is an override."""
    return [
        "hydra/launcher=slurm",
        f"hydra.launcher.partition={cluster.partition}",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.gpus_per_node=null",
        "hydra.launcher.mem_gb=2",
        "hydra.launcher.timeout_min=10",
        f"hydra.launcher.submitit_folder='{base}/submitit/%j'",
        f"hydra.sweep.dir={base}/multirun",
    ]


def _job_logs(base: Path, tail: int = 3000) -> str:
    """What the Slurm jobs printed (submitit's per-task stdout/stderr files)."""
    out = []
    for path in sorted((base / "submitit").rglob("*_log.*")):
        out.append(f"--- {path.name} ---\n{path.read_text(errors='replace')[-tail:]}")
    return "\n".join(out)


def _runs(uri: str, experiment: str, role: str):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return [
        r
        for r in client.search_runs([exp.experiment_id], max_results=1000)
        if r.data.tags.get("protstruct.role") == role
    ]


def _sacct(cluster, job_id: str) -> dict[str, str]:
    """JobID → State of a job (an array: every task), steps left out."""
    out = cluster.run("sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", job_id).stdout
    return dict(line.split("|", 1) for line in out.splitlines() if line.strip())


def test_a_sweep_runs_as_a_slurm_job_array(slurm_cluster, tmp_path):
    cluster = slurm_cluster
    started = time.monotonic()
    proc = run_cli(
        [
            "-m",
            "seed=0,1,2,3",
            "debug=smoke",
            "tracking.experiment=slurm",
            *store_overrides(tmp_path),
            *_slurm_overrides(cluster, tmp_path),
        ],
        cwd=tmp_path,
        env=cluster.env,
        timeout=420,
    )
    output = proc.stdout + proc.stderr
    why = f"{output[-4000:]}\n{_job_logs(tmp_path)}\n{cluster.log_tail(10)}"
    assert proc.returncode == 0, why
    assert "sweep summary ({'ok': 4})" in output, why

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    [parent] = _runs(uri, "slurm", "sweep")
    assert parent.info.status == "FINISHED", parent.data.tags
    assert parent.data.tags["protstruct.expected_jobs"] == "4"
    jobs = _runs(uri, "slurm", "job")
    assert len(jobs) == 4, [r.data.tags.get("mlflow.runName") for r in jobs]
    assert {r.info.status for r in jobs} == {"FINISHED"}
    assert {r.data.tags["mlflow.parentRunId"] for r in jobs} == {parent.info.run_id}
    assert {r.data.params["seed"] for r in jobs} == {"0", "1", "2", "3"}

    # one Slurm array: one array job id, task i = job #i, each task its own Slurm job id
    tags = [r.data.tags for r in jobs]
    [array_id] = {t["protstruct.slurm.array_job_id"] for t in tags}
    assert sorted((t["protstruct.slurm.array_task_id"], t["protstruct.job_num"]) for t in tags) == [
        (str(i), str(i)) for i in range(4)
    ]
    assert len({t["protstruct.slurm.job_id"] for t in tags}) == 4
    assert {t["protstruct.slurm.job_nodelist"] for t in tags} == {cluster.node}
    # and Slurm's own accounting agrees (the last task may still be exiting after writing its result)
    expected = {f"{array_id}_{i}": "COMPLETED" for i in range(4)}
    assert _poll("4 COMPLETED tasks in sacct", lambda: _sacct(cluster, array_id) == expected, 60)
    # measured for the README's cost model (printed, never asserted): Slurm's own queue wait, and
    # the sweep's start to each job's MLflow run (queue + process start-up + TensorFlow import)
    out = cluster.run("sacct", "-n", "-X", "-P", "-o", "Submit,Start", "-j", array_id).stdout
    waits = [
        (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()
        for a, b in (line.split("|") for line in out.splitlines() if line.strip())
    ]
    to_run = sorted((r.info.start_time - parent.info.start_time) / 1000 for r in jobs)
    print(
        f"[measure] 4-job Slurm sweep {time.monotonic() - started:.0f} s; sacct submit→start "
        f"{min(waits):.0f}–{max(waits):.0f} s; sweep start → job run {to_run[0]:.1f}–{to_run[-1]:.1f} s"
    )


METRIC_OF_A_JOB = (  # a run that logged an epoch, and its Slurm array task (ARRAY_JOB_ID_TASK_ID)
    "select r.run_uuid, a.value || '_' || t.value from metrics m join runs r on m.run_uuid = r.run_uuid "
    "join tags a on a.run_uuid = r.run_uuid and a.key = 'protstruct.slurm.array_job_id' "
    "join tags t on t.run_uuid = r.run_uuid and t.key = 'protstruct.slurm.array_task_id' "
    "where m.key = 'val/rmse' limit 1"
)


def _poll(what: str, query, timeout: float, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = query()
        except sqlite3.OperationalError:  # the store is being created, or locked for a moment
            found = None
        if found:
            return found
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the sweep exited ({proc.returncode}) before {what}")
        time.sleep(0.5)
    raise AssertionError(f"no {what} after {timeout:.0f} s")


def _code_fingerprint() -> str:
    """What the job key hashes of protstruct's code and configs (uncached)."""
    from protstruct.tracking.resume import code_fingerprint

    return getattr(code_fingerprint, "__wrapped__", code_fingerprint)(ROOT / "protstruct", ROOT / "conf")


def test_scancel_kills_a_jobs_run_and_the_rerun_resumes_only_that_job(slurm_cluster, tmp_path):
    cluster = slurm_cluster
    code = _code_fingerprint()
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    args = [
        "-m",
        "seed=0,1",
        "debug=smoke",
        "trainer.epochs=30",
        "trainer.patience=30",
        "tracking.experiment=slurm_cancel",
        *store_overrides(tmp_path),
        *_slurm_overrides(cluster, tmp_path),
    ]
    started = time.monotonic()
    env = {**cluster.env, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    sweep = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def a_job_logged_an_epoch():
            with sqlite3.connect(db) as con:
                return con.execute(METRIC_OF_A_JOB).fetchone()

        run_id, task = _poll("a job's val/rmse", a_job_logged_an_epoch, 240, sweep)
        # the array task, never the bare job id: one task's SLURM_JOB_ID is the array's id, and
        # `scancel ARRAY_ID` cancels every task
        cluster.run("scancel", task)

        client = MlflowClient(uri)
        _poll("KILLED status of the cancelled job's run", lambda: client.get_run(run_id).info.status == "KILLED", 90)
        cancelled = client.get_run(run_id)
        assert _poll(
            "sacct's CANCELLED",
            lambda: "CANCELLED" in cluster.run("sacct", "-n", "-X", "-P", "-o", "State", "-j", task).stdout,
            60,
        )
        # the other job trains on; the launcher reports the cancelled one and exits
        output, _ = sweep.communicate(timeout=240)
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.communicate()
    why = f"{output[-4000:]}\n{_job_logs(tmp_path)}"
    # submitit learnt from sacct that the task was CANCELLED without a result: the launcher fails
    assert sweep.returncode != 0 and "state: CANCELLED" in output, why
    others = _poll(
        "the other job's run, ended",
        lambda: [
            r for r in _runs(uri, "slurm_cancel", "job") if r.info.run_id != run_id and r.info.status != "RUNNING"
        ],
        240,
    )
    [other] = others
    assert other.info.status == "FINISHED", f"{other.data.tags.get('protstruct.error')}\n{why}"
    assert other.data.params["seed"] != cancelled.data.params["seed"]
    [first_parent] = _runs(uri, "slurm_cancel", "sweep")
    assert first_parent.info.status == "KILLED", first_parent.data.tags
    first_sweep_s = time.monotonic() - started

    # the same command again: the FINISHED job is reused, the cancelled one — only it — trains on,
    # resuming its KILLED run in place from its last epoch checkpoint, as a task of a new array
    proc = run_cli(args, cwd=tmp_path, env=cluster.env, timeout=420)
    output = proc.stdout + proc.stderr
    why = f"{output[-4000:]}\n{_job_logs(tmp_path)}"
    assert proc.returncode == 0, why
    summary = "sweep summary ({'ok': 1, 'skipped': 1})"
    if summary not in output and _code_fingerprint() != code:  # a checkout being edited, never CI
        pytest.skip(
            "protstruct's code or configs changed during the test: the job key covers them, so the "
            "rerun could not reuse or resume anything"
        )
    assert summary in output, why
    [second_parent] = [p for p in _runs(uri, "slurm_cancel", "sweep") if p.info.run_id != first_parent.info.run_id]
    assert second_parent.info.status == "FINISHED"
    assert second_parent.data.tags["protstruct.expected_jobs"] == "2"
    jobs = _runs(uri, "slurm_cancel", "job")
    assert sorted(r.info.run_id for r in jobs) == sorted([run_id, other.info.run_id]), "no new run: one resumed"
    resumed = client.get_run(run_id)
    assert resumed.info.status == "FINISHED"
    assert resumed.data.tags["protstruct.resumed"] == "1"
    assert resumed.data.metrics["train/resumed_from_epoch"] >= 1
    assert resumed.data.tags["protstruct.slurm.array_job_id"] != cancelled.data.tags["protstruct.slurm.array_job_id"]
    for run in (resumed, client.get_run(other.info.run_id)):  # both stand for jobs of the second sweep
        assert run.data.tags.get(f"protstruct.reused_by.{second_parent.info.run_id}") == "1"
    # the first sweep's ledger follows its resumed job: it ends FINISHED after all
    assert client.get_run(first_parent.info.run_id).info.status == "FINISHED"
    print(f"cancel sweep {first_sweep_s:.0f} s, rerun {time.monotonic() - started - first_sweep_s:.0f} s")


RUN_OF_A_JOB_AT_EPOCH_1 = (  # a run that logged val/rmse of its 2nd epoch, its status and Slurm job id
    "select r.run_uuid, r.status, j.value from metrics m join runs r on m.run_uuid = r.run_uuid "
    "join tags j on j.run_uuid = r.run_uuid and j.key = 'protstruct.slurm.job_id' "
    "where m.key = 'val/rmse' and m.step >= 1 limit 1"
)


def _show_job(cluster, job_id: str) -> dict[str, str]:
    """``scontrol show job``'s Key=Value pairs (JobState, Reason, Restarts, Requeue…)."""
    out = cluster.run("scontrol", "-o", "show", "job", job_id, check=False).stdout
    return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)


def test_scontrol_requeue_resumes_the_job_in_the_same_run(slurm_cluster, tmp_path):
    cluster = slurm_cluster
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    args = [
        "-m",
        "debug=smoke",
        "data.limit.train=24",
        "trainer.epochs=6",
        "trainer.patience=6",
        "tracking.experiment=slurm_requeue",
        *store_overrides(tmp_path),
        *_slurm_overrides(cluster, tmp_path),
    ]
    started = time.monotonic()
    env = {**cluster.env, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    sweep = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = []  # the job's states while it is requeued, for the failure message
    try:

        def the_job_logged_epoch_1():
            with sqlite3.connect(db) as con:
                return con.execute(RUN_OF_A_JOB_AT_EPOCH_1).fetchone()

        run_id, status, job_id = _poll("the job's val/rmse at step 1", the_job_logged_epoch_1, 150, sweep)
        assert status == "RUNNING", f"the job's run is {status} before the requeue: too late to requeue it"
        # what a preempting scheduler (or an admin) does: SIGTERM to the job, then back to the queue
        cluster.run("scontrol", "requeue", job_id)
        requeued_at = time.monotonic()

        client = MlflowClient(uri)
        _poll("KILLED status of the requeued job's run", lambda: client.get_run(run_id).info.status == "KILLED", 60)
        killed = client.get_run(run_id)

        # Slurm holds a requeued job back until its launch credential expires (AuthInfo cred_expire,
        # 120 s by default: StartTime = BeginTime). Bring it forward once it is pending again.
        def pending_again():
            job = _show_job(cluster, job_id)
            seen.append((job.get("JobState"), job.get("Reason")))
            return job if job.get("JobState") in ("PENDING", "RUNNING", "COMPLETED") else None

        job = _poll("the requeued job back in the queue", pending_again, 60)
        held = job.get("StartTime") if job.get("Reason") == "BeginTime" else None
        if held:
            time.sleep(1.5)  # the new launch credential must be newer than the old one's revocation
            cluster.run("scontrol", "update", f"JobId={job_id}", "StartTime=now")
        output, _ = sweep.communicate(timeout=150)
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.communicate()
    why = f"{output[-4000:]}\n{_job_logs(tmp_path)}\nstates while requeued: {seen}"
    # submitit's watcher saw REQUEUED/PENDING/RUNNING as not done, then the result of the rerun
    assert sweep.returncode == 0, why
    assert "sweep summary ({'ok': 1})" in output, why

    [parent] = _runs(uri, "slurm_requeue", "sweep")
    assert parent.info.status == "FINISHED", parent.data.tags
    [run] = _runs(uri, "slurm_requeue", "job")  # no second run: the requeued job resumed the KILLED one
    assert run.info.run_id == run_id
    assert run.info.status == "FINISHED", f"{run.data.tags.get('protstruct.error')}\n{why}"
    assert run.data.tags["protstruct.resumed"] == "1"
    assert run.data.metrics["train/resumed_from_epoch"] >= 1
    steps = [m.step for m in client.get_metric_history(run_id, "val/rmse")]
    assert sorted(steps) == list(range(6)), steps  # each epoch once: none lost, none logged twice
    # the same Slurm job, run twice: SLURM_RESTART_COUNT=1 the second time, two records in sacct
    assert run.data.tags["protstruct.slurm.job_id"] == killed.data.tags["protstruct.slurm.job_id"] == job_id
    assert "protstruct.slurm.restart_count" not in killed.data.tags
    assert run.data.tags["protstruct.slurm.restart_count"] == "1"
    assert _show_job(cluster, job_id).get("Restarts") == "1"
    both = ["REQUEUED", "COMPLETED"]  # sacct -D: every run of the job, not only its latest
    assert _poll(
        "both of the job's records in sacct",
        lambda: cluster.run("sacct", "-D", "-X", "-n", "-P", "-o", "State", "-j", job_id).stdout.split() == both,
        60,
    )
    print(
        f"[measure] requeue sweep {time.monotonic() - started:.0f} s (requeue → end "
        f"{time.monotonic() - requeued_at:.0f} s; held until {held}, moved to now); states {sorted(set(seen))}"
    )
