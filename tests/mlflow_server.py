"""A real ``mlflow server --app-name basic-auth`` on loopback, for tests that need HTTP auth.

Use the ``mlflow_auth_server`` fixture (module-scoped; import it into a test module) or the
``start_mlflow_auth_server(root)`` context manager. Both give an :class:`MlflowAuthServer`.

Everything the server keeps lives under ``root``: the SQLite backend store, the served-artifacts
destination, the auth database, the auth ini and the server's log. The admin user's password is
handed to the server through ``MLFLOW_AUTH_ADMIN_PASSWORD`` only, never written to a file: the
ini is read by ``configparser`` with interpolation, which rejects the ``%`` in the password, and
keeping it out of ``root`` means a scan of ``root`` for the secret only sees what clients sent.

The basic-auth app imports Flask-WTF (``mlflow[auth]``); without it the fixture fails with a
message that says so instead of a server that never comes up.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import os
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from protstruct.report.mlflow_ui import (  # one way to start and stop a server
    free_port,
    spawn_server,
    stop_server,
    wait_for_health,
)

ADMIN_USER = "alice"
ADMIN_PASSWORD = "p@ss:w/rd%42 x"  # @ : / % and a space: every character a URL or header mangles

STORE_DB = "mlflow.db"
AUTH_DB = "auth.db"
AUTH_INI = "basic_auth.ini"
ARTIFACTS = "artifacts"
LOG = "server.log"


@dataclass(frozen=True)
class MlflowAuthServer:
    url: str  # http://127.0.0.1:PORT, no credentials
    port: int
    root: Path  # everything the server writes (see module docstring)
    username: str
    password: str
    pid: int

    @property
    def store_db(self) -> Path:
        return self.root / STORE_DB

    @property
    def auth_db(self) -> Path:
        return self.root / AUTH_DB

    @property
    def artifacts(self) -> Path:
        return self.root / ARTIFACTS

    @property
    def log(self) -> Path:
        return self.root / LOG

    @property
    def encoded_password(self) -> str:
        return urllib.parse.quote(self.password, safe="")

    @property
    def url_with_userinfo(self) -> str:
        """http://alice:<percent-encoded password>@127.0.0.1:PORT"""
        user = urllib.parse.quote(self.username, safe="")
        return f"http://{user}:{self.encoded_password}@127.0.0.1:{self.port}"

    def credentials_env(self) -> dict[str, str]:
        """The environment MLflow's client reads HTTP basic-auth credentials from."""
        return {"MLFLOW_TRACKING_USERNAME": self.username, "MLFLOW_TRACKING_PASSWORD": self.password}

    def basic_auth_header(self) -> str:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return f"Basic {token}"

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no server log)"


def _why_no_auth_app() -> str | None:
    if importlib.util.find_spec("flask_wtf") is None:
        return (
            "mlflow's basic-auth app needs Flask-WTF, which is not installed: add "
            "`mlflow[auth]` (or `Flask-WTF<2`) to the project's dependencies"
        )
    return None


def _write_auth_ini(root: Path, username: str) -> Path:
    ini = root / AUTH_INI
    # Keys as in mlflow/server/auth/basic_auth.ini and config.py. The admin bypasses permission
    # checks anyway; MANAGE as the default makes "alice can do everything" hold regardless.
    ini.write_text(
        "[mlflow]\n"
        "default_permission = MANAGE\n"
        f"database_uri = sqlite:///{root / AUTH_DB}\n"
        f"admin_username = {username}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "grant_default_workspace_access = true\n"
    )
    return ini


@contextlib.contextmanager
def start_mlflow_auth_server(
    root: Path, username: str = ADMIN_USER, password: str = ADMIN_PASSWORD, timeout: float = 60.0
) -> Iterator[MlflowAuthServer]:
    """Start the server under ``root`` (created if needed), wait for /health, yield, stop it."""
    why = _why_no_auth_app()
    if why:
        pytest.fail(why)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / ARTIFACTS).mkdir(exist_ok=True)
    ini = _write_auth_ini(root, username)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING_", "MLFLOW_AUTH_"))}
    env.update(
        {
            "MLFLOW_AUTH_CONFIG_PATH": str(ini),
            "MLFLOW_AUTH_ADMIN_USERNAME": username,
            "MLFLOW_AUTH_ADMIN_PASSWORD": password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
            "PYTHONUNBUFFERED": "1",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # no job runner: fast stop, nothing left in /dev/shm
        }
    )
    mlflow = Path(sys.executable).with_name("mlflow")
    cmd = [
        str(mlflow),
        "server",
        "--app-name",
        "basic-auth",
        "--backend-store-uri",
        f"sqlite:///{root / STORE_DB}",
        "--serve-artifacts",
        "--artifacts-destination",
        str(root / ARTIFACTS),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    proc = spawn_server(cmd, root, env, root / LOG)
    server = MlflowAuthServer(
        url=f"http://127.0.0.1:{port}", port=port, root=root, username=username, password=password, pid=proc.pid
    )
    try:
        try:
            wait_for_health(server.url, proc, timeout, server.log_tail, "mlflow server")
        except RuntimeError as exc:
            pytest.fail(str(exc))
        yield server
    finally:
        stop_server(proc)


@pytest.fixture(scope="module")
def mlflow_auth_server(tmp_path_factory) -> Iterator[MlflowAuthServer]:
    """A basic-auth MLflow server (admin ``alice`` / ``ADMIN_PASSWORD``) for one test module."""
    with start_mlflow_auth_server(tmp_path_factory.mktemp("mlflow_auth_server")) as server:
        yield server
