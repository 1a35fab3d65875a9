"""Distance-map metrics the field uses, per protein (numpy). Inputs are ``(L, L)`` arrays of
predicted and true C-alpha distances (Å) and the valid-pair mask.

- Long-range contact precision (``contact_p_l5``, ``contact_p_l``): pairs with |i - j| >= 24;
  a *contact* is CA-CA < 8 Å (C-alpha, not C-beta: only C-alphas are kept); pairs are ranked by
  the contact score min(1, 4 / d_pred) (PDNET), i.e. by predicted distance, ties in index order;
  precision of the top round(L/5) (resp. L) pairs, L = residues inside the chain window.
- ``mae_lr8``: mean |d_pred - d_true| over long-range pairs with d_true < 8 Å (PDNET).
- ``mae_lt15``: the same over all pairs (i != j) with d_true < 15 Å.
- ``lddt``: distance-based lDDT: pairs i != j with d_true < 15 Å; the fraction with
  |d_pred - d_true| < t, averaged over t = 0.5, 1, 2, 4 Å (pooled over pairs, no stereochemistry).
A protein without any qualifying pair gives NaN for that metric and is left out of the mean.
"""

from __future__ import annotations

import numpy as np

LONG_RANGE = 24
CONTACT = 8.0
LDDT_RADIUS = 15.0
LDDT_THRESHOLDS = (0.5, 1.0, 2.0, 4.0)
NAMES = ("contact_p_l5", "contact_p_l", "mae_lr8", "mae_lt15", "lddt")


def _pairs(valid: np.ndarray, min_sep: int):
    i, j = np.nonzero(np.triu(valid, k=max(min_sep, 1)))
    return i, j


def contact_precision(pred, true, valid, length: int, fraction: float) -> float:
    i, j = _pairs(valid, LONG_RANGE)
    if len(i) == 0:
        return float("nan")
    score = np.minimum(1.0, 4.0 / np.maximum(pred[i, j], 1e-6))
    top = max(1, round(length * fraction))
    order = np.argsort(-score, kind="stable")[:top]
    return float((true[i[order], j[order]] < CONTACT).mean())


def masked_mae(pred, true, valid, min_sep: int, below: float) -> float:
    i, j = _pairs(valid, min_sep)
    keep = true[i, j] < below
    if not keep.any():
        return float("nan")
    return float(np.abs(pred[i, j][keep] - true[i, j][keep]).mean())


def lddt(pred, true, valid) -> float:
    i, j = _pairs(valid, 1)
    keep = true[i, j] < LDDT_RADIUS
    if not keep.any():
        return float("nan")
    err = np.abs(pred[i, j][keep] - true[i, j][keep])
    return float(np.mean([(err < t).mean() for t in LDDT_THRESHOLDS]))


def protein_metrics(pred: np.ndarray, true: np.ndarray, valid: np.ndarray, length: int) -> dict[str, float]:
    return {
        "contact_p_l5": contact_precision(pred, true, valid, length, 1 / 5),
        "contact_p_l": contact_precision(pred, true, valid, length, 1.0),
        "mae_lr8": masked_mae(pred, true, valid, LONG_RANGE, CONTACT),
        "mae_lt15": masked_mae(pred, true, valid, 1, LDDT_RADIUS),
        "lddt": lddt(pred, true, valid),
    }


def per_protein(pred: np.ndarray, dist: np.ndarray, pair: np.ndarray, lengths: list[int]) -> dict[str, np.ndarray]:
    """Each metric for each protein of an evaluation batch (N, H, W); NaN where undefined."""
    pred = pred.reshape(dist.shape)
    rows = [protein_metrics(pred[k], dist[k], pair[k], lengths[k]) for k in range(len(dist))]
    return {name: np.array([r[name] for r in rows]) for name in NAMES}


def mean_over_proteins(values: dict[str, np.ndarray]) -> dict[str, float]:
    return {name: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan") for name, v in values.items()}
