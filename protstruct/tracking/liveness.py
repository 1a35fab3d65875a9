"""Runs whose process is gone (SIGKILL, out-of-memory kill, a node that rebooted) never end by
themselves. Every run records the host, PID and start time of the process that owns it; any
protstruct command against a store then ends such runs on its own host as FAILED
(``protstruct.error`` = ``process vanished``), and their sweeps with the status their ledger
supports. Runs owned by other hosts are left alone: their processes cannot be seen from here.
"""

from __future__ import annotations

import logging
import socket

import psutil

from protstruct.tracking import ledger
from protstruct.tracking.mlflow_store import PARENT_TAG, search_all

log = logging.getLogger(__name__)
HOST_TAG, PID_TAG, START_TAG = "protstruct.host", "protstruct.pid", "protstruct.process_start"
JOB_NUM_TAG = "protstruct.job_num"
VANISHED = "process vanished"
_START_TOLERANCE_S = 1.0  # create_time is derived from boot time and clock ticks


def process_tags() -> dict[str, str]:
    """Who owns a run: this host, this process, and when it started (PIDs are reused)."""
    me = psutil.Process()
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(me.pid), START_TAG: f"{me.create_time():.3f}"}


def owner_alive(tags: dict) -> bool | None:
    """True/False for a run owned by a process on this host; None when it cannot be told here."""
    if tags.get(HOST_TAG) != socket.gethostname() or not tags.get(PID_TAG, "").isdigit():
        return None
    try:
        started = float(tags.get(START_TAG, "nan"))
        return abs(psutil.Process(int(tags[PID_TAG])).create_time() - started) < _START_TOLERANCE_S
    except (psutil.NoSuchProcess, ValueError):
        return False
    except psutil.AccessDenied:
        return True  # someone else's live process


def reap_vanished(client) -> list[str]:
    """End every RUNNING run of this host whose process is gone; returns their ids."""
    host = socket.gethostname().replace("'", "")
    experiments = [e.experiment_id for e in client.search_experiments(max_results=50000)]
    if not experiments:
        return []
    query = f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'"
    reaped, parents = [], set()
    for run in search_all(client, experiments, query):
        if owner_alive(run.data.tags) is not False:
            continue
        tags = run.data.tags
        detail = f"{VANISHED} (host {tags.get(HOST_TAG)}, pid {tags.get(PID_TAG)}, started {tags.get(START_TAG)})"
        client.set_tag(run.info.run_id, "protstruct.error", detail)
        if tags.get("protstruct.role") == "sweep":
            ledger.settle(client, run.info.run_id)
            client.set_tag(run.info.run_id, "protstruct.error", detail)
        else:
            client.set_terminated(run.info.run_id, "FAILED")
            parent = tags.get(PARENT_TAG)
            if parent and tags.get(JOB_NUM_TAG, "").isdigit():
                ledger.record(
                    client, parent, int(tags[JOB_NUM_TAG]), run.info.run_name or "", "vanished", run.info.run_id
                )
                parents.add(parent)
        log.warning("run %s (%s): %s; marked FAILED", run.info.run_id, run.info.run_name, detail)
        reaped.append(run.info.run_id)
    for parent in parents:  # a sweep whose launcher is also gone ends now; a live one ends itself
        parent_run = client.get_run(parent)
        if parent_run.info.status == "RUNNING" and owner_alive(parent_run.data.tags) is False:
            ledger.settle(client, parent)
            client.set_tag(parent, "protstruct.error", VANISHED)
            reaped.append(parent)
    return reaped
