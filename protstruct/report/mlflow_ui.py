"""A real ``mlflow ui`` on a free loopback port, started and stopped by its process group: what the
UI screenshot drives, and the one way the tests start and stop MLflow servers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class MlflowUI:
    url: str  # http://127.0.0.1:PORT
    pid: int  # the `mlflow ui` process; also its process group (it runs uvicorn workers)
    log: Path

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no server log)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def spawn_server(cmd: list[str], cwd: Path, env: dict, log: Path, **popen) -> subprocess.Popen:
    """Start a server process in its own session (so :func:`stop_server` can end its whole group),
    stdin closed, stdout and stderr into ``log``."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, **popen,
        )  # fmt: skip


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's own process group (by its PID), then SIGKILL; waits for both."""
    for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        if proc.poll() is not None and not _group_alive(proc.pid):
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if proc.poll() is not None and not _group_alive(proc.pid):
                return
            time.sleep(0.2)


def wait_for_health(url: str, proc: subprocess.Popen, timeout: float, log_tail, what: str) -> None:
    """Until ``url``/health answers 200; RuntimeError (with the log's tail) if the server exits or
    the time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before /health answered:\n{log_tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer /health within {timeout:.0f} s:\n{log_tail()}")
        time.sleep(0.5)


@contextlib.contextmanager
def mlflow_ui(tracking_uri: str, workdir: Path, timeout: float = 120.0) -> Iterator[MlflowUI]:
    """``mlflow ui`` for ``tracking_uri`` on a free loopback port, run in ``workdir`` (its log goes
    there); yields once /health answers, stops it on exit. Raises RuntimeError if it never answers."""
    if tracking_uri.startswith(("http://", "https://")):
        raise ValueError(f"{tracking_uri!r} is a server: give the store it serves (sqlite:///..., postgresql://...)")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            # no job runner and its 7 huey consumers (GenAI jobs; their queue lives in /dev/shm)
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
    )
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        tracking_uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    log = workdir / "mlflow_ui.log"
    proc = spawn_server(cmd, workdir, env, log)
    server = MlflowUI(url=f"http://127.0.0.1:{port}", pid=proc.pid, log=log)
    try:
        wait_for_health(server.url, proc, timeout, server.log_tail, "mlflow ui")
        yield server
    finally:
        stop_server(proc)
