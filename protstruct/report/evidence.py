"""Each run's evaluation artifacts, read safely, with every gap named rather than skipped.

- ``evaluation/test_per_protein.csv`` (paired statistics) and ``evaluation/test_predictions.npz``
  (heatmaps) that are missing or unreadable are listed in the report, run by run.
- An ``.npz`` holding pickled data cannot have been written by protstruct: it is never unpickled
  (``allow_pickle=False``) and the report stops, naming the run and the artifact.
"""

from __future__ import annotations

import contextlib
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from numpy.lib.npyio import NpzFile

from protstruct.report.runs import Refused
from protstruct.report.variants import variant_of
from protstruct.tracking.redact import redact

PER_PROTEIN = "evaluation/test_per_protein.csv"
PREDICTIONS = "evaluation/test_predictions.npz"
SAMPLE_KEYS = {"ids", "true", "baseline", "mask", "pred"}
PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


class Unreadable(Exception):
    pass


@dataclass
class Evidence:
    per_protein: pd.DataFrame
    histories: dict[str, list[list[float]]]
    samples: dict[str, dict]
    sample_seeds: dict[str, str] = field(default_factory=dict)  # variant → the seed of its sample
    no_per_protein: list[str] = field(default_factory=list)  # "name (run id): why"
    no_predictions: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        lines = []
        if self.no_per_protein:
            lines.append(
                f"**Runs without per-protein results: {'; '.join(self.no_per_protein)}** — the paired "
                "comparison below uses only the other runs."
            )
        if self.no_predictions:
            lines.append(
                f"**Runs without prediction samples: {'; '.join(self.no_predictions)}** — the heatmaps leave them out."
            )
        return "\n\n".join(lines) + "\n" if lines else ""


def _download(client, run_id: str, artifact: str, target: Path) -> Path:
    try:
        return Path(client.download_artifacts(run_id, artifact, str(target)))
    except (MlflowException, OSError) as exc:
        why = redact(str(exc)).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise Unreadable(f"{artifact} missing ({why})") from None


def read_per_protein(path: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(path)
        table = table[["protein", "mse"]].copy()
        table["mse"] = pd.to_numeric(table["mse"], errors="raise")
    except (
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        UnicodeDecodeError,
        KeyError,
        ValueError,
        TypeError,
    ) as exc:
        raise Unreadable(f"{PER_PROTEIN} unreadable ({type(exc).__name__}: {str(exc)[:200]})") from exc
    return table


def read_sample(path: Path, run: str) -> dict:
    """The arrays of a predictions ``.npz``; never unpickles anything."""
    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, NpzFile):
            raise Unreadable(f"{PREDICTIONS} unreadable (a single array, not an .npz archive)")
        with npz:
            sample = {key: npz[key] for key in npz.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object arrays" in str(exc).lower():
            raise Refused(
                f"run {run}: artifact {PREDICTIONS} holds pickled (object) data, which protstruct "
                "never writes; it was not unpickled (allow_pickle=False). The artifact has been "
                "tampered with or replaced: inspect the run, delete or rerun it, then report again"
            ) from None
        raise Unreadable(f"{PREDICTIONS} unreadable (ValueError: {str(exc)[:200]})") from exc
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise Unreadable(f"{PREDICTIONS} unreadable ({type(exc).__name__}: {str(exc)[:200]})") from exc
    if not set(sample) >= SAMPLE_KEYS:
        raise Unreadable(f"{PREDICTIONS} unreadable (lacks {', '.join(sorted(SAMPLE_KEYS - set(sample)))})")
    return sample


@contextlib.contextmanager
def quiet_downloads():
    """MLflow's per-file progress bars off while a report fetches (they would clutter its output);
    the variable is restored afterwards."""
    before = os.environ.get(PROGRESS_BAR)
    os.environ[PROGRESS_BAR] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(PROGRESS_BAR, None)
        else:
            os.environ[PROGRESS_BAR] = before


Fetched = tuple[list[float], Path | Unreadable, Path | Unreadable]  # history, per-protein, predictions


def _fetch(client, run_id: str, target: Path) -> Fetched:
    """One run's val/rmse history and its two artifacts (a path, or the Unreadable that says why)."""
    history = client.get_metric_history(run_id, "val/rmse")
    target.mkdir()
    fetched: list[Path | Unreadable] = []
    for artifact in (PER_PROTEIN, PREDICTIONS):
        try:
            fetched.append(_download(client, run_id, artifact, target))
        except Unreadable as exc:
            fetched.append(exc)
    return [m.value for m in sorted(history, key=lambda m: m.step)], fetched[0], fetched[1]


def _finished_by_seed(children: pd.DataFrame) -> list:
    """The FINISHED runs, lowest seed first (then by run id): the first of a variant gives its sample."""
    done = children[children["status"] == "FINISHED"].copy()
    if "params.seed" not in done:
        done["params.seed"] = "0"
    done["_seed"] = pd.to_numeric(done["params.seed"], errors="coerce")
    return [row for _, row in done.sort_values(["_seed", "params.seed", "run_id"], kind="stable").iterrows()]


def _add_run(evidence: Evidence, row, variant: str, fetched: Fetched, tables: list) -> None:
    """One run's history, per-protein table and sample into ``evidence``; its gaps named."""
    history, per_protein, predictions = fetched
    run = f"{redact(str(row.get('tags.mlflow.runName', '') or variant))} (run {row['run_id']})"
    evidence.histories.setdefault(variant, []).append(history)
    try:
        if isinstance(per_protein, Unreadable):
            raise per_protein
        table = read_per_protein(per_protein)
        table["variant"], table["seed"] = variant, row["params.seed"]
        tables.append(table)
    except Unreadable as exc:
        evidence.no_per_protein.append(f"{run}: {exc}")
    try:
        if isinstance(predictions, Unreadable):
            raise predictions
        sample = read_sample(predictions, run)
        if variant not in evidence.samples:
            evidence.samples[variant], evidence.sample_seeds[variant] = sample, str(row["params.seed"])
    except Unreadable as exc:
        evidence.no_predictions.append(f"{run}: {exc}")


def collect(client, children: pd.DataFrame, group_cols: dict[str, str], workdir: Path, workers: int = 8) -> Evidence:
    """Per-protein errors, val/rmse histories and one prediction sample per variant, from the
    FINISHED runs (fetched in parallel: a sweep may have thousands); every run whose artifacts
    are missing or unreadable is named."""
    evidence = Evidence(pd.DataFrame(), {}, {})
    rows = _finished_by_seed(children)
    with quiet_downloads(), ThreadPoolExecutor(max_workers=workers) as pool:
        fetched = list(pool.map(lambda row: _fetch(client, row["run_id"], workdir / row["run_id"]), rows))
    tables: list[pd.DataFrame] = []
    for row, run_fetched in zip(rows, fetched):
        _add_run(evidence, row, variant_of(row, group_cols), run_fetched, tables)
    if tables:
        evidence.per_protein = pd.concat(tables, ignore_index=True)
    return evidence
