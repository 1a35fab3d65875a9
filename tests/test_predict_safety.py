"""`python -m protstruct.predict` treats everything it reads from a run, or from an input file, as
data: a tampered `config/resolved.yaml` or `model/model.keras` is a clear error (exit 2) and its
payload never runs; a structure's own `_entry.id` cannot steer the output outside `--out`.

Tampered runs live in their own throwaway SQLite store; the shared smoke sweep is only read."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from protstruct.tracking import models

ROOT = Path(__file__).resolve().parents[1]
SEQUENCE = "MKTAYIAKQRQISFVKSHFSRQ"


def predict(run_id: str, uri: str, out: Path, *source: str):
    """``python -m protstruct.predict`` for real, in a subprocess (cwd: the repository root)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "protstruct.predict",
            "--run-id",
            run_id,
            "--tracking-uri",
            uri,
            "--out",
            str(out),
            *(source or ("--sequence", SEQUENCE)),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def smoke_run(smoke_sweep, tmp_path_factory):
    """A real smoke run (read only) and local copies of its model and resolved config."""
    client = MlflowClient(smoke_sweep["uri"])
    exp = client.get_experiment_by_name(smoke_sweep["experiment"])
    run = next(r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("protstruct.role") == "job")
    local = tmp_path_factory.mktemp("smoke_copy")
    model_id = models.run_model_id(client, run)
    model = Path(models.download_keras(client, run.info.run_id, model_id, str(local))[0])
    resolved = Path(client.download_artifacts(run.info.run_id, "config/resolved.yaml", str(local)))
    cfg = yaml.safe_load(resolved.read_text())
    return {"run_id": run.info.run_id, "uri": smoke_sweep["uri"], "model": model, "cfg": cfg}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A new SQLite store; ``store["log"](model_path, cfg)`` adds a FINISHED run holding them."""
    base = tmp_path_factory.mktemp("tampered_store")
    uri = f"sqlite:///{base}/mlflow.db"
    client = MlflowClient(uri)
    exp = client.create_experiment("tampered", artifact_location=(base / "artifacts").as_uri())

    def log(model_path: Path, cfg: dict) -> str:
        run_id = client.create_run(exp).info.run_id
        staging = base / "staging" / run_id
        staging.mkdir(parents=True)
        shutil.copyfile(model_path, staging / "model.keras")
        (staging / "resolved.yaml").write_text(yaml.safe_dump(cfg))
        client.log_artifact(run_id, str(staging / "model.keras"), "model")
        client.log_artifact(run_id, str(staging / "resolved.yaml"), "config")
        client.set_terminated(run_id, "FINISHED")
        return run_id

    return {"uri": uri, "log": log}


def _no_output(out: Path) -> bool:
    return not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("payload", ["open", "copyfile"])
def test_tampered_feature_target_is_refused_not_called(smoke_run, store, tmp_path, payload):
    victim = tmp_path / "victim"
    victim.mkdir()
    source = tmp_path / "secret.txt"
    source.write_text("not for copying")
    spec = (
        {"_target_": "builtins.open", "file": str(victim / "pwned"), "mode": "w"}
        if payload == "open"
        else {"_target_": "shutil.copyfile", "src": str(source), "dst": str(victim / "pwned")}
    )
    run_id = store["log"](smoke_run["model"], {**smoke_run["cfg"], "features": spec})
    proc = predict(run_id, store["uri"], tmp_path / "out")
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "protstruct.predict:" in proc.stderr and "config/resolved.yaml" in proc.stderr
    assert spec["_target_"] in proc.stderr and "Traceback" not in proc.stderr
    assert not any(victim.iterdir()), "the payload ran"
    assert _no_output(tmp_path / "out")


def test_model_with_a_lambda_layer_is_refused_and_never_runs(smoke_run, store, tmp_path):
    import keras

    crop = smoke_run["cfg"]["data"]["crop_size"]
    marker = tmp_path / "lambda_ran"
    marker_path = str(marker)  # a str in the lambda's closure (what keras serializes with its bytecode)
    inputs = keras.Input((crop, crop, 1))
    # what a hostile model would run when loaded (or on predict): write a file
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: (open(marker_path, "w").close(), x)[1])(inputs))
    model.save(tmp_path / "model.keras")
    marker.unlink(missing_ok=True)  # building the model traced the lambda once, here
    run_id = store["log"](tmp_path / "model.keras", smoke_run["cfg"])
    proc = predict(run_id, store["uri"], tmp_path / "out")
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "protstruct.predict:" in proc.stderr and "model/model.keras" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not marker.exists(), "the Lambda's function ran"
    assert _no_output(tmp_path / "out")


def test_entry_id_cannot_write_outside_out(smoke_run, tmp_path):
    import gemmi

    from protstruct.data import embedded
    from protstruct.data.structures import read_structure_file
    from tests import fixtures as fx

    record = next(r for r in embedded.load()["test"] if 40 <= r.length <= 80)
    cif = tmp_path / "query.cif"
    fx.write_cif(record, cif)
    doc = gemmi.cif.read(str(cif))
    doc.sole_block().set_pair("_entry.id", gemmi.cif.quote("../escape"))
    doc.write_file(str(cif))
    (parsed,), _ = read_structure_file(cif, "test", min_length=1)
    assert parsed.id.startswith("../"), parsed.id  # the hostile id reaches the record
    work = tmp_path / "work"
    out = work / "out"
    proc = predict(smoke_run["run_id"], smoke_run["uri"], out, "--structure", str(cif))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    written = sorted(p for p in tmp_path.rglob("*") if p.is_file() and p != cif)
    assert written and all(p.parent == out for p in written), written
    assert not any(p.name.startswith(".") for p in written)
    (npy,) = out.glob("*.npy")
    assert np.load(npy).shape == (parsed.length, parsed.length)


def test_predict_still_writes_a_matrix_for_a_real_run(smoke_run, tmp_path):
    proc = predict(smoke_run["run_id"], smoke_run["uri"], tmp_path / "out")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    pred = np.load(tmp_path / "out" / "sequence.npy")
    assert pred.shape == (len(SEQUENCE), len(SEQUENCE))
    assert np.isfinite(np.diagonal(pred)).all()
    assert (tmp_path / "out" / "sequence.png").read_bytes()[:4] == b"\x89PNG"


def test_feature_specs_and_file_names_are_checked_as_data():
    from protstruct.data.features import Combined, RelativePosition, features_from_spec
    from protstruct.predict import output_name

    where = "run R artifact config/resolved.yaml"
    built = features_from_spec(
        {
            "_target_": "protstruct.data.features.Combined",
            "parts": [
                {"_target_": "protstruct.data.features.RelativePosition", "scale": 2},
                {"_target_": "protstruct.data.features.SequencePairs"},
            ],
        },
        where,
    )
    assert isinstance(built, Combined) and isinstance(built.parts[0], RelativePosition)
    assert built.parts[0].scale == 2.0 and built.channels == 43
    for bad in (
        {"_target_": "builtins.open", "file": "x"},
        {"_target_": "hydra.utils.instantiate"},
        {"_target_": "protstruct.data.features.RelativePosition", "scale": float("inf")},
        {"_target_": "protstruct.data.features.RelativePosition", "scale": "1"},
        {"_target_": "protstruct.data.features.RelativePosition", "_partial_": True},
        {"_target_": "protstruct.data.features.Combined", "parts": [{"_target_": "os.system"}]},
        {"_target_": "protstruct.data.features.Combined"},
        None,
        [],
    ):
        with pytest.raises(ValueError, match=r"^run R artifact config/resolved\.yaml: features"):
            features_from_spec(bad, where)
    for hostile in ("../escape_A", "..", "", "/etc/passwd", "a/../../b", ".hidden", "x\x00y"):
        name = output_name(hostile)
        assert (
            name
            and not name.startswith(".")
            and set(name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        ), (hostile, name)
    assert output_name("1ABC_A") == "1ABC_A"
