"""The project's own MLflow store: what ``conf/tracking/mlflow.yaml`` points jobs at, so that the
command-line tools (report, predict, UI screenshot) read what runs wrote without being told."""
from __future__ import annotations

from omegaconf import OmegaConf

from protstruct import config


def default_uri() -> str:
    """``tracking.uri`` of ``conf/tracking/mlflow.yaml``, resolved (an absolute SQLite path)."""
    cfg = OmegaConf.load(config.project_root() / "conf" / "tracking" / "mlflow.yaml")
    return str(OmegaConf.to_container(cfg, resolve=True)["uri"])
