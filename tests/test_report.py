"""`python -m protstruct.report` on the smoke sweep's runs."""
from __future__ import annotations

import pandas as pd

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
    assert md in printed and (out / "test_rmse.png").stat().st_size > 1000


def test_report_names_a_missing_experiment(smoke_sweep, capsys):
    rc = main(["--tracking-uri", smoke_sweep["uri"], "--experiment", "no_such_experiment"])
    assert rc == 2
    assert "no MLflow experiment named 'no_such_experiment'" in capsys.readouterr().err


def test_report_names_an_unknown_group_key(smoke_sweep, capsys):
    rc = main(["--tracking-uri", smoke_sweep["uri"], "--experiment", smoke_sweep["experiment"],
               "--group-by", "flavour"])
    assert rc == 2 and "'flavour' is neither a config group nor a config key" in capsys.readouterr().err
