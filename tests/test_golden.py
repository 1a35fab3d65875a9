"""Golden outputs: what a refactor must leave unchanged.

1. The shared smoke sweep (``smoke_sweep``: ``python run.py -m decoder=transpose,upsample
   debug=smoke``): every job's metric names and artifact list (the run's, and its MLflow Model's)
   must match ``golden/smoke_sweep.json`` exactly, and its metric values within a tolerance (below).
2. ``python -m protstruct.report`` on a *fixed* store — a real MLflow SQLite store that this file
   writes: a complete 12-job P0-vs-P1 sweep whose runs carry fixed metrics, params, tags and
   artifacts, including the awkward cases a real store holds (a superseded FAILED attempt, a
   FINISHED run of an earlier sweep reused by this one, a missing and a partial per-protein table,
   an unreadable predictions file). ``report.md`` and ``report.html`` (its images replaced by a
   placeholder) must match ``golden/report.md`` / ``golden/report.html`` exactly, and the report's
   files ``golden/report_files.json``. MLflow draws run ids at random: they are replaced by
   ``<run NAME>`` before comparing (nothing else is normalised).

Why the smoke values are compared within ``rel=1e-2`` and not exactly: training runs on
TensorFlow's CPU kernels, whose float reductions depend on the CPU's vector instructions and on the
number of threads (CI is another 2-core x86 machine). On one machine the values repeat exactly;
across machines they differ in the last digits, which a single epoch leaves far below 1 %. A real
change (another model, loss, data split, seed, crop, metric definition) moves them far more.
Timings (``time/*``), memory (``memory/*``) and MLflow's host sampler (``system/*``, whose names
also depend on the hardware, e.g. GPUs) are host facts: ``time/*`` and ``memory/*`` names are
pinned, their values are not; ``system/*`` is left out. On a GPU host the values are not compared.

Regenerate after an intended change, then review the diff of ``tests/golden/``::

    PROTSTRUCT_UPDATE_GOLDEN=1 .venv/bin/python -m pytest -q tests/test_golden.py

Intended changes so far (issue 14): the heatmap caption is computed from the runs' own decoders;
the paired comparison's note names what pairing left out, seed by seed; the published numbers come
from ``conf/study/p0_vs_p1.yaml`` and say "original" where they said "seed" (the fixed store keeps
the old names a store holds: ``dropout=seed``, ``test/mse_seed``, and the report shows them so).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("PROTSTRUCT_UPDATE_GOLDEN") == "1"
REL, ABS = 1e-2, 1e-6
UNCOMPARED_VALUES = ("time/", "memory/")  # names pinned, values host-dependent
LEFT_OUT = ("system/",)  # MLflow's sampler: names depend on the host's hardware


def check_golden(name: str, actual: str) -> None:
    """``actual`` equals ``golden/NAME`` (with PROTSTRUCT_UPDATE_GOLDEN=1: becomes it)."""
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
    assert path.is_file(), f"{path} is missing: run with PROTSTRUCT_UPDATE_GOLDEN=1 to create it"
    expected = path.read_text()
    if actual != expected:
        import difflib

        diff = "".join(
            difflib.unified_diff(expected.splitlines(True), actual.splitlines(True), f"golden/{name}", "now")
        )
        pytest.fail(f"{name} differs from the golden file (PROTSTRUCT_UPDATE_GOLDEN=1 rewrites it):\n{diff}")


# ----------------------------------------------------------------------------------------------
# 1. the smoke sweep


def _artifact_paths(lister, path: str | None = None) -> list[str]:
    out = []
    for item in lister(path):
        out += _artifact_paths(lister, item.path) if item.is_dir else [item.path]
    return sorted(out)


def _value(v: float):
    return "NaN" if math.isnan(v) else v


def smoke_facts(uri: str, experiment: str) -> dict:
    """Per job (by run name): metric name → value (None where the value is a host fact), its
    artifacts and its MLflow Model's artifacts; the sweep run's own artifacts (not the reports
    other tests log onto it)."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    facts: dict = {"jobs": {}, "sweep": {}}
    for run in runs:
        rid = run.info.run_id
        files = _artifact_paths(lambda p, rid=rid: client.list_artifacts(rid, p))
        if run.data.tags.get("protstruct.role") == "sweep":
            facts["sweep"] = {
                "status": run.info.status,
                "artifacts": [f for f in files if not f.startswith(("report/", "report_partial/"))],
            }
            continue
        models = client.search_logged_models([exp.experiment_id], filter_string=f"source_run_id = '{rid}'")
        facts["jobs"][run.info.run_name] = {
            "status": run.info.status,
            "metrics": {
                k: (None if k.startswith(UNCOMPARED_VALUES) else _value(v))
                for k, v in sorted(run.data.metrics.items())
                if not k.startswith(LEFT_OUT)
            },
            "artifacts": files,
            "model_artifacts": [
                _artifact_paths(lambda p, m=m.model_id: client.list_logged_model_artifacts(m, p)) for m in models
            ],
        }
    facts["jobs"] = dict(sorted(facts["jobs"].items()))
    return facts


@pytest.fixture(scope="module")
def smoke(smoke_sweep):
    return smoke_facts(smoke_sweep["uri"], smoke_sweep["experiment"])


def _names_only(facts: dict) -> dict:
    return {
        "sweep": facts["sweep"],
        "jobs": {name: {**job, "metrics": sorted(job["metrics"])} for name, job in facts["jobs"].items()},
    }


def test_smoke_sweep_metric_names_and_artifacts(smoke):
    if UPDATE:  # names and values together; the values test reads them from the same file
        GOLDEN.mkdir(parents=True, exist_ok=True)
        (GOLDEN / "smoke_sweep.json").write_text(json.dumps(smoke, indent=1, sort_keys=True) + "\n")
    golden = json.loads((GOLDEN / "smoke_sweep.json").read_text())
    expected = json.dumps(_names_only(golden), indent=1, sort_keys=True)
    assert json.dumps(_names_only(smoke), indent=1, sort_keys=True) == expected


def test_smoke_sweep_metric_values(smoke):
    golden = json.loads((GOLDEN / "smoke_sweep.json").read_text())
    if any(job["metrics"].get("trainer/gpus") not in (0, 0.0) for job in smoke["jobs"].values()):
        pytest.skip("the golden values are CPU training's; this host trained on a GPU")
    differ = []
    for name, job in golden["jobs"].items():
        for metric, expected in job["metrics"].items():
            got = smoke["jobs"].get(name, {}).get("metrics", {}).get(metric)
            if expected is None or metric not in smoke["jobs"].get(name, {}).get("metrics", {}):
                continue  # a host fact, or a missing name (the names test says so)
            if expected == "NaN" or got == "NaN":
                ok = expected == got
            else:
                ok = math.isclose(got, expected, rel_tol=REL, abs_tol=ABS)
            if not ok:
                differ.append(f"{name} {metric}: golden {expected}, now {got}")
    assert not differ, "metric values moved beyond rel 1e-2:\n" + "\n".join(differ)


# ----------------------------------------------------------------------------------------------
# 2. the report of a fixed store

T0 = 1_700_000_000_000  # ms: fixed start times keep "the latest sweep" and run order deterministic
DECODERS = {
    "transpose": ("protstruct.models.decoders.transpose", "[128, 64, 32]"),
    "upsample": ("protstruct.models.decoders.upsample", "[128, 64]"),
}
DROPOUTS = {"none": 0.0, "seed": 0.3}  # the names existing stores hold
PROTEINS = [f"T{n:04d}" for n in range(1, 13)]
# (decoder, dropout): a systematic change of the per-protein MSE, and of test/rmse
EFFECT = {
    ("transpose", "none"): 0.0,
    ("transpose", "seed"): -1.5,
    ("upsample", "none"): -4.0,
    ("upsample", "seed"): -6.5,
}


def _job_metrics(decoder: str, dropout: str, seed: int) -> dict[str, float]:
    """Old metric names (test/mse_seed …): what every existing store holds."""
    rmse = 9.0 + EFFECT[(decoder, dropout)] / 4 + 0.1 * seed
    mse = rmse**2
    return {
        "test/rmse": rmse,
        "test/mse": mse,
        "test/mse_seed": mse * 1.0e4 * 64 * 64 / 3,
        "baseline/test_rmse": 7.25,
        "baseline/test_mse": 7.25**2,
        "baseline/test_mse_seed": 7.25**2 * 1.0e4 * 64 * 64 / 3,
        "model/params": 26_000_000 + len(decoder),
    }


def _per_protein_csv(decoder: str, dropout: str, seed: int, drop: int = 0, blank: bool = False) -> str:
    rng = np.random.default_rng(1000 * seed + 7)  # the same protein noise for every variant of a seed
    noise = rng.integers(-300, 300, len(PROTEINS)) / 100
    lines = ["protein,mse,rmse"]
    for i, (protein, n) in enumerate(zip(PROTEINS, noise)):
        if i < drop:
            continue
        mse = 80.0 + EFFECT[(decoder, dropout)] * (1 + (i % 3) / 4) + n + 0.5 * seed
        lines.append(f"{protein},{'' if blank and i == drop else f'{mse:.4f}'},{math.sqrt(mse):.4f}")
    return "\n".join(lines) + "\n"


def _predictions(decoder: str, dropout: str, path: Path) -> Path:
    i, j = np.meshgrid(np.arange(16), np.arange(16), indexing="ij")
    true = 3.8 * np.abs(i - j)[None].repeat(2, 0).astype(np.float32)
    baseline = true * 0.9 + 1.0
    pred = true + 2.0 + EFFECT[(decoder, dropout)] / 4
    np.savez(
        path,
        ids=np.array(["T0001", "T0002"]),
        true=true,
        baseline=baseline,
        pred=pred.astype(np.float32),
        mask=np.ones_like(true, dtype=bool),
    )
    return path


def _resolved_yaml(decoder: str, dropout: str, seed: int) -> str:
    target, filters = DECODERS[decoder]
    return (
        f"seed: {seed}\nstudy_name: p0_vs_p1\ndata:\n  crop_size: 64\nbackbone:\n  output_stride: 32\n"
        f"decoder:\n  _target_: {target}\n  _partial_: true\n  filters: {filters}\n  kernel_size: 3\n"
        f"dropout:\n  rate: {DROPOUTS[dropout]}\n"
    )


class FixedStore:
    """Writes the fixed sweep; ``labels`` maps each (random) run id to a stable ``<run NAME>``."""

    def __init__(self, base: Path):
        self.base = base
        self.uri = f"sqlite:///{base}/mlflow.db"
        self.client = MlflowClient(self.uri)
        self.exp = self.client.create_experiment("golden", artifact_location=(base / "artifacts").as_uri())
        self.labels: dict[str, str] = {}
        self.clock = T0

    def run(self, name: str, label: str, tags: dict):
        self.clock += 60_000
        run = self.client.create_run(self.exp, start_time=self.clock, tags=tags, run_name=name)
        self.labels[run.info.run_id] = f"<run {label}>"
        return run.info.run_id

    def end(self, run_id: str, status: str = "FINISHED"):
        self.clock += 1_000
        self.client.set_terminated(run_id, status, end_time=self.clock)

    def sweep(self, name: str, label: str, expected: int) -> str:
        return self.run(
            name,
            label,
            {
                "protstruct.role": "sweep",
                "protstruct.study": "p0_vs_p1",
                "protstruct.overrides": "study=p0_vs_p1",
                "protstruct.expected_jobs": str(expected),
            },
        )

    def job(
        self,
        parent: str,
        decoder: str,
        dropout: str,
        seed: int,
        label: str,
        status: str = "FINISHED",
        per_protein: str | None = "full",
        predictions: str = "ok",
    ) -> str:
        name = f"decoder={decoder},dropout={dropout},seed={seed}"
        rid = self.run(
            name,
            label,
            {
                "protstruct.role": "job",
                "mlflow.parentRunId": parent,
                "protstruct.study": "p0_vs_p1",
                "protstruct.decoder": decoder,
                "protstruct.dropout": dropout,
                "protstruct.backbone": "resnet50",
            },
        )
        target, filters = DECODERS[decoder]
        for key, value in {
            "seed": seed,
            "data.crop_size": 64,
            "backbone.output_stride": 32,
            "decoder._target_": target,
            "decoder.filters": filters,
            "decoder.kernel_size": 3,
            "dropout.rate": DROPOUTS[dropout],
            "choice.decoder": decoder,
            "choice.dropout": dropout,
        }.items():
            self.client.log_param(rid, key, str(value))
        if status == "FINISHED":
            for key, value in _job_metrics(decoder, dropout, seed).items():
                self.client.log_metric(rid, key, value, timestamp=self.clock, step=0)
            for epoch in range(3):
                self.client.log_metric(
                    rid,
                    "val/rmse",
                    12.0 - epoch + EFFECT[(decoder, dropout)] / 4 + 0.1 * seed,
                    timestamp=self.clock + epoch,
                    step=epoch,
                )
            self._artifacts(rid, decoder, dropout, seed, per_protein, predictions)
        self.client.log_text(rid, _resolved_yaml(decoder, dropout, seed), "config/resolved.yaml")
        self.end(rid, status)
        return rid

    def _artifacts(self, rid, decoder, dropout, seed, per_protein, predictions):
        folder = self.base / "files" / rid
        folder.mkdir(parents=True)
        if per_protein is not None:
            csv = _per_protein_csv(
                decoder, dropout, seed, **({"drop": 2, "blank": True} if per_protein == "partial" else {})
            )
            (folder / "test_per_protein.csv").write_text(csv)
            self.client.log_artifact(rid, str(folder / "test_per_protein.csv"), "evaluation")
        npz = folder / "test_predictions.npz"
        if predictions == "ok":
            _predictions(decoder, dropout, npz)
        else:  # written by an older protstruct, say: it lacks the predictions
            np.savez(npz, ids=np.array(["T0001"]), true=np.zeros((1, 16, 16), np.float32))
        self.client.log_artifact(rid, str(npz), "evaluation")

    def ledger(self, parent: str, outcomes: list[tuple[str, str, str]]) -> None:
        for num, (name, status, rid) in enumerate(outcomes):
            self.client.set_tag(
                parent,
                f"protstruct.job.{num}",
                json.dumps({"name": name, "status": status, "run_id": rid, "test_rmse": None}),
            )


def build_fixed_store(base: Path) -> FixedStore:
    """An earlier sweep (one job, later reused) and the complete 12-job sweep the report reads."""
    store = FixedStore(base)
    earlier = store.sweep("p0_vs_p1 earlier", "earlier sweep", 1)
    reused = store.job(earlier, "upsample", "seed", 1, "upsample/seed/1 (reused)")
    store.ledger(earlier, [("decoder=upsample,dropout=seed,seed=1", "ok", reused)])
    store.end(earlier)
    parent = store.sweep("p0_vs_p1 golden", "sweep", 12)
    outcomes = []
    for decoder in DECODERS:
        for dropout in DROPOUTS:
            for seed in range(3):
                name, label = f"decoder={decoder},dropout={dropout},seed={seed}", f"{decoder}/{dropout}/{seed}"
                if (decoder, dropout, seed) == ("upsample", "seed", 1):
                    store.client.set_tag(reused, f"protstruct.reused_by.{parent}", "1")
                    outcomes.append((name, "skipped", reused))
                    continue
                if (decoder, dropout, seed) == ("transpose", "none", 0):  # a first attempt that failed
                    store.job(parent, decoder, dropout, seed, f"{label} (failed attempt)", status="FAILED")
                rid = store.job(
                    parent,
                    decoder,
                    dropout,
                    seed,
                    label,
                    per_protein={("upsample", "seed", 2): None, ("transpose", "seed", 1): "partial"}.get(
                        (decoder, dropout, seed), "full"
                    ),
                    predictions="broken" if (decoder, dropout, seed) == ("upsample", "none", 1) else "ok",
                )
                outcomes.append((name, "ok", rid))
    store.ledger(parent, outcomes)
    store.end(parent)
    return store


def _normalise(text: str, store: FixedStore) -> str:
    for rid, label in store.labels.items():
        text = text.replace(rid, label)
    text = text.replace(str(store.base), "<store>")
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "data:image/png;base64,<PNG>", text)


@pytest.fixture(scope="module")
def fixed_report(tmp_path_factory):
    base = tmp_path_factory.mktemp("golden_store")
    store = build_fixed_store(base)
    out = base / "report"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "protstruct.report",
            "--tracking-uri",
            store.uri,
            "--experiment",
            "golden",
            "--study",
            "p0_vs_p1",
            "--group-by",
            "decoder,dropout",
            "--reference",
            "decoder=transpose,dropout=none",
            "--out",
            str(out),
        ],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return store, out


def test_report_md_of_a_fixed_store(fixed_report):
    store, out = fixed_report
    check_golden("report.md", _normalise((out / "report.md").read_text(), store))


def test_report_html_of_a_fixed_store(fixed_report):
    store, out = fixed_report
    check_golden("report.html", _normalise((out / "report.html").read_text(), store))


def test_report_files_of_a_fixed_store(fixed_report):
    _, out = fixed_report
    check_golden("report_files.json", json.dumps(sorted(p.name for p in out.iterdir()), indent=1) + "\n")
