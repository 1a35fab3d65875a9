"""Resume: a job whose key already has a FINISHED run in the experiment is skipped (unless
``rerun=true``); failed, killed and vanished ones run again.

The key covers everything that changes a run's results or artifacts: every resolved config value
except where the run is logged (``tracking.uri``/``experiment``/``artifact_root``) and how the
console looks; the data (every record's split, id, sequence, coordinates, mask and PSSM); and a
content hash of the code (``protstruct/**/*.py``) and ``conf/**``. The git state is not keyed (a
tracked results file rewritten by ``make report`` must not retrain anything). Library versions
are tagged on every run and warned about on reuse, not keyed. Bump :data:`KEY_VERSION` when the
recipe changes: runs keyed by an older recipe are never reused.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

KEY_TAG = "protstruct.job_key"
KEY_VERSION_TAG = "protstruct.key_version"
KEY_VERSION = "2"
# (group, key) pairs that say where or how a run is shown, not what it computes
NOT_IN_KEY = {
    ("tracking", "uri"),
    ("tracking", "experiment"),
    ("tracking", "artifact_root"),
    ("tracking", "system_metrics"),
    ("tracking", "system_metrics_interval"),
    ("trainer", "verbose"),
    ("trainer", "checkpoint_dir"),
    ("trainer", "keep_checkpoints"),
}
TOP_LEVEL_NOT_IN_KEY = ("rerun", "dry_run", "hydra", "report")  # report: read by the report, not by training


def job_key(resolved_cfg: dict, data_fingerprint: str, code_fingerprint: str) -> str:
    cfg = {}
    for group, value in resolved_cfg.items():
        if group in TOP_LEVEL_NOT_IN_KEY:
            continue
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if (group, k) not in NOT_IN_KEY}
        cfg[group] = value
    text = json.dumps([KEY_VERSION, cfg, data_fingerprint, code_fingerprint], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@functools.lru_cache(maxsize=4)
def code_fingerprint(package_dir: Path, conf_dir: Path) -> str:
    """sha256 over the relative path and bytes of every ``*.py`` under the package and every file
    under ``conf/`` (read once per process: the code a process runs is what it imported)."""
    digest = hashlib.sha256()
    for label, root, pattern in (("protstruct", package_dir, "*.py"), ("conf", conf_dir, "*")):
        for path in sorted(p for p in Path(root).rglob(pattern) if p.is_file() and "__pycache__" not in p.parts):
            digest.update(f"{label}/{path.relative_to(root).as_posix()}\0".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def finished_run(client, experiment_id: str, key: str):
    """The newest FINISHED run with this key and the current key recipe, or None."""
    query = (
        f"tags.`{KEY_TAG}` = '{key}' and tags.`{KEY_VERSION_TAG}` = '{KEY_VERSION}' and attributes.status = 'FINISHED'"
    )
    runs = client.search_runs([experiment_id], query, order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None


CHECKPOINT_TAG = "protstruct.checkpoint_dir"
RESUMED_TAG = "protstruct.resumed"


def interrupted_run(client, experiment_id: str, key: str, owner_alive):
    """The newest run with this key that stopped before it finished — KILLED (SIGTERM, Ctrl-C,
    scancel, preemption), FAILED because its process vanished, or RUNNING with its process
    provably gone — and left a checkpoint folder; None if there is none. ``owner_alive(tags)``
    says True/False/None (cannot tell) for a run's process."""
    query = (
        f"tags.`{KEY_TAG}` = '{key}' and tags.`{KEY_VERSION_TAG}` = '{KEY_VERSION}' and attributes.status != 'FINISHED'"
    )
    for run in client.search_runs([experiment_id], query, order_by=["attributes.start_time DESC"], max_results=20):
        status, tags = run.info.status, run.data.tags
        stopped = (
            status == "KILLED"
            or (status == "FAILED" and tags.get("protstruct.error", "").startswith("process vanished"))
            or (status == "RUNNING" and owner_alive(tags) is False)
        )
        if (
            stopped
            and owner_alive(tags) is not True
            and tags.get(CHECKPOINT_TAG)
            and (Path(tags[CHECKPOINT_TAG]) / "latest.json").is_file()
        ):
            return run
    return None
