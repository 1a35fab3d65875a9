"""Training at scale: one draw per sequence cluster (data.sampling=cluster), a capped validation set
(data.val_sample), a cap on the batches of an epoch (trainer.steps_per_epoch), evaluation windows
kept in memory only when they fit, and the job's load / first-step / memory metrics."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from protstruct.data import clusters, embedded, homology, pipeline, sources, synthetic_casp
from protstruct.data.features import RelativePosition
from protstruct.data.records import ProteinRecord
from tests.conftest import run_cli, store_overrides


def _line_record(k: int, length: int = 24) -> ProteinRecord:
    """C-alphas on a line, (k + 1) Å apart: any window's target tells which record it came from."""
    ca = np.zeros((length, 3), np.float32)
    ca[:, 0] = np.arange(length) * (k + 1)
    return ProteinRecord(f"R{k}", "A" * length, ca, np.ones(length, bool))


def _drawn(dataset) -> list[list[int]]:
    """Record numbers of each batch (from the spacing of the first two residues of each target)."""
    return [[round(float(d)) - 1 for d in target[:, 0, 1, 0].numpy()] for _, target in dataset]


def test_cluster_sampling_draws_one_chain_of_every_cluster_per_epoch():
    records = [_line_record(k) for k in range(12)]
    labels = np.array([0] * 8 + [1, 1, 2, 3])
    epochs = 30
    ds = pipeline.train_dataset(records, 16, 2, RelativePosition(), seed=3, epochs=epochs, clusters=labels)
    batches = _drawn(ds)
    steps = pipeline.epoch_steps(len(records), 2, labels)
    assert steps == 2 and len(batches) == epochs * steps
    big_family = Counter()
    for e in range(epochs):
        drawn = [k for batch in batches[e * steps : (e + 1) * steps] for k in batch]
        assert sorted(labels[drawn]) == [0, 1, 2, 3], f"epoch {e}: {drawn}"
        big_family.update(k for k in drawn if labels[k] == 0)
    assert len(big_family) >= 6, f"the 8-member cluster should be sampled across its members: {big_family}"
    again = _drawn(pipeline.train_dataset(records, 16, 2, RelativePosition(), seed=3, epochs=epochs, clusters=labels))
    assert again == batches
    resumed = _drawn(
        pipeline.train_dataset(
            records, 16, 2, RelativePosition(), seed=3, epochs=epochs, first_epoch=10, clusters=labels
        )
    )
    assert resumed == batches[10 * steps :]


def test_bad_cluster_labels_and_step_caps_are_named():
    records = [_line_record(k) for k in range(4)]
    with pytest.raises(ValueError, match="one integer label per training record"):
        pipeline.train_dataset(records, 16, 2, RelativePosition(), seed=0, clusters=[0, 1])
    with pytest.raises(ValueError, match="trainer.steps_per_epoch"):
        pipeline.epoch_steps(4, 2, None, 0)


def test_steps_per_epoch_caps_each_epoch_with_the_same_windows():
    records = [_line_record(k) for k in range(12)]
    full = _drawn(pipeline.train_dataset(records, 16, 2, RelativePosition(), seed=1, epochs=3))
    capped = _drawn(pipeline.train_dataset(records, 16, 2, RelativePosition(), seed=1, epochs=3, steps=2))
    assert len(full) == 18 and len(capped) == 6
    assert capped == full[0:2] + full[6:8] + full[12:14]  # each epoch's first batches, unchanged


def _mutant(sequence: str, rng: np.random.Generator, identity: float) -> str:
    letters = np.array(list(sequence))
    change = rng.random(len(letters)) > identity
    letters[change] = rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), int(change.sum()))
    return "".join(letters)


def test_sequence_clusters_group_families_and_are_cached(tmp_path, monkeypatch):
    roots = [r.sequence for r in embedded.load()["train"][:60:20]]  # three unrelated real chains
    rng = np.random.default_rng(0)
    ids, seqs, family = [], [], []
    for f, root in enumerate(roots):
        for m in range(4):
            ids.append(f"fam{f}_{m}")
            seqs.append(root if m == 0 else _mutant(root, rng, 0.9))
            family.append(f)
    labels = clusters.sequence_clusters(ids, seqs, 0.3, 0.8, tmp_path)
    assert labels.dtype == np.int32 and labels[0] == 0
    assert len(set(labels)) == 3
    for f in range(3):
        assert len({labels[i] for i in range(len(ids)) if family[i] == f}) == 1

    def no_mmseqs(*args, **kwargs):
        raise AssertionError("a cached clustering must not run MMseqs2 again")

    monkeypatch.setattr(homology, "run_mmseqs", no_mmseqs)
    assert (clusters.sequence_clusters(ids, seqs, 0.3, 0.8, tmp_path) == labels).all()
    with pytest.raises(AssertionError):  # other settings are another entry
        clusters.sequence_clusters(ids, seqs, 0.5, 0.8, tmp_path)


def test_a_tampered_cluster_cache_entry_is_recomputed(tmp_path):
    seqs = [r.sequence for r in embedded.load()["train"][:3]]
    ids = ["a", "b", "c"]
    labels = clusters.sequence_clusters(ids, seqs, 0.3, 0.8, tmp_path)
    (entry,) = (tmp_path / f"clusters-v{clusters.CLUSTERS_VERSION}").iterdir()
    entry.write_text("[0, 1, \"__import__('os')\"]")
    assert (clusters.sequence_clusters(ids, seqs, 0.3, 0.8, tmp_path) == labels).all()


def test_val_sample_spreads_over_the_validation_set(tmp_path):
    assert sources.spread_sample(list(range(10)), 4) == [0, 2, 5, 7]
    assert sources.spread_sample(list(range(3)), 4) == [0, 1, 2]
    casp = tmp_path / "casp"
    synthetic_casp.write(casp, records=40, validation=30, testing=10)
    common = {"path": str(casp), "cache_dir": str(tmp_path / "cache"), "thinning": 30}
    whole = sources.proteinnet_source(**common)
    capped = sources.proteinnet_source(**common, val_sample=6)
    assert [r.id for r in capped.val] == [r.id for r in sources.spread_sample(whole.val, 6)]
    assert len({r.meta.get("validation_identity") for r in capped.val}) > 1  # not just the first bin
    assert [r.id for r in capped.train] == [r.id for r in whole.train]
    assert [r.id for r in capped.test] == [r.id for r in whole.test]
    with pytest.raises(ValueError, match="data.val_sample"):
        sources.proteinnet_source(**common, val_sample=0)


def test_evaluation_windows_are_the_same_kept_in_memory_or_recomputed():
    records = embedded.load()["val"][:7]
    kept = pipeline.eval_dataset(records, 32, 3, RelativePosition())
    recomputed = pipeline.eval_dataset(records, 32, 3, RelativePosition(), cache_bytes=0)
    for _ in range(2):  # two passes, as two epochs' validation
        for (xa, ya), (xb, yb) in zip(kept, recomputed):
            np.testing.assert_array_equal(xa.numpy(), xb.numpy())
            np.testing.assert_array_equal(ya.numpy(), yb.numpy())


def test_cluster_sampling_through_the_cli_logs_clusters_and_start_up_times(tmp_path):
    proc = run_cli(
        [
            "debug=smoke",
            "data.sampling=cluster",
            "trainer.steps_per_epoch=2",
            "data.limit.train=null",
            "tracking.experiment=sampling",
            *store_overrides(tmp_path),
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("sampling").experiment_id])
    m = run.data.metrics
    assert run.data.params["data.sampling"] == "cluster"
    assert 1 < m["data/train_clusters"] <= m["data/train_proteins"]
    assert 0 < m["time/data_load_seconds"] < m["time/to_first_step_seconds"]
    assert m["memory/peak_rss_mb"] > 100
