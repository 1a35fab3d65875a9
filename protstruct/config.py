"""OmegaConf resolvers used by ``conf/`` (registered when protstruct.config is imported)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf


def project_root() -> Path:
    """The checkout that holds ``conf/`` and ``run.py``; the current directory for an installed copy."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "conf").is_dir() else Path.cwd()


def _abspath(path: str) -> str:
    """Relative paths resolve against where the user ran the command (jobs do not chdir)."""
    return str(Path(path).expanduser().resolve())


if not OmegaConf.has_resolver("project_root"):
    OmegaConf.register_new_resolver("project_root", lambda: str(project_root()))
if not OmegaConf.has_resolver("abspath"):
    OmegaConf.register_new_resolver("abspath", _abspath)
