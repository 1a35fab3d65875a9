"""Scale of the report: a sweep of N finished jobs (real per-protein tables and prediction samples
as artifacts, a complete ledger) in a fresh SQLite store, then ``make_report`` over it, timed."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from protstruct.tracking import ledger, mlflow_store

VARIANTS = ("transpose", "upsample", "bilinear", "subpixel")


def _fill(client, exp_id: str, parent_id: str, n_runs: int, workdir: Path, proteins: int, crop: int) -> None:
    rng = np.random.default_rng(0)
    ids = [f"P{i:04d}" for i in range(proteins)]
    for num in range(n_runs):
        decoder, seed = VARIANTS[num % len(VARIANTS)], num // len(VARIANTS)
        name = f"decoder={decoder},seed={seed}"
        logger = mlflow_store.RunLogger.start(
            client,
            exp_id,
            name,
            parent_run_id=parent_id,
            tags={"protstruct.role": "job", "protstruct.decoder": decoder},
        )
        logger.log_params({"seed": str(seed), "data.crop_size": str(crop)})
        mse = rng.gamma(4.0, 20.0, proteins)
        logger.log_metrics(
            {
                "test/mse": float(mse.mean()),
                "test/rmse": float(np.sqrt(mse.mean())),
                "test/mse_original": float(mse.mean() * 1e4 * crop),
                "baseline/test_rmse": 7.8,
            }
        )
        for epoch in range(3):
            logger.log_metrics({"val/rmse": float(12 - epoch + rng.normal())}, step=epoch)
        folder = workdir / logger.run_id
        folder.mkdir()
        pd.DataFrame({"protein": ids, "mse": mse}).to_csv(folder / "test_per_protein.csv", index=False)
        true = rng.uniform(3, 40, (2, crop, crop)).astype(np.float32)
        np.savez_compressed(
            folder / "test_predictions.npz",
            ids=np.array(ids[:2]),
            true=true,
            baseline=true,
            mask=np.ones_like(true, bool),
            pred=true + 1,
        )
        logger.log_artifacts(folder, "evaluation")
        logger.finish()
        ledger.record(client, parent_id, num, name, "ok", logger.run_id, float(np.sqrt(mse.mean())))


def report_scale(n_runs: int = 1000, proteins: int = 24, crop: int = 32) -> dict:
    """Seconds to create the store (not the point) and to report over it (the point)."""
    from protstruct.report.build import make_report

    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        client = mlflow_store.client_for(uri)
        exp_id = mlflow_store.ensure_experiment(client, "scale", f"{tmp}/artifacts")
        parent = mlflow_store.RunLogger.start(
            client, exp_id, "sweep", tags={"protstruct.role": "sweep", ledger.EXPECTED_TAG: str(n_runs)}
        )
        started = time.perf_counter()
        (Path(tmp) / "work").mkdir()
        _fill(client, exp_id, parent.run_id, n_runs, Path(tmp) / "work", proteins, crop)
        parent.finish()
        filled = time.perf_counter() - started
        started = time.perf_counter()
        text = make_report(uri, "scale", None, None, ["decoder"], {"decoder": "transpose"}, Path(tmp) / "report")
        reported = time.perf_counter() - started
    return {
        "runs": n_runs,
        "proteins": proteins,
        "store_fill_seconds": round(filled, 1),
        "report_seconds": round(reported, 1),
        "jobs_line": next((line for line in text.splitlines() if "jobs;" in line), "")[:200],
    }


if __name__ == "__main__":
    import sys

    print(json.dumps(report_scale(int(sys.argv[1]) if len(sys.argv) > 1 else 1000), indent=1))
