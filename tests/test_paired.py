"""Paired statistics on hand-made per-protein tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from protstruct.report import paired


def _table(shift: float, noise: float = 0.0, proteins: int = 20, seeds: int = 3):
    rng = np.random.default_rng(1)
    rows = []
    for seed in range(seeds):
        for p in range(proteins):
            base = 50.0 + p
            rows.append(("ref", seed, f"P{p}", base))
            rows.append(("new", seed, f"P{p}", base + shift + noise * rng.standard_normal()))
    return pd.DataFrame(rows, columns=["variant", "seed", "protein", "mse"])


def test_a_clear_improvement_is_detected():
    out = paired.compare(_table(-5.0, noise=1.0), "new", "ref")
    assert out["mean_diff_mse"] == pytest.approx(-5.0, abs=0.5)
    assert out["ci95_high"] < 0 and out["p_sign_flip"] < 0.01
    assert out["n_proteins"] == 20 and out["n_seeds"] == 3 and out["proteins_better"] == 20
    assert out["note"] == "—"


def test_no_difference_is_not_claimed():
    out = paired.compare(_table(0.0, noise=1.0), "new", "ref")
    assert out["ci95_low"] < 0 < out["ci95_high"] and out["p_sign_flip"] > 0.05


def test_too_few_proteins_and_seeds_are_said_plainly():
    out = paired.compare(_table(-5.0, proteins=4, seeds=1), "new", "ref")
    assert "only 4 paired proteins" in out["note"] and "only 1 seed(s)" in out["note"]
