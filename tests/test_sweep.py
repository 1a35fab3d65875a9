"""The real CLI: `python run.py -m decoder=transpose,upsample debug=smoke` → MLflow runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

PER_EPOCH = ("train/loss", "val/loss", "val/rmse")
FINAL = (
    "test/mse",
    "test/rmse",
    "test/mse_original",
    "model/params",
    "baseline/test_rmse",
    "test/lddt",
    "test/mae_lt15",
    "test/contact_p_l5",
    "test/contact_p_l",
    "baseline/test_lddt",
)


@pytest.fixture(scope="module")
def runs(smoke_sweep):
    client = MlflowClient(smoke_sweep["uri"])
    exp = client.get_experiment_by_name(smoke_sweep["experiment"])
    all_runs = client.search_runs([exp.experiment_id])
    parents = [r for r in all_runs if r.data.tags.get("protstruct.role") == "sweep"]
    children = [r for r in all_runs if r.data.tags.get("protstruct.role") == "job"]
    return client, exp, parents, children


def test_one_parent_two_finished_children(runs, smoke_sweep):
    _client, exp, parents, children = runs
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert all(c.info.status == "FINISHED" for c in children)
    assert sorted(c.info.run_name for c in children) == ["decoder=transpose", "decoder=upsample"]
    assert parent.data.tags["protstruct.expected_jobs"] == "2"
    assert not (smoke_sweep["sweep_dir"] / "mlflow_parent_run_id").exists()  # no path-based lookup
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    assert exp.artifact_location.startswith(f"file://{smoke_sweep['base']}/artifacts")


def test_children_carry_metrics_params_and_tags(runs):
    client, _, _, children = runs
    for run in children:
        metrics = run.data.metrics
        for key in PER_EPOCH + FINAL:
            assert key in metrics and math.isfinite(metrics[key]), key
        assert "test/mae_lr8" in metrics  # NaN when no window has a long-range contact
        assert 0.0 <= metrics["test/lddt"] <= 1.0
        for key in PER_EPOCH:
            history = client.get_metric_history(run.info.run_id, key)
            assert [m.step for m in history] == [0]  # one epoch in debug=smoke
        assert metrics["test/rmse"] == pytest.approx(math.sqrt(metrics["test/mse"]), rel=1e-6)
        params, tags = run.data.params, run.data.tags
        assert params["data.crop_size"] == "32" and params["trainer.epochs"] == "1"
        assert params["dropout.rate"] == "0.0" and "overrides" in params
        assert tags["protstruct.decoder"] in ("transpose", "upsample")
        assert tags["protstruct.backbone"] == "small_cnn" and tags["protstruct.dropout"] == "none"
        assert tags["protstruct.git_commit"] and tags["protstruct.output_dir"]
        assert len(tags["data.fingerprint"]) == 64


def test_children_have_their_artifacts(runs):
    client, _, _, children = runs
    for run in children:
        rid = run.info.run_id
        listed = {
            a.path
            for folder in ("", "config", "hydra", "logs", "plots", "data", "evaluation")
            for a in client.list_artifacts(rid, folder or None)
        }
        for needed in (
            "config/resolved.yaml",
            "hydra/config.yaml",
            "hydra/overrides.yaml",
            "plots/loss_curve.png",
            "data/data_manifest.json",
            "evaluation/test_per_protein.csv",
            "evaluation/test_predictions.npz",
        ):
            assert needed in listed, (needed, listed)
        assert any(p.startswith("logs/") and p.endswith(".log") for p in listed)
        assert "model" not in listed  # the model is stored once, as an MLflow Model


def test_children_carry_mlflows_own_lineage(runs):
    _client, _, _, children = runs
    digests = []
    for run in children:
        tags = run.data.tags
        assert tags["mlflow.source.name"].endswith("run.py") and tags["mlflow.source.type"] == "LOCAL"
        assert tags["mlflow.user"]
        inputs = {i.tags[0].value: i.dataset for i in run.inputs.dataset_inputs}
        assert set(inputs) == {"train", "val", "test"}
        for split, dataset in inputs.items():
            assert dataset.name == f"embedded:proteins.json.gz/{split}" and len(dataset.digest) == 32
            assert json.loads(dataset.profile)["chains"] == {"train": 12, "val": 4, "test": 4}[split]
            assert json.loads(dataset.source)["uri"].endswith("proteins.json.gz")
        digests.append({s: d.digest for s, d in inputs.items()})
        assert "system/cpu_utilization_percentage" in run.data.metrics  # MLflow's system metrics
    assert digests[0] == digests[1]  # same data, same digest


def test_the_model_is_an_mlflow_model_linked_to_its_test_metrics(runs):
    import mlflow.models
    import mlflow.pyfunc
    import numpy as np

    from protstruct.tracking import models

    client, _, _, children = runs
    for run in children:
        logged = client.get_logged_model(models.run_model_id(client, run))
        assert logged.source_run_id == run.info.run_id and str(logged.status).endswith("READY")
        linked = {m.key: m.value for m in logged.metrics}
        assert linked["test/rmse"] == run.data.metrics["test/rmse"]
        folder = Path(logged.artifact_location.removeprefix("file://"))
        info = mlflow.models.get_model_info(str(folder))
        assert list(info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == [-1, 32, 32, 1]
        assert "keras" in info.flavors and (folder / "data" / "model.keras").is_file()
        assert not (folder / "code").exists() and not list(folder.rglob("*.pkl"))  # no code, no pickles
        # a user who trusts the store may load it with MLflow's own tools
        loaded = mlflow.pyfunc.load_model(str(folder))
        assert np.asarray(loaded.predict(np.zeros((1, 32, 32, 1), np.float32))).shape == (1, 32, 32, 1)


def test_progress_and_job_summaries_are_printed(smoke_sweep):
    out = smoke_sweep["output"]
    assert "val_rmse" in out  # Keras' per-epoch progress line
    assert out.count("[ok] decoder=") == 2 and "test/rmse=" in out
    assert "sweep summary ({'ok': 2})" in out


def test_predict_writes_matrix_and_heatmap_for_a_structure_and_a_sequence(runs, smoke_sweep, tmp_path):
    import numpy as np

    from protstruct.data import embedded
    from protstruct.predict import main as predict
    from tests import fixtures as fx

    _, _, _, children = runs
    run_id = children[0].info.run_id
    record = next(r for r in embedded.load()["test"] if 60 <= r.length <= 120)
    pdb = fx.write_pdb(record, tmp_path / "query.pdb", entry="QURY")
    assert (
        predict(
            [
                "--run-id",
                run_id,
                "--structure",
                str(pdb),
                "--tracking-uri",
                smoke_sweep["uri"],
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    (npy,) = (tmp_path / "out").glob("*.npy")
    pred = np.load(npy)
    assert pred.shape == (record.length, record.length)
    assert np.isfinite(np.diagonal(pred)).all() and np.isfinite(pred[:16, :16]).all()
    assert npy.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert (
        predict(
            [
                "--run-id",
                run_id,
                "--sequence",
                "ACDEFGHIKLMNPQRSTVWY" * 2,
                "--tracking-uri",
                smoke_sweep["uri"],
                "--out",
                str(tmp_path / "seq"),
            ]
        )
        == 0
    )
    assert np.load(tmp_path / "seq" / "sequence.npy").shape == (40, 40)
    assert predict(["--run-id", run_id, "--sequence", "AC1", "--tracking-uri", smoke_sweep["uri"]]) == 2
