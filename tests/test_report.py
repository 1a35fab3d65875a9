"""`python -m protstruct.report` on the smoke sweep's runs."""
from __future__ import annotations

import shutil
import subprocess

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from protstruct.report.__main__ import main


def test_report_tables_from_the_smoke_sweep(smoke_sweep, tmp_path, capsys):
    out = tmp_path / "report"
    rc = main(["--tracking-uri", smoke_sweep["uri"], "--experiment", smoke_sweep["experiment"],
               "--group-by", "decoder,dropout", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(out / "report.csv")
    assert sorted(table["decoder"]) == ["transpose", "upsample"] and list(table["n"]) == [1, 1]
    ref = table[table["decoder"] == "transpose"].iloc[0]
    assert ref["test/mse_seed change vs reference"] == 0.0
    assert "157,040,312,320" in printed and "39,560,581,120" in printed
    assert "separation baseline" in printed
    md = (out / "report.md").read_text()
    assert md in printed and "Paired comparison against decoder=transpose,dropout=none" in md
    assert "only 4 paired proteins" in md  # the smoke sweep is too small to claim anything
    for png in ("test_rmse.png", "loss_curves.png", "heatmaps.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "9 of every 64 output cells" in page
    client = MlflowClient(smoke_sweep["uri"])
    exp = client.get_experiment_by_name(smoke_sweep["experiment"])
    (parent,) = [r for r in client.search_runs([exp.experiment_id]) if r.data.tags["protstruct.role"] == "sweep"]
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/report.html", "report/report.md", "report/heatmaps.png"} <= logged


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs Debian's chromium)")
def test_html_report_images_load_in_headless_chromium(smoke_sweep, tmp_path):
    out = tmp_path / "report"
    assert main(["--tracking-uri", smoke_sweep["uri"], "--experiment", smoke_sweep["experiment"],
                 "--group-by", "decoder", "--out", str(out)]) == 0
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                           "--no-first-run", "--disable-background-networking", "--disable-component-update",
                           "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
                           "--virtual-time-budget=10000", "--dump-dom", (out / "report.html").as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert "images loaded: 3/3" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_report_names_a_missing_experiment(smoke_sweep, capsys):
    rc = main(["--tracking-uri", smoke_sweep["uri"], "--experiment", "no_such_experiment"])
    assert rc == 2
    assert "no MLflow experiment named 'no_such_experiment'" in capsys.readouterr().err


def test_report_names_an_unknown_group_key(smoke_sweep, capsys):
    rc = main(["--tracking-uri", smoke_sweep["uri"], "--experiment", smoke_sweep["experiment"],
               "--group-by", "flavour"])
    assert rc == 2 and "'flavour' is neither a config group nor a config key" in capsys.readouterr().err
