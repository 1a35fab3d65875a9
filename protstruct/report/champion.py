"""The study's champion into MLflow's model registry: the variant with the lowest mean best
``val/rmse``, and within it the run with the lowest best ``val/rmse`` — chosen on validation data,
never on the test metrics the report compares."""

from __future__ import annotations

import math

import pandas as pd

from protstruct.report.runs import Refused
from protstruct.report.variants import variant_of
from protstruct.tracking import models


def best_val(client, run_id: str) -> float:
    values = [m.value for m in client.get_metric_history(run_id, "val/rmse") if math.isfinite(m.value)]
    return min(values, default=math.inf)


def choose(client, children: pd.DataFrame, group_cols: dict[str, str]) -> tuple[str, str, float]:
    """(variant, run id, best val/rmse) of the champion among FINISHED runs."""
    done = children[children["status"] == "FINISHED"].copy()
    if done.empty:
        raise Refused("--register: the sweep has no FINISHED run")
    done["best_val"] = [best_val(client, r) for r in done["run_id"]]
    done["variant"] = [variant_of(row, group_cols) for _, row in done.iterrows()]
    means = done.groupby("variant")["best_val"].mean().sort_values(kind="stable")
    variant = means.index[0]
    if not math.isfinite(means.iloc[0]):
        raise Refused("--register: no run has a finite val/rmse")
    best = done[done["variant"] == variant].sort_values("best_val", kind="stable").iloc[0]
    return variant, best["run_id"], float(best["best_val"])


def register_champion(
    client, name: str, parent, children: pd.DataFrame, group_cols: dict[str, str], report_path: str
) -> str:
    """Register the champion's MLflow Model as a new version of ``name`` with alias ``champion``,
    linked to the sweep and its report; returns a line for the report's output."""
    variant, run_id, value = choose(client, children, group_cols)
    model_id = models.run_model_id(client, client.get_run(run_id))
    if model_id is None:
        raise Refused(
            f"--register: the champion run {run_id} ({variant}) has no MLflow Model "
            f"(tracking.log_model was off, or it predates logged models)"
        )
    report = f"runs:/{parent.info.run_id}/{report_path}"
    tags = {
        "protstruct.sweep": parent.info.run_id,
        "protstruct.variant": variant,
        "protstruct.report": report,
        "protstruct.best_val_rmse": f"{value:.6g}",
    }
    version = models.register(
        client,
        name,
        run_id,
        model_id,
        tags,
        f"Champion of sweep {parent.info.run_id} ({variant}, best val/rmse {value:.4g} Å); report: {report}",
    )
    return f"registered {name} version {version} (alias {models.CHAMPION}): {variant}, run {run_id}"
