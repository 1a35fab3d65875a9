"""Composing the project's Hydra config in tests, as ``python run.py`` would."""

from __future__ import annotations

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import protstruct.config  # noqa: F401  (the resolvers conf/ uses)
from tests.conftest import CONF


def compose_config(*overrides: str):
    """The composed config (with its ``hydra`` node) for command-line ``overrides``."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


def resolved(cfg) -> dict:
    """The job's config, resolved (Hydra's own node needs a running job to resolve)."""
    return OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True)
