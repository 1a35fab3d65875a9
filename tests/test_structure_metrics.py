"""Contact precision, MAE and lDDT on hand-made matrices with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from protstruct.train import structure_metrics as sm


def _line(n, step=3.8):
    x = np.arange(n) * step
    return np.abs(x[:, None] - x[None, :])


def test_contact_precision_ranks_by_predicted_distance():
    n = 30
    true = np.full((n, n), 20.0)
    pred = np.full((n, n), 20.0)
    valid = np.ones((n, n), bool)
    # long-range pairs (|i-j| >= 24): (0,24) (0,25) ... ; make (0,24) and (1,25) true contacts
    true[0, 24] = true[1, 25] = 5.0
    pred[0, 24] = 4.0  # predicted closest: a hit
    pred[2, 28] = 5.0  # predicted second: a miss
    pred[1, 25] = 6.0  # third: a hit
    # L = 30 → top round(30/5) = 6 pairs: 2 hits among them
    assert sm.contact_precision(pred, true, valid, n, 1 / 5) == pytest.approx(2 / 6)
    # top-L takes all 21 long-range pairs (only 21 exist): 2 hits
    assert sm.contact_precision(pred, true, valid, n, 1.0) == pytest.approx(2 / 21)
    # with only 2 predicted: top round(10/5) = 2 → 1 hit of 2
    assert sm.contact_precision(pred, true, valid, 10, 1 / 5) == pytest.approx(1 / 2)


def test_contact_precision_without_long_range_pairs_is_nan():
    d = _line(20)
    assert math.isnan(sm.contact_precision(d, d, np.ones_like(d, bool), 20, 0.2))


def test_masked_pairs_are_ignored():
    n = 30
    true = np.full((n, n), 6.0)
    pred = true.copy()
    valid = np.ones((n, n), bool)
    pred[0, 29] = 100.0
    valid[0, 29] = False  # the only wrong prediction is masked out
    assert sm.masked_mae(pred, true, valid, 24, 8.0) == 0.0
    assert sm.lddt(pred, true, valid) == 1.0


def test_mae_definitions():
    true = _line(30)  # distances 3.8 * |i-j|
    pred = true + 1.0
    valid = np.ones_like(true, bool)
    # long-range pairs have true >= 91 Å: none below 8 Å
    assert math.isnan(sm.masked_mae(pred, true, valid, 24, 8.0))
    assert sm.masked_mae(pred, true, valid, 1, 15.0) == pytest.approx(1.0)


def test_lddt_thresholds():
    true = _line(10)  # pairs within 15 Å: separations 1, 2, 3 (3.8, 7.6, 11.4 Å)
    pred = true.copy()
    sep = np.abs(np.subtract.outer(np.arange(10), np.arange(10)))
    pred[sep == 1] += 0.7  # preserved at 1, 2, 4 Å only → 3/4
    pred[sep == 2] += 3.0  # preserved at 4 Å only → 1/4
    # separation 3 exact → 4/4. Pair counts: 9, 8, 7 (upper triangle)
    expected = (9 * 0.75 + 8 * 0.25 + 7 * 1.0) / 24
    assert sm.lddt(pred, true, np.ones_like(true, bool)) == pytest.approx(expected)


def test_per_protein_and_mean_skip_undefined():
    d = _line(10)[None]
    values = sm.per_protein(d, d, np.ones_like(d, bool), [10])
    assert values["lddt"][0] == 1.0 and math.isnan(values["contact_p_l5"][0])
    means = sm.mean_over_proteins(values)
    assert means["lddt"] == 1.0 and math.isnan(means["contact_p_l"])
