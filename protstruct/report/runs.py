"""Read a sweep's runs back from MLflow into pandas."""
from __future__ import annotations

import mlflow
import pandas as pd

from protstruct.tracking import mlflow_store, sweep


def latest_sweep(client, experiment_id: str, study: str | None = None):
    """The newest parent (sweep) run of the experiment, optionally of one study; None if none."""
    filters = ["tags.`protstruct.role` = 'sweep'"]
    if study:
        filters.append(f"tags.`protstruct.study` = '{study}'")
    runs = client.search_runs([experiment_id], " and ".join(filters),
                              order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None


def sweep_runs(uri: str, experiment: str, study: str | None = None, parent_run_id: str | None = None):
    """(parent run, DataFrame of its child runs). Raises a clear error when there is nothing."""
    client = mlflow_store.client_for(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise LookupError(f"--experiment: no MLflow experiment named {experiment!r} at {uri}")
    parent = client.get_run(parent_run_id) if parent_run_id else latest_sweep(client, exp.experiment_id, study)
    if parent is None:
        what = f" of study {study!r}" if study else ""
        raise LookupError(f"no sweep (parent run){what} in experiment {experiment!r} at {uri}; "
                          f"run one with `python run.py -m ...` first")
    mlflow.set_tracking_uri(uri)
    # the sweep's own job runs, and FINISHED runs of earlier sweeps that stood in for skipped jobs
    found = [mlflow.search_runs(experiment_ids=[exp.experiment_id], filter_string=f, output_format="pandas",
                                max_results=50000)
             for f in (f"tags.`{mlflow_store.PARENT_TAG}` = '{parent.info.run_id}'",
                       f"tags.`{sweep.REUSED_TAG_PREFIX}{parent.info.run_id}` = '1'")]
    children = pd.concat([f for f in found if not f.empty] or [found[0]], ignore_index=True) \
        .drop_duplicates("run_id")
    if children.empty:
        raise LookupError(f"sweep run {parent.info.run_id} in {experiment!r} has no job runs")
    return parent, children


def group_column(runs: pd.DataFrame, key: str) -> str:
    """Column holding a grouping key: a config-group choice tag, else a flattened config param."""
    for col in (f"tags.protstruct.{key}", f"params.{key}"):
        if col in runs.columns:
            return col
    raise KeyError(f"--group-by: {key!r} is neither a config group nor a config key of these runs")
