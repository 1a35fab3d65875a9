"""Secrets are masked wherever a value leaves the process; destructive targets ask first;
installs are pinned to what the suite passed with."""

from __future__ import annotations

import base64
import logging
import subprocess

import pytest
import tomllib

from protstruct.tracking import redact as r
from tests.conftest import ROOT

PASSWORD = "p@ss:w/rd%42 x"
ENCODED = "p%40ss%3Aw%2Frd%2542%20x"


@pytest.mark.parametrize(
    "text",
    [
        f"tracking.uri=http://alice:{ENCODED}@127.0.0.1:5000",
        f"postgresql+psycopg2://bob:{ENCODED}@db.internal:5432/mlflow",
        f"API request to https://alice:{ENCODED}@mlflow.example/api/2.0 failed",
    ],
)
def test_uri_userinfo_is_masked(text):
    out = r.redact(text)
    assert ENCODED not in out and "alice" not in out and "bob" not in out and "***@" in out


def test_secret_keys_are_masked_in_text_and_trees():
    text = "db.password=hunter22 token: abc123 api_key='k e y' learning_rate=1e-3 data.path=/tokens/x"
    out = r.redact(text)
    assert "hunter22" not in out and "abc123" not in out and "k e y" not in out
    assert "learning_rate=1e-3" in out and "data.path=/tokens/x" in out
    tree = {"tracking": {"uri": f"http://a:{ENCODED}@h", "password": "x", "token_count": 3}, "seq": ["s"]}
    assert r.redact_tree(tree) == {
        "tracking": {"uri": "http://***@h", "password": "***", "token_count": 3},
        "seq": ["s"],
    }


def test_credentials_move_from_the_uri_to_mlflows_variables(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    import os

    assert r.split_credentials(f"http://alice:{ENCODED}@127.0.0.1:5000/x") == "http://127.0.0.1:5000/x"
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "alice" and os.environ["MLFLOW_TRACKING_PASSWORD"] == PASSWORD
    # then the password is masked in every form it may take, wherever it shows up
    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    for form in (PASSWORD, ENCODED, basic):
        assert form not in r.redact(f"error: {form} here")
    assert r.split_credentials("postgresql://u:p@h/db") == "postgresql://u:p@h/db"  # the driver needs it whole


def test_the_logging_filter_masks_messages_arguments_and_tracebacks(caplog):
    logger = logging.getLogger("protstruct.test_redact")
    handler = logging.StreamHandler()
    handler.addFilter(r.RedactingFilter())
    records = []
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        logger.warning("connecting to %s", f"http://alice:{ENCODED}@h")
        try:
            raise ValueError(f"bad uri http://alice:{ENCODED}@h")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    assert ENCODED not in records[0].getMessage()
    assert ENCODED not in records[1].exc_text and "***@h" in records[1].exc_text


def test_hydra_logging_goes_through_the_filter():
    from omegaconf import OmegaConf

    for group in ("job_logging", "hydra_logging"):
        cfg = OmegaConf.load(ROOT / "conf" / "hydra" / group / "protstruct.yaml")
        assert cfg.filters.redact["()"] == "protstruct.tracking.redact.RedactingFilter"
        assert all("redact" in h.filters for h in cfg.handlers.values())


def test_make_clean_runs_asks_before_deleting(tmp_path):
    (tmp_path / "mlartifacts").mkdir()
    (tmp_path / "mlflow.db").write_text("")

    def clean(answer: str):
        return subprocess.run(
            ["make", "-s", "-f", str(ROOT / "Makefile"), "-C", str(tmp_path), "clean-runs"],
            input=answer + "\n",
            capture_output=True,
            text=True,
            timeout=60,
        )

    refused = clean("yes")
    assert refused.returncode != 0 and "nothing deleted" in refused.stdout
    assert (tmp_path / "mlflow.db").exists() and (tmp_path / "mlartifacts").is_dir()
    assert clean("delete").returncode == 0
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlartifacts").exists()


def test_installs_are_pinned_and_vulnerable_versions_excluded():
    pins = dict(
        line.split("==", 1)
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    for pkg in ("tensorflow", "keras", "mlflow", "hydra-core", "psutil"):
        assert pkg in pins, pkg
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.replace(" ", "").startswith("keras>=3.14") for d in deps)
    assert any(d.replace(" ", "").startswith("hydra-core>=1.3.4") for d in deps)
    assert any(d.replace(" ", "").startswith("mlflow>=3.0,<3.") for d in deps)
    assert "-c constraints.txt" in (ROOT / "Makefile").read_text()
