"""Read a sweep's runs back from MLflow into pandas, and decide whether the sweep may be reported.

Everything goes through an explicit ``MlflowClient`` (never MLflow's global tracking URI). A sweep
is used only when its ledger (``protstruct.tracking.ledger``) says every expected job is ``ok`` or
``skipped`` (a FINISHED run reused), every such run is FINISHED, and the sweep itself FINISHED.
Sweeps made before the ledger carry no expected job count: they are complete only when they have
at least one job run and all of them are FINISHED, and the report says that their size is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from protstruct.tracking import ledger, liveness, mlflow_store
from protstruct.tracking.redact import redact

SWEEP_FILTER = "tags.`protstruct.role` = 'sweep'"


class Refused(Exception):
    """The report cannot be made honestly; the message says why and what to do (exit status 2)."""


def open_store(uri: str):
    """A client for ``uri``; runs of this host whose process is gone are ended first."""
    client = mlflow_store.client_for(uri)
    liveness.reap_vanished(client)
    return client


def to_frame(runs: list) -> pd.DataFrame:
    """Run objects → the columns ``mlflow.search_runs`` returns (run_id, experiment_id, status,
    artifact_uri, start_time, end_time, metrics.*, params.*, tags.*), newest first. Param and tag
    values pass through :func:`redact`: they end up in printed and written reports."""
    rows = []
    for run in runs:
        info, data = run.info, run.data
        row = {
            "run_id": info.run_id,
            "experiment_id": info.experiment_id,
            "status": info.status,
            "artifact_uri": info.artifact_uri,
            "start_time": info.start_time,
            "end_time": info.end_time,
        }
        row.update({f"metrics.{k}": v for k, v in data.metrics.items()})
        row.update({f"params.{k}": redact(v) for k, v in data.params.items()})
        row.update({f"tags.{k}": redact(v) for k, v in data.tags.items()})
        rows.append(row)
    base = ["run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time"]
    frame = pd.DataFrame(rows, columns=None if rows else base)
    for col in ("start_time", "end_time"):
        frame[col] = pd.to_datetime(frame[col], unit="ms", utc=True)
    if rows:
        frame = frame.sort_values("start_time", ascending=False, kind="stable").reset_index(drop=True)
    return frame


def latest_sweep(client, experiment_id: str, study: str | None = None, status: str | None = None):
    """The newest parent (sweep) run of the experiment, optionally of one study / status; None if none."""
    filters = [SWEEP_FILTER]
    if study:
        filters.append(f"tags.`protstruct.study` = '{study.replace(chr(39), '')}'")
    if status:
        filters.append(f"attributes.status = '{status}'")
    runs = client.search_runs(
        [experiment_id], " and ".join(filters), order_by=["attributes.start_time DESC"], max_results=1
    )
    return runs[0] if runs else None


@dataclass
class Sweep:
    """A sweep's parent run, its job runs, and how complete it is."""

    parent: Run  # the sweep's MLflow run
    children: pd.DataFrame
    expected: int | None  # None: a sweep from before the job ledger (size unknown)
    done: int
    missing: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.parent.info.status

    @property
    def complete(self) -> bool:
        return self.status == "FINISHED" and self.done > 0 and not self.missing

    def counts(self) -> str:
        return f"{self.done} of {self.expected if self.expected is not None else '?'} jobs"

    def partial_line(self) -> str:
        """The line every partial output starts with."""
        size = "" if self.expected is not None else " (a sweep from before the job ledger: its size is unknown)"
        return (
            f"PARTIAL: {self.counts()}{size}; missing: {'; '.join(self.missing) or 'none'} "
            f"(sweep {self.parent.info.run_id} is {self.status})"
        )

    def legacy_note(self) -> str | None:
        if self.expected is not None:
            return None
        return (
            f"Note: sweep {self.parent.info.run_id} was made before the job ledger (no "
            f"{ledger.EXPECTED_TAG} tag), so its size is unknown; it is used because all "
            f"{self.done} of its job runs are FINISHED."
        )


def _completeness(client, parent, children: pd.DataFrame) -> tuple[int | None, int, list[str]]:
    finished = set(children.loc[children["status"] == "FINISHED", "run_id"]) if not children.empty else set()
    if parent.data.tags.get(ledger.EXPECTED_TAG) is None:
        missing = [
            f"{redact(str(r.get('tags.mlflow.runName', '?')))} (run {r['run_id']}, {r['status']})"
            for _, r in children.iterrows()
            if r["status"] != "FINISHED"
        ]
        return None, len(finished), missing
    state = ledger.read(client, parent)
    missing = [redact(m) for m in state.missing]
    done = 0
    for num, outcome in sorted(state.outcomes.items()):
        if outcome.get("status") not in ledger.DONE:
            continue
        if outcome.get("run_id") in finished:
            done += 1
        else:  # the ledger says ok, but the run is gone, not FINISHED, or not linked to this sweep
            row = children[children["run_id"] == outcome.get("run_id")] if not children.empty else children
            seen = row.iloc[0]["status"] if len(row) else "not found among the sweep's runs"
            missing.append(
                f"#{num} {redact(str(outcome.get('name', '?')))} "
                f"({outcome.get('status')}, but run {outcome.get('run_id')} is {seen})"
            )
    if state.expected is None:  # an unreadable count: never claim a size
        missing.append(f"the sweep's {ledger.EXPECTED_TAG} tag is unreadable")
    return state.expected, done, missing


def find_sweep(client, uri: str, experiment: str, study: str | None, parent_run_id: str | None):
    """(experiment id, parent run): the given sweep, else the newest sweep (of ``study``)."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise LookupError(f"--experiment: no MLflow experiment named {experiment!r} at {redact(uri)}")
    if parent_run_id:
        try:
            parent = client.get_run(parent_run_id)
        except MlflowException:
            raise LookupError(f"--parent-run-id: no run {parent_run_id!r} at {redact(uri)}") from None
        if parent.info.experiment_id != exp.experiment_id or parent.data.tags.get("protstruct.role") != "sweep":
            raise LookupError(
                f"--parent-run-id: run {parent_run_id} is not a sweep (parent run) of experiment {experiment!r}"
            )
        if study and parent.data.tags.get("protstruct.study") != study:
            raise LookupError(
                f"--parent-run-id: sweep {parent_run_id} is of study "
                f"{parent.data.tags.get('protstruct.study')!r}, not {study!r}"
            )
        return exp.experiment_id, parent
    parent = latest_sweep(client, exp.experiment_id, study)
    if parent is None:
        what = f" of study {study!r}" if study else ""
        raise LookupError(
            f"no sweep (parent run){what} in experiment {experiment!r} at {redact(uri)}; "
            f"run one with `python run.py -m ...` first"
        )
    return exp.experiment_id, parent


def sweep_runs(
    client,
    uri: str,
    experiment: str,
    study: str | None = None,
    parent_run_id: str | None = None,
    allow_partial: bool = False,
) -> Sweep:
    """The sweep to report on. Raises :class:`Refused`, naming its missing jobs, when it is not
    complete (unless ``allow_partial``) — never falls back to an older sweep by itself."""
    exp_id, parent = find_sweep(client, uri, experiment, study, parent_run_id)
    children = to_frame(ledger.children(client, parent.info.run_id, exp_id))
    sweep = Sweep(parent, children, *_completeness(client, parent, children))
    if children.empty and not allow_partial:
        raise LookupError(f"sweep run {parent.info.run_id} in {experiment!r} has no job runs")
    if sweep.complete or allow_partial:
        return sweep
    name = redact(parent.info.run_name or "")
    lines = [
        f"sweep {parent.info.run_id} ({name}) is incomplete: {sweep.status}, {sweep.counts()} done; "
        f"missing: {'; '.join(sweep.missing) or 'none (the sweep did not finish)'}."
    ]
    if not parent_run_id:
        what = f" of study {study!r}" if study else ""
        lines.append(
            f"It is the latest sweep{what} in experiment {experiment!r}; the report does not fall "
            "back to an older sweep by itself."
        )
        older = latest_sweep(client, exp_id, study, status="FINISHED")
        if older is not None and older.info.run_id != parent.info.run_id:
            lines.append(
                f"The newest FINISHED sweep{what} is {older.info.run_id} ({redact(older.info.run_name or '')})."
            )
    lines.append(
        "Pass --parent-run-id RUN_ID to report on a complete sweep, or --allow-partial to report on "
        "this one with every output marked PARTIAL (never into experiments/)."
    )
    raise Refused(" ".join(lines))


def group_column(runs: pd.DataFrame, key: str) -> str:
    """Column holding a grouping key: a config-group choice tag, else a flattened config param."""
    for col in (f"tags.protstruct.{key}", f"params.{key}"):
        if col in runs.columns:
            return col
    raise KeyError(f"--group-by: {key!r} is neither a config group nor a config key of these runs")
