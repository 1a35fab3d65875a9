"""Paired comparisons of a variant against the reference variant.

Every variant is evaluated on the same test windows, so differences pair up per test protein
(and per seed). We report the mean per-protein difference in MSE with a bootstrap 95 % interval
over proteins, and a sign-flip permutation p-value; per seed, the differences of test/mse. With
few seeds or proteins the interval is wide and the report says so rather than claiming a result.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

RESAMPLES = 10_000
MIN_PROTEINS = 10


def bootstrap_interval(diffs: np.ndarray, rng: np.random.Generator, level: float = 0.95):
    idx = rng.integers(0, len(diffs), size=(RESAMPLES, len(diffs)))
    means = diffs[idx].mean(axis=1)
    return float(np.quantile(means, (1 - level) / 2)), float(np.quantile(means, 1 - (1 - level) / 2))


def sign_flip_p(diffs: np.ndarray, rng: np.random.Generator) -> float:
    """Two-sided p-value that the mean paired difference is 0 (random sign flips)."""
    observed = abs(diffs.mean())
    signs = rng.choice([-1.0, 1.0], size=(RESAMPLES, len(diffs)))
    null = np.abs((signs * diffs).mean(axis=1))
    return float((1 + (null >= observed - 1e-12).sum()) / (RESAMPLES + 1))


def compare(per_protein: pd.DataFrame, variant: str, reference: str, seed: int = 0) -> dict:
    """``per_protein``: rows (variant, seed, protein, mse). Differences variant − reference."""
    a = per_protein[per_protein["variant"] == variant]
    b = per_protein[per_protein["variant"] == reference]
    joined = a.merge(b, on=["seed", "protein"], suffixes=("", "_ref")).dropna(subset=["mse", "mse_ref"])
    if joined.empty:
        return {"variant": variant, "n_proteins": 0, "n_seeds": 0, "note": "no paired proteins"}
    by_protein = (joined["mse"] - joined["mse_ref"]).groupby(joined["protein"]).mean().to_numpy()
    by_seed = joined.groupby("seed").apply(
        lambda g: g["mse"].mean() - g["mse_ref"].mean(), include_groups=False).to_numpy()
    rng = np.random.default_rng(seed)
    lo, hi = bootstrap_interval(by_protein, rng)
    out = {"variant": variant, "n_proteins": len(by_protein), "n_seeds": len(by_seed),
           "mean_diff_mse": float(by_protein.mean()), "ci95_low": lo, "ci95_high": hi,
           "p_sign_flip": sign_flip_p(by_protein, rng),
           "seed_diffs_mse": [float(x) for x in by_seed],
           "proteins_better": int((by_protein < 0).sum())}
    notes = []
    if len(by_protein) < MIN_PROTEINS:
        notes.append(f"only {len(by_protein)} paired proteins: the interval is not trustworthy")
    if len(by_seed) < 3:
        notes.append(f"only {len(by_seed)} seed(s): seed-to-seed variation is not captured")
    elif len(set(np.sign(by_seed))) > 1:
        notes.append("the sign of the difference changes between seeds")
    out["note"] = "; ".join(notes) or "—"
    return out
