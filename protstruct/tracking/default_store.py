"""The project's own MLflow store: what ``conf/tracking/mlflow.yaml`` points jobs at, so that the
command-line tools (report, predict, UI screenshot) read what runs wrote without being told."""

from __future__ import annotations

from omegaconf import OmegaConf

from protstruct import config


def default_uri() -> str:
    """``tracking.uri`` of ``conf/tracking/mlflow.yaml``, resolved (an absolute SQLite path)."""
    path = config.project_root() / "conf" / "tracking" / "mlflow.yaml"
    cfg = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    if not isinstance(cfg, dict) or "uri" not in cfg:
        raise ValueError(f"{path}: expected a mapping with a tracking uri")
    return str(cfg["uri"])
