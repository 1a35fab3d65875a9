"""Credentials in ``tracking.uri`` never leak: a real 2-job sweep logs to a real basic-auth MLflow
server with ``http://alice:<percent-encoded password>@host:port``, the jobs authenticate from the
URI alone (no MLFLOW_TRACKING_* variables), and afterwards no form of the password appears in the
server's store and artifacts, the Hydra output tree, or the CLI's stdout/stderr."""

from __future__ import annotations

import base64
import os
import re
import sqlite3
import urllib.parse
from pathlib import Path

from mlflow.tracking import MlflowClient

from tests.conftest import run_cli
from tests.mlflow_server import MlflowAuthServer

CREDENTIAL_VARS = (
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_URI",
)


def secret_forms(server: MlflowAuthServer) -> dict[bytes, str]:
    """Every spelling of the password that a leak could take -> a name for the report."""
    user, pw = server.username, server.password
    forms = {
        "raw password": pw,
        "percent-encoded password as in the URI": server.encoded_password,
        "urllib.parse.quote(pw, safe='')": urllib.parse.quote(pw, safe=""),
        "urllib.parse.quote(pw)": urllib.parse.quote(pw),
        "urllib.parse.quote_plus(pw)": urllib.parse.quote_plus(pw),
        "JSON-escaped raw password": pw.replace("/", "\\/"),
        # how Hydra writes an override value into overrides.yaml / override_dirname
        "Hydra-escaped raw password": re.sub(r"([\\()\[\]{}:=, \t])", r"\\\1", pw),
        "base64(user:raw password)": base64.b64encode(f"{user}:{pw}".encode()).decode(),
        "urlsafe base64(user:raw password)": base64.urlsafe_b64encode(f"{user}:{pw}".encode()).decode(),
        "base64(user:encoded password)": base64.b64encode(f"{user}:{server.encoded_password}".encode()).decode(),
    }
    assert forms["percent-encoded password as in the URI"] in server.url_with_userinfo
    by_value: dict[bytes, str] = {}
    for name, text in forms.items():  # several recipes give the same bytes: name them together
        key = text.encode()
        by_value[key] = f"{by_value[key]} = {name}" if key in by_value else name
    return by_value


def files_under(root: Path, exclude: set[Path] = frozenset()) -> list[Path]:
    """Every regular file under root, hidden folders (.hydra) included, symlinks not followed."""
    found = []
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink() and path not in exclude:
                found.append(path)
    return sorted(found)


def scrub(data: bytes, forms: dict[bytes, str]) -> bytes:
    """The data with every secret form replaced by its name, so failures never print a secret."""
    for form in sorted(forms, key=len, reverse=True):
        data = data.replace(form, b"<SECRET>")
    return data


def _lines_with(blob: bytes, form: bytes, forms: dict[bytes, str], most: int = 6) -> str:
    """The distinct lines that hold the form, scrubbed and shortened, for the failure report."""
    seen: list[str] = []
    for line in blob.split(b"\n"):
        if form in line:
            text = scrub(line, forms).decode("utf-8", "replace").encode("unicode_escape").decode()
            at = max(0, text.find("<SECRET>") - 80)
            text = text[at : at + 200]
            if text not in seen:
                seen.append(text)
    shown = seen[:most] + ([f"... {len(seen) - most} more lines"] if len(seen) > most else [])
    return "".join(f"\n      | {text}" for text in shown)


def _sqlite_hits(path: Path, form: bytes) -> list[str]:
    """Where in an SQLite file a form sits, as table.column[key]: a hint for whoever fixes it."""
    hits = []
    try:
        con = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'"):
                cols = [row[1] for row in con.execute(f"PRAGMA table_info('{table}')")]
                for col in cols:
                    keycol = "key" if "key" in cols else "rowid"
                    rows = con.execute(
                        f'SELECT "{keycol}" FROM "{table}" WHERE instr(CAST("{col}" AS BLOB), ?) > 0', (form,)
                    ).fetchall()
                    hits += [f"{table}.{col}[{row[0]}]" for row in rows]
        finally:
            con.close()
    except sqlite3.Error as e:
        hits.append(f"(unreadable as SQLite: {e})")
    return hits


def find_leaks(
    blobs: dict[str, bytes], forms: dict[bytes, str], sqlite_files: dict[str, Path] | None = None
) -> list[str]:
    sqlite_files = sqlite_files or {}
    leaks = []
    for where, blob in blobs.items():
        for form, name in forms.items():
            if form in blob:
                line = f"{where}: {name} ({blob.count(form)}x)"
                if where in sqlite_files:
                    line += f"\n      rows: {', '.join(sorted(set(_sqlite_hits(sqlite_files[where], form))))}"
                else:
                    line += _lines_with(blob, form, forms)
                leaks.append(line)
    return leaks


def test_credentials_in_the_tracking_uri_never_leak(mlflow_auth_server, tmp_path, monkeypatch):
    server = mlflow_auth_server
    # The jobs must authenticate from the URI alone: no credentials in the CLI's environment.
    for var in CREDENTIAL_VARS:
        monkeypatch.delenv(var, raising=False)
    workdir = tmp_path / "work"
    workdir.mkdir()
    sweep_dir = workdir / "multirun"
    proc = run_cli(
        [
            "-m",
            "seed=0,1",
            "debug=smoke",
            f"tracking.uri={server.url_with_userinfo}",
            "tracking.artifact_root=null",
            "tracking.experiment=secrets",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        cwd=workdir,
        timeout=300,
    )
    # Output is shown only scrubbed, so that a failing test never prints the secret (and the
    # return code is compared alone: pytest would print the CompletedProcess with its argv).
    forms = secret_forms(server)

    def shown(text: str) -> str:
        return scrub(text.encode(), forms).decode("utf-8", "replace")

    returncode = proc.returncode
    assert returncode == 0, (
        f"CLI exited {returncode}:\n"
        + shown(proc.stdout[-3000:])
        + "\n"
        + shown(proc.stderr[-6000:])
        + "\n--- server log ---\n"
        + shown(server.log_tail())
    )

    # The runs really reached the authenticated server: 1 sweep parent + 2 FINISHED jobs under it.
    for var, value in server.credentials_env().items():
        monkeypatch.setenv(var, value)
    client = MlflowClient(server.url)
    exp = client.get_experiment_by_name("secrets")
    assert exp is not None, "experiment 'secrets' was not created on the server"
    runs = client.search_runs([exp.experiment_id])
    sweeps = [r for r in runs if r.data.tags.get("protstruct.role") == "sweep"]
    jobs = [r for r in runs if r.data.tags.get("protstruct.role") == "job"]
    # (tags hold the command line, so failures show only id, role and status)
    summary = [(r.info.run_id, r.data.tags.get("protstruct.role"), r.info.status) for r in runs]
    assert len(sweeps) == 1, summary
    assert len(jobs) == 2, summary
    assert all(r.info.status == "FINISHED" for r in jobs), summary
    assert all(r.data.tags.get("mlflow.parentRunId") == sweeps[0].info.run_id for r in jobs), summary
    for var in server.credentials_env():
        monkeypatch.delenv(var)

    # Guard against a vacuous scan: the places searched really hold what the sweep wrote.
    server_files = files_under(
        server.root, exclude={p for p in server.root.iterdir() if p.name.startswith(server.auth_db.name)}
    )
    work_files = files_under(workdir)
    assert server.store_db in server_files
    assert any(p.is_relative_to(server.artifacts) for p in server_files), "no artifacts were stored"
    assert (sweep_dir / "multirun.yaml").is_file(), sorted(map(str, work_files))
    assert any(p.parent.name == ".hydra" for p in work_files), "no .hydra folder in the sweep dir"

    blobs = {"CLI stdout": proc.stdout.encode(), "CLI stderr": proc.stderr.encode()}
    blobs |= {f"server: {p.relative_to(server.root)}": p.read_bytes() for p in server_files}
    blobs |= {f"cli workdir: {p.relative_to(workdir)}": p.read_bytes() for p in work_files}
    sqlite_files = {
        f"server: {p.relative_to(server.root)}": p
        for p in server_files
        if p.read_bytes()[:16] == b"SQLite format 3\x00"
    }
    leaks = find_leaks(blobs, forms, sqlite_files)
    assert not leaks, f"credentials leaked in {len(leaks)} places:\n  " + "\n  ".join(leaks)
