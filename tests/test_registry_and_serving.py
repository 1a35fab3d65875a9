"""The study's champion goes into MLflow's registry; users who trust their store serve it with
MLflow's own server; protstruct's predict reads it by alias without MLflow's loaders."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from protstruct.report.__main__ import main as report
from tests.conftest import ROOT, run_cli, store_overrides

NAME = "smoke_distances"


@pytest.fixture(scope="module")
def champion(tmp_path_factory):
    base = tmp_path_factory.mktemp("registry")
    # one variant cannot learn at all (learning rate 0): the champion must be the other one
    proc = run_cli(
        [
            "-m",
            "optimizer.learning_rate=0.0,1e-2",
            "debug=smoke",
            "trainer.epochs=2",
            "tracking.experiment=champ",
            "tracking.system_metrics=false",
            *store_overrides(base),
            f"hydra.sweep.dir={base}/sweep",
        ],
        cwd=base,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    uri = f"sqlite:///{base}/mlflow.db"
    assert (
        report(
            [
                "--tracking-uri",
                uri,
                "--experiment",
                "champ",
                "--group-by",
                "optimizer.learning_rate",
                "--reference",
                "",
                "--out",
                str(base / "report"),
                "--register",
                NAME,
            ]
        )
        == 0
    )
    return {"base": base, "uri": uri}


def test_the_champion_is_registered_with_its_alias_and_report(champion):
    client = MlflowClient(champion["uri"], registry_uri=champion["uri"])
    version = client.get_model_version_by_alias(NAME, "champion")
    run = client.get_run(version.run_id)
    assert run.data.params["optimizer.learning_rate"] == "0.01"
    model_id = version.model_id or version.tags["protstruct.model_id"]  # SQL registries drop model_id
    assert client.get_logged_model(model_id).source_run_id == run.info.run_id
    assert version.tags["protstruct.report"].endswith("/report/report.html")
    assert version.tags["protstruct.variant"] == "optimizer.learning_rate=0.01"


def test_predict_reads_the_champion_by_alias(champion, tmp_path):
    from protstruct.predict import main as predict

    assert (
        predict(
            [
                "--model",
                f"models:/{NAME}@champion",
                "--sequence",
                "ACDEFGHIKLMNPQRSTVWY" * 2,
                "--tracking-uri",
                champion["uri"],
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    assert np.load(tmp_path / "sequence.npy").shape == (40, 40)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mlflow_models_serve_answers_a_real_rest_request(champion, tmp_path):
    port = _free_port()
    bin_dir = os.path.dirname(sys.executable)  # the server starts uvicorn from the same environment
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": champion["uri"],
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    mlflow_cli = os.path.join(bin_dir, "mlflow")
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - the server writes it for its whole life
    server = subprocess.Popen(
        [
            mlflow_cli,
            "models",
            "serve",
            "-m",
            f"models:/{NAME}@champion",
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.time() > deadline:
                pytest.fail("mlflow models serve did not start:\n" + (tmp_path / "serve.log").read_text()[-3000:])
            time.sleep(1)
        window = np.abs(np.arange(32)[:, None] - np.arange(32)[None, :]).astype(np.float32)[None, ..., None]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps({"inputs": window.tolist()}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as r:
            predictions = np.asarray(json.loads(r.read())["predictions"])
        assert predictions.shape == (1, 32, 32, 1) and np.isfinite(predictions).all()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        log.close()
