"""How a job ends: its run's final status and artifacts, its sweep's ledger (and the ledger of the
sweep that started a resumed run), and the value it returns to Hydra's sweeper."""

from __future__ import annotations

import logging
import math

from protstruct.tracking import artifacts, ledger

log = logging.getLogger("protstruct.train.job")  # the job's own log lines, as before


def finish_run(client, run_logger, status: str, metrics: dict, ctx: dict) -> None:
    """End the job's run and record its outcome on the sweep, whatever happened before."""
    if run_logger is None:
        return
    word = {"FINISHED": "ok", "FAILED": "failed", "KILLED": "killed"}[status]
    if ctx.get("monitor") is not None:
        ctx.pop("monitor").finish()
    try:
        artifacts.log_hydra_files(run_logger, ctx["output_dir"], ctx["log_file"])
    finally:
        run_logger.finish(status)
        ledger.record(client, ctx["parent"], ctx["num"], ctx["name"], word, run_logger.run_id, metrics.get("test/rmse"))
        if status == "KILLED" and ctx["parent"]:
            ledger.settle(client, ctx["parent"], interrupted=True)
        _update_earlier_sweep(client, ctx, word, run_logger.run_id, metrics.get("test/rmse"))
    summary = " ".join(f"{k}={metrics[k]:.4g}" for k in ("test/rmse", "test/mse", "baseline/test_rmse") if k in metrics)
    log.info("[%s] %s %s run_id=%s", word, ctx["name"], summary, run_logger.run_id)


def _update_earlier_sweep(client, ctx: dict, word: str, run_id: str, test_rmse) -> None:
    """A resumed run also counts for the sweep that started it: its ledger entry is updated and,
    if that sweep has already ended, its status recomputed."""
    parent, num = ctx.get("earlier_sweep") or (None, None)
    if not parent or not num or parent == ctx["parent"] or not str(num).isdigit():
        return
    ledger.record(client, parent, int(num), ctx["name"], word, run_id, test_rmse)
    if client.get_run(parent).info.status != "RUNNING":
        ledger.settle(client, parent)


def best_val_rmse(client, run_id: str) -> float:
    """The job's return value, which Optuna-style sweepers minimise: the best finite val/rmse."""
    values = [m.value for m in client.get_metric_history(run_id, "val/rmse") if math.isfinite(m.value)]
    return min(values, default=math.nan)
