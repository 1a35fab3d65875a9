"""Masked loss and metric arithmetic on hand-made arrays."""

from __future__ import annotations

import numpy as np
import pytest

from protstruct.train import evaluate
from protstruct.train.losses import MaskedHuber, MaskedRMSE, masked_mse


def _batch():
    dist = np.zeros((2, 4, 4), np.float32)
    mask = np.zeros((2, 4, 4), np.float32)
    dist[0, :2, :2] = [[0, 3], [3, 0]]
    mask[0, :2, :2] = 1
    dist[1, :3, :3] = 5.0
    mask[1, :3, :3] = 1
    pred = np.full((2, 4, 4, 1), 1.0, np.float32)
    return dist, mask, pred


def _expected(dist, mask, pred):
    err = (pred[..., 0] - dist) ** 2
    return err[mask > 0].sum(), mask.sum()


def test_masked_mse_counts_valid_pairs_only():
    dist, mask, pred = _batch()
    sse, n = _expected(dist, mask, pred)  # 2*1 + 2*4 + 9*16 = 154 over 13 pairs
    assert (sse, n) == (154.0, 13.0)
    y_true = np.stack([dist, mask], -1)
    assert float(masked_mse(y_true, pred)) == pytest.approx(154 / 13)


def test_padded_cells_filled_with_1e6_change_nothing():
    dist, mask, pred = _batch()
    clean = np.stack([dist, mask], -1)
    poisoned = np.stack([np.where(mask > 0, dist, 1e6), mask], -1)
    nan_poisoned = np.stack([np.where(mask > 0, dist, np.nan), mask], -1).astype(np.float32)
    for y in (poisoned, nan_poisoned):
        assert float(masked_mse(y, pred)) == pytest.approx(float(masked_mse(clean, pred)))
        assert float(MaskedHuber()(y, pred)) == pytest.approx(float(MaskedHuber()(clean, pred)))
        metric = MaskedRMSE()
        metric.update_state(y, pred)
        assert float(metric.result()) == pytest.approx(np.sqrt(154 / 13), rel=1e-6)
    sse_clean, n_clean = evaluate.per_protein(pred, dist, mask > 0)
    sse_bad, n_bad = evaluate.per_protein(pred, np.where(mask > 0, dist, 1e6), mask > 0)
    np.testing.assert_allclose(sse_clean, sse_bad)
    np.testing.assert_allclose(n_clean, n_bad)


def test_rmse_metric_pools_pairs_across_batches():
    dist, mask, pred = _batch()
    metric = MaskedRMSE()
    for i in range(2):
        metric.update_state(np.stack([dist[i : i + 1], mask[i : i + 1]], -1), pred[i : i + 1])
    assert float(metric.result()) == pytest.approx(np.sqrt(154 / 13), rel=1e-6)


def test_huber_is_quadratic_then_linear():
    y = np.stack([np.zeros((1, 1, 2)), np.ones((1, 1, 2))], -1).astype(np.float32)
    pred = np.array([[[[1.0], [5.0]]]], np.float32)  # errors 1 (quadratic) and 5 (linear, delta 2)
    assert float(MaskedHuber(delta=2.0)(y, pred)) == pytest.approx((0.5 + (2 + 2 * 3)) / 2)


def test_test_metrics_definitions():
    sse = np.array([100.0, 300.0])
    n = np.array([10.0, 30.0])
    m = evaluate.summarize(sse, n)
    assert m["mse"] == pytest.approx(10.0)  # pooled per pair
    assert m["rmse"] == pytest.approx(np.sqrt(10.0))
    assert m["mse_original"] == pytest.approx(200.0 * 1e4)  # mean per-protein sum, Å² → pm²


def test_summarize_refuses_when_nothing_is_valid():
    with pytest.raises(ValueError, match="no test protein has a valid residue pair"):
        evaluate.summarize(np.zeros(2), np.zeros(2))
