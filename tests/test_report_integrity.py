"""`python -m protstruct.report` never misleads: incomplete sweeps, partial reports, the output
folder swap, the experiments/ guard, HTML escaping and redaction, missing and tampered artifacts.

Each test builds synthetic sweeps in its own SQLite store with ``MlflowClient`` — parent runs with
the job ledger's tags, child runs carrying the params, metrics and evaluation artifacts of the real
smoke sweep's runs (read from ``smoke_sweep``, never modified)."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

import protstruct.config
from protstruct.report.__main__ import main
from protstruct.tracking import ledger
from protstruct.tracking.mlflow_store import PARENT_TAG

LIVENESS = ("protstruct.host", "protstruct.pid", "protstruct.process_start", "protstruct.worker_pid")


@pytest.fixture(scope="module")
def smoke_jobs(smoke_sweep, tmp_path_factory):
    """The smoke sweep's two job runs (decoder=transpose, decoder=upsample), copied out once."""
    client = MlflowClient(smoke_sweep["uri"])
    exp = client.get_experiment_by_name(smoke_sweep["experiment"])
    base = tmp_path_factory.mktemp("smoke_jobs")
    jobs = {}
    for run in client.search_runs([exp.experiment_id], "tags.`protstruct.role` = 'job'"):
        folder = base / run.info.run_id
        folder.mkdir()
        client.download_artifacts(run.info.run_id, "evaluation", str(folder))
        jobs[run.data.tags["protstruct.decoder"]] = {
            "name": run.info.run_name,
            "params": run.data.params,
            "metrics": run.data.metrics,
            "tags": {
                k: v for k, v in run.data.tags.items() if k.startswith(("protstruct.", "data.")) and k not in LIVENESS
            },
            "history": client.get_metric_history(run.info.run_id, "val/rmse"),
            "evaluation": folder / "evaluation",
        }
    assert sorted(jobs) == ["transpose", "upsample"]
    return jobs


class Store:
    """A throwaway MLflow store for synthetic sweeps."""

    def __init__(self, root: Path, smoke_jobs: dict):
        self.root, self.jobs = root, smoke_jobs
        self.uri = f"sqlite:///{root}/mlflow.db"
        self.client = MlflowClient(self.uri)
        self.exp = self.client.create_experiment("syn", artifact_location=(root / "artifacts").as_uri())
        self.clock = int(time.time() * 1000)

    def _tick(self) -> int:
        self.clock += 1000
        return self.clock

    def sweep(
        self,
        jobs: list[dict | None],
        status: str = "FINISHED",
        expected: int | None = -1,
        overrides: str = "decoder=transpose,upsample debug=smoke",
        study: str = "",
    ) -> str:
        """A sweep of ``jobs`` (None: a job that never reported). A job: ``decoder`` (which smoke
        run to copy), ``outcome`` (ledger status, default ok), ``status`` (run status), ``tags``,
        ``drop`` (evaluation files left out), ``replace`` ({file name: path}), ``reuse`` (the id of
        an earlier sweep's FINISHED run that stands in for the job, tagged and recorded as
        ``protstruct.train.job`` does)."""
        c = self.client
        tags = {"protstruct.role": "sweep", "protstruct.study": study, "protstruct.overrides": overrides}
        expected = len(jobs) if expected == -1 else expected
        if expected is not None:
            tags[ledger.EXPECTED_TAG] = str(expected)
        parent = c.create_run(self.exp, start_time=self._tick(), tags=tags, run_name="sweep syn").info.run_id
        names = [{"num": i, "name": f"decoder={(j or {}).get('decoder', 'bilinear')}"} for i, j in enumerate(jobs)]
        c.log_text(parent, json.dumps(names), ledger.JOBS_ARTIFACT)
        for num, job in enumerate(jobs):
            if job is None:
                continue
            src = self.jobs[job.get("decoder", "transpose")]
            if "reuse" in job:
                c.set_tag(job["reuse"], f"{ledger.REUSED_TAG_PREFIX}{parent}", "1")
                ledger.record(c, parent, num, src["name"], "skipped", job["reuse"], src["metrics"].get("test/rmse"))
                continue
            run_tags = {**src["tags"], PARENT_TAG: parent, "protstruct.job_num": str(num), **job.get("tags", {})}
            run = c.create_run(self.exp, start_time=self._tick(), tags=run_tags, run_name=src["name"]).info.run_id
            c.log_batch(run, params=[Param(k, v) for k, v in src["params"].items()])
            c.log_batch(run, metrics=[Metric(k, v, 0, 0) for k, v in src["metrics"].items()])
            c.log_batch(run, metrics=[Metric("val/rmse", m.value, m.timestamp, m.step) for m in src["history"]])
            folder = self.root / f"upload-{run}"
            shutil.copytree(src["evaluation"], folder)
            for name in job.get("drop", ()):
                (folder / name).unlink()
            for name, path in job.get("replace", {}).items():
                shutil.copy(path, folder / name)
            c.log_artifacts(run, str(folder), "evaluation")
            c.set_terminated(run, job.get("status", "FINISHED"))
            if expected is not None:
                word = {"FINISHED": "ok", "FAILED": "failed", "KILLED": "killed"}[job.get("status", "FINISHED")]
                outcome = job.get("outcome", word)
                ledger.record(c, parent, num, src["name"], outcome, run, src["metrics"].get("test/rmse"))
        if status != "RUNNING":
            c.set_terminated(parent, status)
        return parent

    def children(self, parent: str) -> list[str]:
        return [r.info.run_id for r in ledger.children(self.client, parent, self.exp)]

    def report(self, *args: str) -> int:
        return main(["--tracking-uri", self.uri, "--experiment", "syn", "--group-by", "decoder", *args])


T, U = {"decoder": "transpose"}, {"decoder": "upsample"}


@pytest.fixture
def store(tmp_path, smoke_jobs):
    return Store(tmp_path / "store", smoke_jobs)


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(folder.rglob("*"))
    }


@pytest.mark.parametrize(
    "status, second, expect",
    [
        ("FAILED", {**U, "status": "FAILED"}, "#1 decoder=upsample (failed)"),
        ("KILLED", {**U, "status": "KILLED"}, "#1 decoder=upsample (killed)"),
        ("RUNNING", None, "#1 decoder=bilinear (never reported)"),
    ],
)
def test_an_incomplete_latest_sweep_is_refused_naming_its_missing_jobs(store, tmp_path, capsys, status, second, expect):
    older = store.sweep([T, U])
    latest = store.sweep([T, second], status=status)
    out = tmp_path / "report"
    assert store.report("--out", str(out)) == 2
    err = capsys.readouterr().err
    assert f"sweep {latest} (sweep syn) is incomplete: {status}, 1 of 2 jobs done" in err
    assert expect in err and "--allow-partial" in err and "--parent-run-id" in err
    assert "does not fall back to an older sweep" in err and f"newest FINISHED sweep is {older}" in err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["store"]
    assert store.report("--parent-run-id", older, "--out", str(out)) == 0  # the complete one, by name
    assert f"sweep run {older}" in (out / "report.md").read_text()


def test_with_study_the_report_reads_only_the_latest_sweep_of_that_study(store, tmp_path, capsys):
    """README: "The report reads only the latest sweep of the study, never stray smoke runs" (as
    `make report-only` runs it: --study). Two complete sweeps of the study, then a newer sweep of
    another study and a newer smoke sweep (no study): only the latest study sweep's own job and the
    run it reused from the older sweep are reported, and the report is logged on that sweep alone."""
    study = {"overrides": "study=p0_vs_p1", "study": "p0_vs_p1"}
    older = store.sweep([T, U, T], **study)
    older_upsample = next(
        r for r in store.children(older) if store.client.get_run(r).info.run_name == "decoder=upsample"
    )
    latest = store.sweep([T, {**U, "reuse": older_upsample}], **study)
    beyond = store.sweep([T, U, U], overrides="study=beyond", study="beyond")
    smoke = store.sweep([T, T, U], overrides="decoder=transpose,upsample debug=smoke")  # the newest sweep
    (own,) = set(store.children(latest)) - {older_upsample}  # the latest sweep's one new run
    assert older_upsample in store.children(latest) and own not in store.children(older)
    out = tmp_path / "report"
    assert store.report("--study", "p0_vs_p1", "--out", str(out)) == 0
    text = (out / "report.md").read_text()
    assert f"sweep run {latest} " in text and ", 2 jobs;" in text and "overrides: study=p0_vs_p1;" in text
    for other in (older, beyond, smoke):
        assert other not in text and other not in (out / "report.html").read_text()
    table = pd.read_csv(out / "report.csv")
    assert dict(zip(table["decoder"], table["n"].astype(str))) == {"transpose": "1", "upsample": "1"}
    logged = {run: {a.path for a in store.client.list_artifacts(run)} for run in (older, latest, beyond, smoke)}
    assert "report" in logged[latest] and all("report" not in logged[r] for r in (older, beyond, smoke))
    capsys.readouterr()
    assert store.report() == 0  # without --study: the newest sweep of any study, here the smoke one
    assert f"sweep run {smoke} " in capsys.readouterr().out
    assert store.report("--study", "beyond") == 0 and f"sweep run {beyond} " in capsys.readouterr().out


def test_a_job_the_ledger_calls_ok_but_whose_run_did_not_finish_is_missing(store, capsys):
    parent = store.sweep([T, {**U, "status": "FAILED", "outcome": "ok"}])
    assert store.report() == 2
    err = capsys.readouterr().err
    assert f"sweep {parent}" in err and "1 of 2 jobs" in err and "(ok, but run " in err and "is FAILED)" in err


def test_allow_partial_marks_every_output(store, tmp_path, capsys):
    parent = store.sweep([T, U, None], status="FAILED")
    out = tmp_path / "partial"
    assert store.report("--allow-partial", "--out", str(out)) == 0
    captured = capsys.readouterr()
    line = "PARTIAL: 2 of 3 jobs; missing: #2 decoder=bilinear (never reported)"
    assert captured.out.startswith(line) and line in captured.err
    assert (out / "report.md").read_text().startswith(line)
    page = (out / "report.html").read_text()
    assert "<title>PARTIAL" in page and page.index(line) < page.index("<table>")
    assert list(pd.read_csv(out / "report.csv")["partial"]) == [True, True]
    assert list(pd.read_csv(out / "paired.csv")["partial"]) == [True]
    logged = {a.path for a in store.client.list_artifacts(parent)}
    assert "report_partial" in logged and "report" not in logged  # never poses as the sweep's report


def test_a_sweep_from_before_the_ledger_is_used_only_when_every_run_finished(store, capsys):
    store.sweep([T, U], expected=None)
    assert store.report() == 0
    assert "was made before the job ledger" in capsys.readouterr().out
    store.sweep([T, {**U, "status": "FAILED"}], status="FAILED", expected=None)
    assert store.report() == 2
    err = capsys.readouterr().err
    assert "1 of ? jobs" in err and "decoder=upsample (run " in err and "FAILED)" in err


def test_the_out_folder_is_replaced_whole(store, tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    for name in ("heatmaps.png", "paired.csv", "report.md"):  # what an earlier sweep's report left
        (out / name).write_text("stale")
    store.sweep(
        [{**T, "drop": ["test_predictions.npz"]}, {**U, "drop": ["test_predictions.npz", "test_per_protein.csv"]}]
    )
    assert store.report("--out", str(out)) == 0
    assert "stale" not in (out / "report.md").read_text()
    assert sorted(p.name for p in out.iterdir()) == [
        "loss_curves.png",
        "report.csv",
        "report.html",
        "report.md",
        "test_rmse.png",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report", "store"]  # no staging folder left
    assert (out.stat().st_mode & 0o777) != 0o700


def test_a_folder_holding_other_files_is_never_replaced(store, tmp_path, capsys):
    store.sweep([T, U])
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    (mine / "report.md").write_text("an old report")
    before = snapshot(mine)
    assert store.report("--out", str(mine)) == 2
    assert "holds files a report does not write (thesis.tex)" in capsys.readouterr().err
    assert snapshot(mine) == before and sorted(p.name for p in tmp_path.iterdir()) == ["mine", "store"]


def test_runs_without_evaluation_artifacts_are_named(store, capsys):
    parent = store.sweep([{**T, "drop": ["test_predictions.npz"]}, {**U, "drop": ["test_per_protein.csv"]}])
    t_run, u_run = sorted(store.children(parent), key=lambda r: store.client.get_run(r).info.run_name)
    assert store.report() == 0
    text = capsys.readouterr().out
    assert (
        f"Runs without per-protein results: decoder=upsample (run {u_run}): evaluation/test_per_protein.csv missing"
    ) in text
    assert f"Runs without prediction samples: decoder=transpose (run {t_run}): evaluation/test_predictions.npz" in text
    assert "Paired comparison: not available" in text


class Boom:
    """Unpickling this writes a file: it must never happen."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_tampered_npz_stops_the_report_without_unpickling_it(store, tmp_path, capsys):
    marker = tmp_path / "unpickled"
    evil = tmp_path / "test_predictions.npz"
    np.savez(evil, pred=np.array([Boom(marker)], dtype=object), ids=np.array(["a"]))
    parent = store.sweep([T, {**U, "replace": {"test_predictions.npz": evil}}])
    u_run = next(r for r in store.children(parent) if store.client.get_run(r).info.run_name == "decoder=upsample")
    out = tmp_path / "report"
    out.mkdir()
    (out / "report.md").write_text("the previous report")
    assert store.report("--out", str(out)) == 2
    err = capsys.readouterr().err
    assert f"run decoder=upsample (run {u_run}): artifact evaluation/test_predictions.npz holds pickled" in err
    assert not marker.exists()
    assert snapshot(out) == {"report.md": hashlib.sha256(b"the previous report").hexdigest()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report", "store", "test_predictions.npz"]


@pytest.fixture
def fake_root(tmp_path, monkeypatch):
    """A project root whose experiments/p0_vs_p1/results holds committed results."""
    root = tmp_path / "project"
    results = root / "experiments" / "p0_vs_p1" / "results"
    results.mkdir(parents=True)
    for name in ("report.md", "report.csv", "paired.csv"):
        (results / name).write_text(f"committed {name}")
    monkeypatch.setattr(protstruct.config, "project_root", lambda: root)
    return results


@pytest.mark.parametrize(
    "overrides, args, expect",
    [
        (
            "study=p0_vs_p1 debug=smoke trainer.epochs=1",
            ["--study", "p0_vs_p1"],
            "overrides beyond the study's definition: debug=smoke trainer.epochs=1",
        ),
        ("study=p0_vs_p1 data.limit.train=4", ["--study", "p0_vs_p1"], "data.limit.train=4"),
        ("study=p0_vs_p1", [], "name the study the results are for with --study"),
        ("study=p0_vs_p1", ["--study", "p0_vs_p1", "--allow-partial"], "--allow-partial may never go there"),
    ],
)
def test_only_the_studys_own_sweep_writes_into_experiments(store, fake_root, capsys, overrides, args, expect):
    parent = store.sweep([T, U], overrides=overrides, study="p0_vs_p1")
    before = snapshot(fake_root.parents[1])
    assert store.report("--out", str(fake_root), *args) == 2
    assert expect in capsys.readouterr().err
    assert snapshot(fake_root.parents[1]) == before
    assert {a.path for a in store.client.list_artifacts(parent)} == {"sweep"}  # nothing logged either


def test_the_studys_own_complete_sweep_writes_into_experiments(store, fake_root):
    store.sweep([T, U], overrides="study=p0_vs_p1", study="p0_vs_p1")
    assert store.report("--out", str(fake_root), "--study", "p0_vs_p1") == 0
    assert "overrides: study=p0_vs_p1" in (fake_root / "report.md").read_text()
    assert (fake_root / "paired.csv").read_text() != "committed paired.csv"


def test_tags_are_escaped_in_html_and_secrets_redacted(store, tmp_path, capsys):
    store.sweep(
        [
            {**T, "tags": {"protstruct.decoder": "<script>alert(1)</script>"}},
            {**U, "tags": {"protstruct.decoder": "<img src=x onerror=alert(2)>"}},
        ],
        overrides="decoder=a,b tracking.uri=postgresql://bob:hunter22@db/x password=sesame123",
    )
    out = tmp_path / "report"
    assert store.report("--out", str(out)) == 0
    printed = capsys.readouterr().out
    page = (out / "report.html").read_text()
    assert "<script>alert(1)</script>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;img src=x onerror=alert(2)&gt;" in page
    for text in (printed, page, (out / "report.md").read_text(), (out / "report.csv").read_text()):
        assert "hunter22" not in text and "sesame123" not in text
    assert "postgresql://***@db/x" in printed
