"""A sweep's ledger, kept on its MLflow parent run, so that every reader sees the same truth
whichever machine ran the jobs:

- ``protstruct.expected_jobs``: how many jobs the sweep launches, recorded when it starts
  (artifact ``sweep/jobs.json`` names them);
- ``protstruct.job.<num>``: each job's outcome as JSON ``{"name", "status", "run_id", "test_rmse"}``
  with status ``ok`` / ``skipped`` (a FINISHED run reused) / ``failed`` / ``killed`` / ``vanished``.

A sweep is FINISHED only when every expected job is ``ok`` or ``skipped``; KILLED when it was
interrupted; FAILED otherwise — including when no job ran.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from mlflow.exceptions import MlflowException

from protstruct.tracking.mlflow_store import PARENT_TAG, search_all
from protstruct.tracking.redact import redact

log = logging.getLogger(__name__)
EXPECTED_TAG = "protstruct.expected_jobs"
JOB_TAG_PREFIX = "protstruct.job."
JOBS_ARTIFACT = "sweep/jobs.json"
REUSED_TAG_PREFIX = "protstruct.reused_by."  # + parent run id: a FINISHED run that stood in for a job
DONE = ("ok", "skipped")


@dataclass
class Completeness:
    expected: int | None
    outcomes: dict[int, dict] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)  # expected job number → name

    @property
    def missing(self) -> list[str]:
        """Jobs without an ok/skipped outcome: ``#num name (status)``."""
        nums = range(self.expected) if self.expected is not None else sorted(self.outcomes)
        out = []
        for num in nums:
            outcome = self.outcomes.get(num, {})
            if outcome.get("status") not in DONE:
                name = outcome.get("name") or self.names.get(num, "?")
                out.append(f"#{num} {name} ({outcome.get('status', 'never reported')})")
        return out

    @property
    def complete(self) -> bool:
        return bool(self.outcomes) and not self.missing


def record(
    client, parent_run_id: str | None, num, name: str, status: str, run_id: str | None, test_rmse: float | None = None
) -> None:
    """One job's outcome on its sweep's parent run (distinct tag per job: parallel writers never
    overwrite each other)."""
    if parent_run_id is None or num is None:
        return
    value = json.dumps({"name": redact(name), "status": status, "run_id": run_id, "test_rmse": test_rmse})
    client.set_tag(parent_run_id, f"{JOB_TAG_PREFIX}{int(num)}", value)


def read(client, parent_run) -> Completeness:
    tags = parent_run.data.tags
    expected = tags.get(EXPECTED_TAG)
    outcomes = {}
    for key, value in tags.items():
        if key.startswith(JOB_TAG_PREFIX) and key[len(JOB_TAG_PREFIX) :].isdigit():
            try:
                outcomes[int(key[len(JOB_TAG_PREFIX) :])] = json.loads(value)
            except json.JSONDecodeError:
                outcomes[int(key[len(JOB_TAG_PREFIX) :])] = {"status": "unreadable"}
    names = {}
    if expected is not None and any(int(n) not in outcomes for n in range(int(expected))):
        names = _expected_names(client, parent_run.info.run_id)
    return Completeness(int(expected) if expected is not None and expected.isdigit() else None, outcomes, names)


def _expected_names(client, run_id: str) -> dict[int, str]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, JOBS_ARTIFACT, tmp)
            with open(path) as fh:
                return {int(j["num"]): str(j["name"]) for j in json.load(fh)}
        except (MlflowException, OSError, ValueError, KeyError, TypeError) as exc:  # names are a convenience
            log.debug("sweep %s: no %s (%s)", run_id, JOBS_ARTIFACT, exc)
            return {}


def settle(client, parent_run_id: str, interrupted: bool = False) -> str:
    """End a sweep's parent run with the status its ledger supports; returns the status."""
    parent = client.get_run(parent_run_id)
    state = read(client, parent)
    status = "KILLED" if interrupted else ("FINISHED" if state.complete else "FAILED")
    counts: dict[str, int] = {}
    for outcome in state.outcomes.values():
        counts[outcome.get("status", "?")] = counts.get(outcome.get("status", "?"), 0) + 1
    tags = {
        "protstruct.jobs": str(len(state.outcomes)),
        "protstruct.job_status": ", ".join(f"{k}={v}" for k, v in sorted(counts.items())),
    }
    if state.missing:
        tags["protstruct.missing_jobs"] = "; ".join(state.missing)[:5000]
    for key, value in tags.items():
        client.set_tag(parent_run_id, key, value)
    client.set_terminated(parent_run_id, status)
    return status


def children(client, parent_run_id: str, experiment_id: str) -> list:
    """The sweep's own job runs plus FINISHED runs of earlier sweeps that stood in for its jobs."""
    found = {}
    for query in (f"tags.`{PARENT_TAG}` = '{parent_run_id}'", f"tags.`{REUSED_TAG_PREFIX}{parent_run_id}` = '1'"):
        for run in search_all(client, [experiment_id], query):
            found[run.info.run_id] = run
    return list(found.values())
