"""Test metrics from per-protein errors, and the separation baseline (numpy, after training).

Metric names are defined here once and read by the report:
- ``test/mse``: squared error per valid pair, pooled over all test proteins (Å²)
- ``test/rmse``: its square root (Å)
- ``test/mse_original``: the original report's definition — squared error summed over each
  protein's valid pairs, averaged over proteins, in picometres² (1 Å² = 10⁴ pm²). Only comparable
  with the original report's numbers at crop 256. Runs before the rename logged it as
  ``test/mse_seed``; the report reads both.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from protstruct.train import structure_metrics

PM2_PER_A2 = 1.0e4
SAMPLE_PROTEINS = 4  # test proteins whose predicted/true windows are kept for the report's heatmaps
METRICS = ("mse", "rmse", "mse_original")


def per_protein(pred: np.ndarray, dist: np.ndarray, pair: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sum of squared error, valid pair count) per protein; ``pred`` is (N, H, W[, 1])."""
    pred = pred.reshape(dist.shape).astype(np.float64)
    sq = np.where(pair, (pred - np.where(pair, dist, 0.0)) ** 2, 0.0)
    return sq.sum(axis=(1, 2)), pair.sum(axis=(1, 2)).astype(np.float64)


def summarize(sse: np.ndarray, n_pairs: np.ndarray) -> dict[str, float]:
    keep = n_pairs > 0
    if not keep.any():
        raise ValueError("no test protein has a valid residue pair in its evaluation window")
    mse = float(sse[keep].sum() / n_pairs[keep].sum())
    return {"mse": mse, "rmse": float(np.sqrt(mse)), "mse_original": float(sse[keep].mean() * PM2_PER_A2)}


def separation_profile(records, max_sep: int, chunk_residues: int = 2_000_000) -> np.ndarray:
    """Mean training distance at each sequence separation |i - j| < max_sep (Å).

    Only the first ``max_sep`` diagonals of each chain matter, so the work is O(residues × max_sep),
    not O(Σ L²): the chains are laid end to end (``chunk_residues`` at a time) and separation s is
    the distance between residue k and k + s wherever both are observed and in the same chain."""
    total = np.zeros(max_sep)
    count = np.zeros(max_sep)
    for part in _chunks(records, chunk_residues):
        ca = np.concatenate([r.ca for r in part])
        mask = np.concatenate([r.mask for r in part])
        chain = np.repeat(np.arange(len(part)), [r.length for r in part])
        for sep in range(1, min(max_sep, len(mask))):
            pair = mask[sep:] & mask[:-sep] & (chain[sep:] == chain[:-sep])
            # float32 differences and distances, as ProteinRecord.distance_matrix computes them
            diff = (ca[sep:][pair] - ca[:-sep][pair]).astype(np.float64)
            total[sep] += np.sqrt((diff * diff).sum(-1)).astype(np.float32).sum(dtype=np.float64)
            count[sep] += pair.sum()
    profile = np.divide(total, count, out=np.zeros(max_sep), where=count > 0)
    # separations never seen in training keep the last seen mean rather than predicting 0
    for s in range(1, max_sep):
        if count[s] == 0:
            profile[s] = profile[s - 1]
    return profile


def _chunks(records, residues: int):
    part, size = [], 0
    for r in records:
        part.append(r)
        size += r.length
        if size >= residues:
            yield part
            part, size = [], 0
    if part:
        yield part


def separation_baseline(profile: np.ndarray, crop_size: int) -> np.ndarray:
    """The baseline's prediction for any evaluation window: profile[|i - j|]."""
    idx = np.arange(crop_size)
    return profile[np.abs(idx[:, None] - idx[None, :])].astype(np.float32)


def evaluate_test_set(pred: np.ndarray, test_records, train_records, crop_size: int):
    """Everything measured on the test windows, for the model and the separation baseline:
    (metrics for MLflow, a per-protein table, a small sample of predicted/true windows)."""
    from protstruct.data.pipeline import centred_start, eval_targets

    dist, pair = eval_targets(test_records, crop_size)
    pred = pred.reshape(dist.shape)
    profile = separation_profile(train_records, crop_size)
    base = np.broadcast_to(separation_baseline(profile, crop_size), dist.shape)
    lengths = [min(crop_size, r.length - centred_start(r.length, crop_size)) for r in test_records]
    table = pd.DataFrame(
        {
            "protein": [r.id for r in test_records],
            "length": [r.length for r in test_records],
            # ProteinNet's own strata: the NN# identity bin of validation records, and the
            # category prefix of test targets (TBM#, FM#, …); empty elsewhere
            "validation_identity": [r.meta.get("validation_identity") for r in test_records],
            "category": [r.id.split("#", 1)[0] if "#" in r.id else "" for r in test_records],
        }
    )
    metrics = {}
    for prefix, values in (("test/", pred), ("baseline/test_", base)):
        sse, n_pairs = per_protein(values, dist, pair)
        field = structure_metrics.per_protein(values, dist, pair, lengths)
        metrics.update({f"{prefix}{k}": v for k, v in summarize(sse, n_pairs).items()})
        metrics.update({f"{prefix}{k}": v for k, v in structure_metrics.mean_over_proteins(field).items()})
        column = "" if prefix == "test/" else "baseline_"
        table["valid_pairs"] = n_pairs.astype(int)
        with np.errstate(invalid="ignore", divide="ignore"):
            table[f"{column}mse"] = sse / n_pairs
        table[f"{column}sse"] = sse
        for k, v in field.items():
            table[f"{column}{k}"] = v
    n_sample = min(SAMPLE_PROTEINS, len(test_records))
    sample = {
        "ids": np.array([r.id for r in test_records[:n_sample]]),
        "pred": pred[:n_sample].astype(np.float32),
        "true": dist[:n_sample],
        "mask": pair[:n_sample],
        "baseline": base[:n_sample].astype(np.float32),
    }
    return metrics, table, sample
