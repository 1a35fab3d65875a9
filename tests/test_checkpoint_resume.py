"""A job killed mid-training continues from its last epoch checkpoint in the same MLflow run, and
ends exactly where an uninterrupted twin ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT, run_cli, store_overrides
from tests.test_lifecycle import METRIC_LOGGED, _wait_for

# small_cnn at crop 32; 24 training proteins = 6 steps per epoch, so an epoch lasts long enough
# to kill the job between the end of epoch 2 and the end of epoch 3; a high learning rate makes
# the best validation epoch an early one, so early stopping's best weights matter after the kill
JOB = [
    "debug=smoke",
    "data.limit.train=24",
    "trainer.epochs=4",
    "trainer.patience=4",
    "optimizer.learning_rate=3e-3",
    "seed=3",
]
FINAL = ("test/mse", "test/rmse", "test/lddt", "baseline/test_mse", "train/best_epoch")


def _only_run(base, experiment):
    client = MlflowClient(f"sqlite:///{base}/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return client, run


def test_a_sigkilled_job_resumes_in_the_same_run_and_matches_its_uninterrupted_twin(tmp_path):
    twin = run_cli(
        [*JOB, "tracking.experiment=twin", *store_overrides(tmp_path), f"hydra.run.dir={tmp_path}/twin"], cwd=tmp_path
    )
    assert twin.returncode == 0, twin.stderr[-3000:]
    _, twin_run = _only_run(tmp_path, "twin")
    assert twin_run.data.metrics["train/best_epoch"] < 2, "precondition: best epoch before the kill"

    args = [
        sys.executable,
        str(ROOT / "run.py"),
        *JOB,
        "tracking.experiment=resume",
        *store_overrides(tmp_path),
        f"hydra.run.dir={tmp_path}/job",
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # epochs log after their checkpoint: step 1 logged ⇒ the checkpoint after epoch 2 exists
        found = _wait_for(tmp_path / "mlflow.db", METRIC_LOGGED + " and m.step = 1", ("resume", "val/rmse"), proc)
        assert found, "the job never finished its second epoch"
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    client, killed = _only_run(tmp_path, "resume")
    assert killed.info.status == "RUNNING"  # nothing could end it

    again = run_cli(
        [*JOB, "tracking.experiment=resume", *store_overrides(tmp_path), f"hydra.run.dir={tmp_path}/job2"], cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "[resumed]" in again.stdout + again.stderr
    client, run = _only_run(tmp_path, "resume")  # still exactly one run
    assert run.info.run_id == killed.info.run_id and run.info.status == "FINISHED"
    assert run.data.metrics["train/resumed_from_epoch"] == 2
    for key in ("val/rmse", "val/loss", "train/loss"):
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, key)) == [0, 1, 2, 3], key
    for key in FINAL:
        assert run.data.metrics[key] == pytest.approx(twin_run.data.metrics[key], rel=1e-5), key
    twin_curve = [
        m.value for m in sorted(client.get_metric_history(twin_run.info.run_id, "val/rmse"), key=lambda m: m.step)
    ]
    curve = [m.value for m in sorted(client.get_metric_history(run.info.run_id, "val/rmse"), key=lambda m: m.step)]
    np.testing.assert_allclose(curve, twin_curve, rtol=1e-5)
    assert not (tmp_path / "job" / "checkpoints").exists() or not any((tmp_path / "job" / "checkpoints").iterdir())
