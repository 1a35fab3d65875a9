"""The embedded real set: counts, provenance, a leak-free split, and the tf.data windows."""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
import pytest

from protstruct.data import build_embedded, embedded, embedded_sources, pipeline
from protstruct.data.features import RelativePosition
from protstruct.data.sources import embedded_source

# documented in the README (and printed by `python -m protstruct.data.build_embedded`)
COUNTS = {"train": 107, "val": 23, "test": 23}
SHIPPED_SHA256 = "6a0cc6b80d0ca048dbed02bd08eb3164dd41e3a84364ad2e7c9d80cb96407815"


@pytest.fixture(scope="module")
def splits():
    return embedded.load()


def test_shipped_file_is_the_documented_build():
    assert hashlib.sha256(embedded.DEFAULT_PATH.read_bytes()).hexdigest() == SHIPPED_SHA256
    assert embedded.DEFAULT_PATH.stat().st_size < 3_000_000


def test_documented_counts_and_real_chains(splits):
    assert {s: len(r) for s, r in splits.items()} == COUNTS
    records = [r for recs in splits.values() for r in recs]
    assert len(records) >= 150
    assert len({r.meta["cluster"] for r in records}) == 109  # homology components (>= 100 required)
    assert max(Counter(r.meta["pdb_id"] for r in records).values()) <= build_embedded.MAX_CHAINS_PER_ENTRY
    assert len({r.id for r in records}) == len(records)
    for r in records:
        assert r.n_observed >= 40
        assert set(r.sequence) <= set("ACDEFGHIKLMNPQRSTVWYX")
        assert r.meta["pdb_id"] and r.meta["package"] in {s["package"] for s in embedded_sources.SOURCES}
        ca = r.ca[r.mask]
        assert np.isfinite(ca).all() and np.abs(ca).max() < 9999
        # consecutive observed C-alphas of a real chain sit ~3.8 Å apart
        both = r.mask[1:] & r.mask[:-1]
        steps = np.linalg.norm(np.diff(r.ca, axis=0), axis=1)[both]
        assert np.median(steps) == pytest.approx(3.8, abs=0.1)


def test_clusters_never_cross_splits(splits):
    where = {}
    for split, recs in splits.items():
        for r in recs:
            assert where.setdefault(r.meta["cluster"], split) == split


def test_limit_caps_each_split_and_bad_limits_are_named():
    s = embedded_source(limit={"train": 5, "val": 2, "test": None})
    assert (len(s.train), len(s.val), len(s.test)) == (5, 2, COUNTS["test"])
    with pytest.raises(ValueError, match="data.limit: unknown split"):
        embedded_source(limit={"training": 3})
    with pytest.raises(FileNotFoundError, match="data.path: embedded set .*nope.json.gz does not exist"):
        embedded_source(path="nope.json.gz")


def test_fingerprint_changes_with_the_data():
    a, b = embedded_source(limit={"train": 5}), embedded_source(limit={"train": 6})
    assert a.fingerprint() == embedded_source(limit={"train": 5}).fingerprint()
    assert a.fingerprint() != b.fingerprint()


def test_eval_windows_are_centred_and_match_the_records(splits):
    records = splits["test"][:5]
    crop = 32
    ds = pipeline.eval_dataset(records, crop, 2, RelativePosition())
    targets = np.concatenate([y.numpy() for _, y in ds])
    dist, pair = pipeline.eval_targets(records, crop)
    np.testing.assert_allclose(targets[..., 0], dist, atol=1e-3)
    np.testing.assert_array_equal(targets[..., 1] > 0, pair)
    r = records[0]
    s = pipeline.centred_start(r.length, crop)
    assert s == (r.length - crop) // 2
    np.testing.assert_allclose(dist[0], r.distance_matrix()[s : s + crop, s : s + crop], atol=1e-3)


def test_training_crops_are_seeded_and_change_between_epochs(splits):
    records = splits["train"][:6]
    feats = RelativePosition()

    def first_epochs(seed, first_epoch=0):  # 6 proteins, batch 6: one batch per epoch
        ds = pipeline.train_dataset(records, 32, 6, feats, seed, epochs=2, first_epoch=first_epoch)
        return [y.numpy() for _, y in ds]

    a, b = first_epochs(1), first_epochs(1)
    assert len(a) == 2 and pipeline.steps_per_epoch(len(records), 6) == 1
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], a[1])  # a fresh shuffle and fresh windows each epoch
    assert not np.array_equal(a[0], first_epochs(2)[0])
    # epoch e depends on (seed, e) only: a run resumed at epoch 1 sees what it would have seen
    np.testing.assert_array_equal(first_epochs(1, first_epoch=1)[0], a[1])


def test_every_dataset_runs_without_the_tf_data_autotuner(splits):
    """Its model thread made fit() wait up to 1.7 s per iterator on the CPU bench (issue 6)."""
    records, feats = splits["train"][:4], RelativePosition()
    x, y = next(iter(pipeline.train_dataset(records, 32, 2, feats, 0)))
    for ds in (
        pipeline.train_dataset(records, 32, 2, feats, 0),
        pipeline.eval_dataset(records, 32, 2, feats),
        pipeline.in_memory_dataset(x.numpy(), y.numpy(), 2),
    ):
        assert ds.options().autotune.enabled is False


def test_relative_position_input_is_zero_outside_the_chain():
    import tensorflow as tf

    x = RelativePosition()(tf.constant([True, True, True, False])).numpy()[..., 0]
    assert x[0, 2] == 2 and x[2, 0] == 2 and x[3].sum() == 0 and x[:, 3].sum() == 0
