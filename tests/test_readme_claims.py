"""README claims that no other test pinned: each test quotes the claim it checks (README section in
its docstring). All of them are cheap (no training, no daemon): config composition, the data
readers, the command-line tools as subprocesses, a throwaway MLflow store."""

from __future__ import annotations

import gzip
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hydra.utils import instantiate

from protstruct.data import embedded, folder, synthetic_casp
from protstruct.data.records import ProteinRecord
from protstruct.data.structures import read_structure_file
from tests import fixtures as fx
from tests.compose import compose_config, resolved
from tests.conftest import ROOT


def _python(*args: str, cwd, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def _distinct_records(n: int, max_length: int = 200) -> list[ProteinRecord]:
    """n embedded chains of distinct sequence clusters (a homology split needs unrelated chains)."""
    out, clusters = [], set()
    for r in embedded.load()["train"]:
        if r.length <= max_length and r.meta["cluster"] not in clusters:
            clusters.add(r.meta["cluster"])
            out.append(r)
        if len(out) == n:
            return out
    raise AssertionError("not enough distinct embedded chains")


# ---- Config groups ---------------------------------------------------------------------------


def test_smoke_is_a_small_backbone_crop_32_12_4_4_proteins_one_epoch():
    """Config groups: `debug` `smoke` — "small backbone, crop 32, 12/4/4 proteins, one epoch"."""
    cfg = compose_config("debug=smoke")
    assert cfg.hydra.runtime.choices.backbone == "small_cnn"
    assert cfg.data.crop_size == 32 and dict(cfg.data.limit) == {"train": 12, "val": 4, "test": 4}
    assert cfg.trainer.epochs == 1


def test_backbone_strides_and_adam_learning_rates():
    """Config groups: `resnet50` stride 32, `small_cnn` stride 8; `adam` (1e-3), `adam_original` (1e-6)."""
    strides = {b: compose_config(f"backbone={b}").backbone.output_stride for b in ("resnet50", "small_cnn")}
    assert strides == {"resnet50": 32, "small_cnn": 8}
    rates = {o: compose_config(f"optimizer={o}").optimizer.learning_rate for o in ("adam", "adam_original")}
    assert rates == {"adam": 1e-3, "adam_original": 1e-6}


def test_the_study_trains_with_patience_4_and_batchnorm_momentum_0_9():
    """The P0-vs-P1 study: "crop 64, Adam 1e-3, up to 10 epochs (early stopping, patience 4) and
    BatchNorm momentum 0.9"."""
    cfg = compose_config("study=p0_vs_p1")
    assert cfg.optimizer._target_ == "keras.optimizers.Adam" and cfg.optimizer.learning_rate == 1e-3
    assert (cfg.data.crop_size, cfg.trainer.epochs, cfg.trainer.patience) == (64, 10, 4)
    assert cfg.backbone.build.bn_momentum == 0.9


FAITHFUL = [
    "study=p0_vs_p1",
    "optimizer=adam_original",
    "data.crop_size=256",
    "trainer.epochs=5",
    "backbone.build.bn_momentum=null",
]


@pytest.mark.parametrize("experiment, decoder, dropout", [("p0", "transpose", "none"), ("p1", "upsample", "original")])
def test_the_faithful_override_of_the_study_trains_as_the_original_report(experiment, decoder, dropout):
    """The P0-vs-P1 study: "The run faithful to the original report is one override away:
    `python run.py -m study=p0_vs_p1 optimizer=adam_original data.crop_size=256 trainer.epochs=5
    backbone.build.bn_momentum=null`" — each of its jobs trains as `experiment=p0` / `experiment=p1`."""
    job = resolved(compose_config(*FAITHFUL, f"decoder={decoder}", f"dropout={dropout}"))
    original = resolved(compose_config(f"experiment={experiment}"))
    for key in ("backbone", "decoder", "dropout", "optimizer", "attention", "loss", "target", "features"):
        assert job[key] == original[key], key
    for key in ("crop_size", "limit"):
        assert job["data"][key] == original["data"][key], key
    for key in ("epochs", "batch_size"):
        assert job["trainer"][key] == original["trainer"][key], key


def test_folder_sources_validate_on_at_most_1000_chains_by_default():
    """Your own data: "`data.val_sample` (default 1000 for `proteinnet` and `structures`)"; the
    embedded set validates on all of its chains."""
    for kind in ("proteinnet", "structures"):
        assert compose_config(f"data={kind}", "data.path=x").data.val_sample == 1000
    assert compose_config("data=embedded").data.get("val_sample") is None


# ---- Your own data: the parse cache's location -------------------------------------------------


def test_the_parse_cache_lives_in_protstruct_cache_home_or_data_cache_dir(tmp_path, monkeypatch):
    """Your own data: "The parse cache (`$PROTSTRUCT_CACHE`, default `~/.cache/protstruct`, or
    `data.cache_dir`)" — each chooses where a run's parse is stored."""
    casp = tmp_path / "casp"
    synthetic_casp.write(casp, 20, thinnings=(30,), seed=2, validation=14, testing=10)
    home, env, chosen = tmp_path / "home", tmp_path / "env_cache", tmp_path / "chosen"
    roots = (home / ".cache" / "protstruct", env, chosen)

    def entries():  # per root: parse-cache entries (one per file: training_30, validation, testing)
        return [len(list(root.glob("records-v*/*/*.npz"))) for root in roots]

    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("PROTSTRUCT_CACHE", raising=False)
    folder.load(casp, "proteinnet", thinning=30)
    assert entries() == [3, 0, 0]
    monkeypatch.setenv("PROTSTRUCT_CACHE", str(env))
    folder.load(casp, "proteinnet", thinning=30)
    assert entries() == [3, 3, 0]
    cfg = compose_config("data=proteinnet", f"data.path={casp}", "data.thinning=30", f"data.cache_dir={chosen}")
    instantiate(cfg.data.source)
    assert entries() == [3, 3, 3]


# ---- Your own data: structure folders ---------------------------------------------------------


def test_a_structure_folder_is_read_recursively_gz_too_with_ids_from_the_entry_or_the_file_name(tmp_path):
    """Your own data: "a folder of PDB/mmCIF (.gz too), recursive"; "IDs are `ENTRY_CHAIN` (the
    HEADER/`_entry.id` code, else the file name)"."""
    records = _distinct_records(10)
    d = tmp_path / "mirror"
    (d / "ab" / "cd").mkdir(parents=True)
    (d / "ef").mkdir()
    fx.write_pdb(records[0], d / "top.pdb", entry="1TOP")
    fx.write_pdb(records[1], d / "ab" / "nested.pdb.gz", entry="2GZP")
    fx.write_cif(records[2], d / "ab" / "cd" / "deep.cif")
    cif = (d / "ab" / "cd" / "deep.cif").read_bytes()
    (d / "ab" / "cd" / "deep.cif").unlink()
    (d / "ab" / "cd" / "3cif.cif.gz").write_bytes(gzip.compress(cif.replace(b"deep.tmp", b"3CIF"), mtime=0))
    fx.write_pdb(records[3], d / "ef" / "pdb4abc.ent", entry="4ENT")
    fx.write_pdb(records[4], d / "ef" / "noheader.pdb")  # no HEADER: the file name names the entry
    for i, r in enumerate(records[5:]):
        fx.write_pdb(r, d / "ef" / f"x{i}.pdb", entry=f"9X{i:02d}")
    kept, skips, _ = folder.load(d, "structures", cache_dir=tmp_path / "cache")
    assert skips == []
    ids = {r.id for r in kept}
    assert {"1TOP_A", "2GZP_A", "3CIF_A", "4ENT_A", "NOHEADER_A"} <= ids and len(ids) == 10
    by_id = {r.id: r for r in kept}
    np.testing.assert_allclose(by_id["2GZP_A"].ca[records[1].mask], records[1].ca[records[1].mask], atol=1e-3)


def test_an_unknown_residue_inside_a_chain_is_a_masked_x(tmp_path):
    """Your own data: "modified residues mapped to their parent (else a masked `X`)"."""
    lines = [fx.atom_line(i + 1, "CA", "ALA", "A", i + 1, (3.8 * i, 0, 0)) for i in range(50)]
    lines[20] = fx.atom_line(21, "CA", "XYZ", "A", 21, (3.8 * 20, 0, 0), het=True, element="C")
    (tmp_path / "x.pdb").write_text("\n".join([*lines, "END"]) + "\n")
    (rec,), skips = read_structure_file(tmp_path / "x.pdb", "test")
    assert skips == [] and rec.length == 50 and rec.sequence[20] == "X" and not rec.mask[20]
    assert rec.mask[:20].all() and rec.mask[21:].all()


# ---- Your own data: ProteinNet ----------------------------------------------------------------


def test_the_synthetic_casp_command_writes_the_release_layout(tmp_path):
    """Your own data: "`python -m protstruct.data.synthetic_casp OUT --records N --thinning 30`
    writes a synthetic folder of that layout (with PSSMs)"."""
    _python(
        "-m",
        "protstruct.data.synthetic_casp",
        str(tmp_path / "casp12"),
        "--records",
        "40",
        "--thinning",
        "30",
        cwd=tmp_path,
    )
    out = tmp_path / "casp12"
    assert sorted(p.name for p in out.iterdir()) == ["testing", "training_30", "validation"]
    records, skips, splits = folder.load(out, "proteinnet", cache_dir=tmp_path / "cache", thinning=30)
    assert skips == [] and set(splits) == {"train", "val", "test"}
    assert all(r.pssm is not None and r.pssm.shape == (r.length, 20) for r in records)


def test_summarize_a_casp_folder_with_a_thinning_and_two_validation_bins(tmp_path):
    """Your own data: "`python -m protstruct.data summarize casp12/ --thinning 30
    --validation-identity 30 50`" — the thinning's training set, the two bins' validation records,
    the whole test set."""
    casp = tmp_path / "casp12"
    counts = synthetic_casp.write(casp, 60, thinnings=(30, 50), seed=4, validation=14, testing=10)
    proc = _python(
        "-m",
        "protstruct.data",
        "summarize",
        str(casp),
        "--thinning",
        "30",
        "--validation-identity",
        "30",
        "50",
        "--cache-dir",
        str(tmp_path / "cache"),
        cwd=tmp_path,
    )
    lines = proc.stdout.splitlines()
    assert f"chains kept: {counts['training_30'] + 4 + 10} (train {counts['training_30']}, val 4, test 10)" in lines
    assert "validation identity bins: 30%: 2, 50%: 2" in lines and "skipped: 0" in lines


def test_summarize_takes_the_split_settings_and_reports_entries_and_components(tmp_path):
    """Your own data: `summarize` takes the split settings a run takes (`data.split.identity`,
    `data.split.coverage` as `--split-identity`, `--split-coverage`) and prints the PDB entries and
    homology components with the largest share."""
    pdbs = tmp_path / "pdbs"
    pdbs.mkdir()
    for i, rec in enumerate(embedded.load()["train"][:40:3]):
        fx.write_pdb(rec, pdbs / f"s{i:02d}.pdb", entry=f"E{i:03d}")
    args = ["-m", "protstruct.data", "summarize", str(pdbs), "--cache-dir", str(tmp_path / "cache")]
    lines = _python(*args, "--split-identity", "0.9", "--split-coverage", "0.5", cwd=tmp_path).stdout.splitlines()
    assert any(line.startswith("entries: 14, the largest") for line in lines), lines
    (components,) = [line for line in lines if line.startswith("components:")]
    assert "identity >= 0.9 over >= 0.5 of both chains" in components
    default = _python(*args, cwd=tmp_path).stdout
    assert "identity >= 0.3 over >= 0.8 of both chains" in default


def test_the_per_protein_table_names_a_test_targets_category():
    """Your own data: "a test target's category prefix (`TBM#`, `FM#`, …) [is a column] of each run's
    per-protein CSV"."""
    from protstruct.train.evaluate import evaluate_test_set

    train = _distinct_records(4)
    test = []
    for rid, r in zip(("TBM#T0366", "FM#T0999", "T0100"), _distinct_records(7)[4:]):
        test.append(ProteinRecord(rid, r.sequence, r.ca, r.mask))
    crop = 32
    _, table, _ = evaluate_test_set(np.zeros((len(test), crop, crop, 1), np.float32), test, train, crop)
    assert isinstance(table, pd.DataFrame)
    assert list(table["protein"]) == ["TBM#T0366", "FM#T0999", "T0100"]
    assert list(table["category"]) == ["TBM", "FM", ""]
    assert "validation_identity" in table.columns


def test_pssm_features_need_a_source_with_pssms():
    """Input features: "`pssm` (+ PSSM rows of both residues, 83 channels; needs a source with PSSMs)"
    — the embedded set has none: one clear error, not zeros."""
    from protstruct.data.pipeline import eval_dataset

    features = instantiate(compose_config("features=pssm").features)
    with pytest.raises(ValueError, match=r"PSSM pair features need a source with PSSMs"):
        eval_dataset(_distinct_records(2), 32, 2, features)


# ---- Models in MLflow's format and registry -----------------------------------------------------


def test_every_model_reference_form_names_the_same_run_and_model(tmp_path):
    """Models: "`protstruct.predict` takes a run id, `runs:/RUN_ID`, `models:/NAME@ALIAS`,
    `models:/NAME/VERSION` or `models:/MODEL_ID`" — all five resolve to the job's run and model."""
    from mlflow.tracking import MlflowClient

    from protstruct.tracking import models

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.create_experiment("refs", artifact_location=(tmp_path / "artifacts").as_uri())
    run = client.create_run(exp).info.run_id
    model = client.create_logged_model(exp, source_run_id=run, name=models.MODEL_NAME)
    client.finalize_logged_model(model.model_id, "READY")
    client.set_terminated(run)
    version = models.register(client, "protstruct-refs", run, model.model_id, {}, "the champion")
    forms = (
        run,
        f"runs:/{run}",
        "models:/protstruct-refs@champion",
        f"models:/protstruct-refs/{version}",
        f"models:/{model.model_id}",
    )
    assert {ref: models.resolve(client, ref) for ref in forms} == dict.fromkeys(forms, (run, model.model_id))
    legacy = client.create_run(exp).info.run_id  # a run from before logged models: its model/model.keras
    assert models.resolve(client, f"runs:/{legacy}") == (legacy, None)
    with pytest.raises(ValueError, match="expected a run id, runs:/RUN_ID, models:/NAME@ALIAS"):
        models.resolve(client, "s3://bucket/model")


# ---- Comparing runs in the MLflow UI ----------------------------------------------------------


def test_make_mlflow_ui_serves_the_projects_store_on_loopback():
    """Comparing runs: "`make mlflow-ui` = .venv/bin/mlflow ui --backend-store-uri
    sqlite:///$PWD/mlflow.db --host 127.0.0.1 --port 5000"."""
    proc = subprocess.run(
        ["make", "-n", "--no-print-directory", "mlflow-ui"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    (line,) = [line for line in proc.stdout.splitlines() if " ui " in line]
    assert f".venv/bin/mlflow ui --backend-store-uri sqlite:///{ROOT}/mlflow.db --host 127.0.0.1 --port 5000" in line


# ---- Reports, variants and predictions --------------------------------------------------------


class _WindowCounter:
    """A stand-in model: the k-th window it sees is predicted as the constant k."""

    def __init__(self):
        self.calls = 0

    def predict_on_batch(self, batch):
        out = np.full((*batch.shape[:3], 1), float(self.calls), np.float32)
        self.calls += 1
        return out


def test_predictions_slide_windows_by_half_a_crop_and_leave_unshared_pairs_nan():
    """Use a trained model: "Windows of the training crop slide along the diagonal in steps of crop/2
    (overlaps averaged); pairs that never share a window (possible from crop/2 residues apart) stay NaN"."""
    from protstruct.predict import predict_matrix

    crop, length = 32, 100
    record = ProteinRecord("LONG", "A" * length, np.zeros((length, 3), np.float32), np.ones(length, bool))
    features = instantiate(compose_config("features=relpos").features)
    model = _WindowCounter()
    got = predict_matrix(model, record, crop, features)
    starts = [0, 16, 32, 48, 64, 68]  # every crop/2, then the last window flush with the chain's end
    assert model.calls == len(starts)
    expected = np.full((length, length), np.nan)
    for i in range(length):
        for j in range(length):
            shared = [k for k, s in enumerate(starts) if s <= min(i, j) and max(i, j) < s + crop]
            if shared:
                expected[i, j] = np.mean(shared)
    np.testing.assert_allclose(got, expected)
    apart = np.abs(np.subtract.outer(np.arange(length), np.arange(length)))
    assert np.isnan(got).any() and (apart[np.isnan(got)] >= crop // 2).all()


# ---- Scaling out, GPUs ------------------------------------------------------------------------


def test_parallel_workers_split_the_cores_before_tensorflow_starts(tmp_path):
    """Scaling out: "Each of N workers gets `cores // N` TensorFlow intra-op threads (1 inter-op
    thread), set through environment variables before TensorFlow starts in the worker"."""
    code = (
        "import os, sys\n"
        "from protstruct.train.device import set_cpu_threads\n"
        "assert 'tensorflow' not in sys.modules\n"
        "print(set_cpu_threads(2), os.cpu_count(), os.environ['TF_NUM_INTRAOP_THREADS'],"
        " os.environ['TF_NUM_INTEROP_THREADS'])\n"
    )
    threads, cores, intra, inter = _python("-c", code, cwd=tmp_path, timeout=180).stdout.split()
    assert int(threads) == int(intra) == max(1, int(cores) // 2) and inter == "1"


def test_a_slurm_job_uses_its_cpus_per_task_for_tensorflow(tmp_path, monkeypatch):
    """Scaling out, Slurm: "TensorFlow uses the job's `--cpus-per-task`" (as a job computes its threads)."""
    code = (
        "import os\n"
        "from protstruct.train import context, device\n"
        "print(device.set_cpu_threads(1, context.engine_cpus()), os.environ['TF_NUM_INTRAOP_THREADS'])\n"
    )
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    assert _python("-c", code, cwd=tmp_path, timeout=180).stdout.split() == ["3", "3"]


def test_xla_is_off_and_precision_is_float32_unless_asked():
    """GPUs: "accept `trainer.precision=mixed_float16|mixed_bfloat16`"; "XLA (`trainer.jit_compile`) is off"."""
    cfg = compose_config()
    assert cfg.trainer.jit_compile is False and cfg.trainer.precision == "float32"
    for precision in ("mixed_float16", "mixed_bfloat16"):
        assert compose_config(f"trainer.precision={precision}").trainer.precision == precision


def test_under_mixed_precision_the_distance_head_stays_float32():
    """GPUs: "`trainer.precision=mixed_float16|mixed_bfloat16` (the distance head stays float32)"."""
    import keras

    from protstruct.models.model import build_model
    from protstruct.train import device

    before = keras.mixed_precision.global_policy().name
    try:
        for precision in ("mixed_float16", "mixed_bfloat16"):
            device.set_precision(precision)
            cfg = compose_config("debug=smoke")
            model = build_model(
                instantiate(cfg.backbone.build),
                instantiate(cfg.decoder),
                32,
                1,
                cfg.backbone.output_stride,
                cfg.dropout.rate,
            )
            assert any(layer.compute_dtype != "float32" for layer in model.layers), precision  # it is mixed
            assert model.output.dtype == "float32", precision
        with pytest.raises(ValueError, match=r"trainer\.precision: expected one of"):
            device.set_precision("float8")
    finally:
        keras.mixed_precision.set_global_policy(before)


def test_nanometre_and_log_targets_are_mapped_back_to_angstrom():
    """Variants: "`target=nanometre|log` (the head predicts nm or log-distance, mapped back to Å so
    metrics stay comparable)"."""
    from protstruct.models.model import ToAngstrom

    assert {t: compose_config(f"target={t}").target.transform for t in ("angstrom", "nanometre", "log")} == {
        "angstrom": "angstrom",
        "nanometre": "nanometre",
        "log": "log",
    }
    angstrom = np.array([[3.8, 7.5], [12.0, 30.0]], np.float32)
    np.testing.assert_allclose(np.asarray(ToAngstrom("nanometre")(angstrom / 10)), angstrom, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(ToAngstrom("log")(np.log(angstrom))), angstrom, rtol=1e-5)


# ---- Failures, interruptions, resume ----------------------------------------------------------


def test_running_runs_of_other_hosts_are_left_to_their_own_host(tmp_path):
    """Failures: "The next protstruct command against the store ... ends every RUNNING run of that
    host whose process is gone as FAILED ... Runs of other hosts are left to their own host"."""
    import socket

    from mlflow.tracking import MlflowClient

    from protstruct.tracking import liveness

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.create_experiment("hosts", artifact_location=(tmp_path / "artifacts").as_uri())
    gone = {liveness.PID_TAG: "999999999", liveness.START_TAG: "1.000"}  # no such process
    here = client.create_run(exp, tags={liveness.HOST_TAG: socket.gethostname(), **gone}).info.run_id
    there = client.create_run(exp, tags={liveness.HOST_TAG: f"not-{socket.gethostname()}", **gone}).info.run_id
    alive = client.create_run(exp, tags=liveness.process_tags()).info.run_id  # this very process
    assert liveness.reap_vanished(client) == [here]
    status = {r: client.get_run(r).info.status for r in (here, there, alive)}
    assert status == {here: "FAILED", there: "RUNNING", alive: "RUNNING"}
    assert client.get_run(here).data.tags["protstruct.error"].startswith("process vanished")
