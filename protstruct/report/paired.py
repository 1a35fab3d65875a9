"""Paired comparisons of a variant against the reference variant.

Every variant is evaluated on the same test windows, so differences pair up per test protein
(and per seed). We report the mean per-protein difference in MSE with a bootstrap 95 % interval
over proteins, and a sign-flip permutation p-value; per seed, the differences of test/mse. With
few seeds or proteins the interval is wide and the report says so rather than claiming a result.
Results without a counterpart on the other side (a protein or a whole seed missing, an MSE that is
not a number) cannot pair: the note names what was left out, seed by seed.
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


def _seed_order(seed) -> tuple:
    text = str(seed)
    return (0, int(text), text) if text.lstrip("-").isdigit() else (1, 0, text)


def left_out(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    """What pairing ``a`` (a variant's rows) with ``b`` (the reference's) drops, seed by seed."""
    keys = ["seed", "protein"]
    both = a[[*keys, "mse"]].merge(b[[*keys, "mse"]], on=keys, how="outer", suffixes=("", "_ref"))
    notes = []
    for seed in sorted(set(both["seed"]), key=_seed_order):
        rows = both[both["seed"] == seed]
        lost = rows["mse"].isna() | rows["mse_ref"].isna()
        if not lost.any():
            continue
        if rows["mse"].isna().all():
            notes.append(f"seed {seed}: no results of this variant")
        elif rows["mse_ref"].isna().all():
            notes.append(f"seed {seed}: no results of the reference")
        else:
            notes.append(
                f"seed {seed}: {int(lost.sum())} of {len(rows)} proteins unpaired (absent or without "
                "an MSE on one side)"
            )
    return notes


def _notes(n_proteins: int, by_seed: np.ndarray, dropped: list[str]) -> str:
    notes = []
    if n_proteins < MIN_PROTEINS:
        notes.append(f"only {n_proteins} paired proteins: the interval is not trustworthy")
    if len(by_seed) < 3:
        notes.append(f"only {len(by_seed)} seed(s): seed-to-seed variation is not captured")
    elif len(set(np.sign(by_seed))) > 1:
        notes.append("the sign of the difference changes between seeds")
    if dropped:
        notes.append("left out: " + "; ".join(dropped))
    return "; ".join(notes) or "—"


def compare(per_protein: pd.DataFrame, variant: str, reference: str, rng_seed: int = 0) -> dict:
    """``per_protein``: rows (variant, seed, protein, mse). Differences variant − reference;
    ``rng_seed`` seeds the bootstrap and the permutations."""
    a = per_protein[per_protein["variant"] == variant]
    b = per_protein[per_protein["variant"] == reference]
    joined = a.merge(b, on=["seed", "protein"], suffixes=("", "_ref")).dropna(subset=["mse", "mse_ref"])
    if joined.empty:
        return {"variant": variant, "n_proteins": 0, "n_seeds": 0, "note": "no paired proteins"}
    by_protein = (joined["mse"] - joined["mse_ref"]).groupby(joined["protein"]).mean().to_numpy()
    by_seed = (
        joined.groupby("seed").apply(lambda g: g["mse"].mean() - g["mse_ref"].mean(), include_groups=False).to_numpy()
    )
    rng = np.random.default_rng(rng_seed)
    lo, hi = bootstrap_interval(by_protein, rng)
    dropped = left_out(a, b)
    return {
        "variant": variant,
        "n_proteins": len(by_protein),
        "n_seeds": len(by_seed),
        "mean_diff_mse": float(by_protein.mean()),
        "ci95_low": lo,
        "ci95_high": hi,
        "p_sign_flip": sign_flip_p(by_protein, rng),
        "seed_diffs_mse": [float(x) for x in by_seed],
        "proteins_better": int((by_protein < 0).sum()),
        "left_out": dropped,
        "note": _notes(len(by_protein), by_seed, dropped),
    }
