"""The comparison table: mean ± std over seeds per variant, change vs a reference variant, and the
separation baseline as an honest floor.

Metrics keep the names their runs logged: a store from before a metric's rename (``test/mse_seed``,
now ``test/mse_original``) is read, and shown, under its old name; a store holding both is shown
under the current name, the old values filling the runs that lack it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MSE_ORIGINAL = "test/mse_original"  # the original report's definition, summed per protein (pm²)
METRICS = ("test/rmse", "test/mse", MSE_ORIGINAL)
BASELINE = "baseline/test_rmse"
OLD_NAMES = {MSE_ORIGINAL: "test/mse_seed"}  # current name → the name earlier runs logged


def _fmt(mean: float, std: float, digits: int = 3) -> str:
    if np.isnan(std):
        return f"{mean:.{digits}g}"
    return f"{mean:.{digits}g} ± {std:.2g}"


def metric_names(runs: pd.DataFrame) -> dict[str, str]:
    """Each metric's current name → the name these runs hold it under."""
    names: dict[str, str] = {}
    for metric in (*METRICS, BASELINE):
        old = OLD_NAMES.get(metric)
        stored = old is not None and f"metrics.{metric}" not in runs and f"metrics.{old}" in runs
        names[metric] = old if old is not None and stored else metric
    return names


def _values(runs: pd.DataFrame, metric: str) -> pd.Series:
    """A metric's values under its current name, else its old one; NaN where a run has neither."""
    values = pd.Series(np.nan, index=runs.index, dtype=float)
    for name in (metric, OLD_NAMES.get(metric)):
        if name is not None and f"metrics.{name}" in runs:
            values = values.fillna(runs[f"metrics.{name}"].astype(float))
    return values


def _variant_row(
    runs: pd.DataFrame, grp: pd.DataFrame, values: tuple, group_cols: dict[str, str], names: dict[str, str]
) -> dict:
    keys = list(group_cols)
    row = dict(zip(keys, values))
    row["n"] = len(grp)
    same = (runs[[group_cols[k] for k in keys]].astype(str) == list(values)).all(axis=1)
    row["failed"] = int((same & (runs["status"] != "FINISHED")).sum())
    for metric, name in names.items():
        vals = _values(grp, metric)
        row[f"{name} mean"] = vals.mean()
        row[f"{name} std"] = vals.std(ddof=1) if len(vals) > 1 else np.nan
    return row


def summarize(
    runs: pd.DataFrame,
    group_cols: dict[str, str],
    reference: dict[str, str] | None,
    names: dict[str, str] | None = None,
) -> pd.DataFrame:
    """One row per variant (FINISHED runs only), with n, mean/std per metric (columns named as
    ``names`` says, default :func:`metric_names`), and change vs reference."""
    names = names or metric_names(runs)
    done = runs[runs["status"] == "FINISHED"].copy()
    if done.empty:
        raise ValueError("no FINISHED job runs in this sweep to summarize")
    keys = list(group_cols)
    for key, col in group_cols.items():
        done[key] = done[col].astype(str)
    rows = [
        _variant_row(runs, grp, values if isinstance(values, tuple) else (values,), group_cols, names)
        for values, grp in done.groupby(keys, sort=True)
    ]
    table = pd.DataFrame(rows)
    baseline = f"{names[BASELINE]} mean"
    table["beats separation baseline"] = table[f"{names['test/rmse']} mean"] < table[baseline]
    table["vs separation baseline (rmse)"] = table[f"{names['test/rmse']} mean"] / table[baseline] - 1.0
    reference = {k: v for k, v in (reference or {}).items() if k in keys}
    if reference:
        ref = table[(table[list(reference)].astype(str) == pd.Series(reference)).all(axis=1)]
        if not ref.empty:
            for metric in (MSE_ORIGINAL, "test/rmse"):
                name = names[metric]
                table[f"{name} change vs reference"] = table[f"{name} mean"] / ref.iloc[0][f"{name} mean"] - 1.0
    return table


def table_markdown(table: pd.DataFrame, keys: list[str], settings: str, names: dict[str, str]) -> str:
    """The runs' settings and one line per variant."""
    rmse, mse, original, base = (names[m] for m in ("test/rmse", "test/mse", MSE_ORIGINAL, BASELINE))
    header = [
        *keys,
        "n",
        f"{rmse} (Å)",
        f"{mse} (Å²)",
        f"{original} (pm²)",
        f"Δ {original.split('/')[-1]} vs ref",
        "separation baseline rmse (Å)",
        "beats baseline?",
    ]
    lines = [f"Runs: {settings}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, r in table.iterrows():
        change = r.get(f"{original} change vs reference", np.nan)
        cells = [str(r[k]) for k in keys] + [
            f"{r['n']}" + (f" (+{r['failed']} failed)" if r["failed"] else ""),
            _fmt(r[f"{rmse} mean"], r[f"{rmse} std"]),
            _fmt(r[f"{mse} mean"], r[f"{mse} std"]),
            _fmt(r[f"{original} mean"], r[f"{original} std"]),
            "—" if np.isnan(change) else f"{change:+.1%}",
            _fmt(r[f"{base} mean"], np.nan),
            ("yes" if r["beats separation baseline"] else "**no**")
            + f" ({r['vs separation baseline (rmse)']:+.1%} rmse)",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def baseline_markdown(table: pd.DataFrame, keys: list[str]) -> str:
    """What the separation baseline is, and the variants that do not beat it."""
    lines = [
        "The separation baseline predicts, for every pair, the mean training distance at its "
        "sequence separation |i−j|; a model that sees only |i−j| can at best approach it."
    ]
    beaten = table["beats separation baseline"]
    if not beaten.all():
        losers = ", ".join("/".join(str(r[k]) for k in keys) for _, r in table[~beaten].iterrows())
        lines.append(f"**Variants that do not beat the separation baseline: {losers}.**")
    return "\n".join(lines)
