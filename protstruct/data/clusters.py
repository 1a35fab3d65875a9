"""Sequence clusters of the training chains, for ``data.sampling=cluster``: each epoch draws one
chain per cluster (:func:`protstruct.data.pipeline.train_dataset`), so a family with hundreds of
near-copies in a PDB mirror weighs as much as a singleton.

Clusters are MMseqs2's set-cover clusters (``mmseqs cluster``, ``--cluster-mode 0``): every member
has >= ``identity`` sequence identity to its cluster's representative over >= ``coverage`` of both
chains. Unlike the split's connected components (:mod:`protstruct.data.homology`), set-cover
clusters do not chain: they are the usual unit of sampling (the way structure-prediction training
sets sample by sequence cluster). Labels are cached under the data cache, as JSON, keyed by the
ids, sequences and settings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from protstruct.data import homology
from protstruct.data.cache import atomic_write

log = logging.getLogger(__name__)
CLUSTERS_VERSION = 1


def sequence_clusters(
    ids: list[str], sequences: list[str], identity: float, coverage: float, cache_root: Path, threads: int | None = None
) -> np.ndarray:
    """One cluster label per chain (0 … n_clusters - 1, numbered by first member), int32."""
    if len(ids) != len(sequences):
        raise ValueError(f"clusters: {len(ids)} ids but {len(sequences)} sequences")
    entry = cache_root / f"clusters-v{CLUSTERS_VERSION}" / f"{_key(ids, sequences, identity, coverage)}.json"
    cached = _read_cached(entry, len(ids))
    if cached is not None:
        return cached
    labels = _cluster(sequences, identity, coverage, threads, cache_root)
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(entry, lambda fh: fh.write(json.dumps(labels.tolist()).encode()))
    except OSError as exc:
        log.warning("data: could not cache the sequence clusters in %s (%s)", entry.parent, exc)
    return labels


def _key(ids, sequences, identity: float, coverage: float) -> str:
    h = hashlib.sha256(f"{identity}\0{coverage}\0{homology.mmseqs_version()}\0".encode())
    for rid, seq in zip(ids, sequences):
        h.update(f"{rid}\0{seq}\0".encode("utf-8", "surrogatepass"))
    return h.hexdigest()[:40]


def _read_cached(entry: Path, n: int) -> np.ndarray | None:
    try:
        labels = json.loads(entry.read_bytes())
    except (OSError, ValueError):
        return None
    if isinstance(labels, list) and len(labels) == n and all(type(v) is int and 0 <= v < n for v in labels):
        return np.asarray(labels, np.int32)
    return None


def _cluster(sequences: list[str], identity: float, coverage: float, threads: int | None, tmp_root: Path) -> np.ndarray:
    if len(sequences) < 2:
        return np.zeros(len(sequences), np.int32)
    tmp_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="protstruct-clusters-", dir=tmp_root) as tmp:
        work = Path(tmp)
        # chain numbers as FASTA names: ids may hold any character
        (work / "chains.fasta").write_text("".join(f">{i}\n{s}\n" for i, s in enumerate(sequences)))
        homology.run_mmseqs(
            [
                "easy-cluster",
                "chains.fasta",
                "out",
                "tmp",
                "--cluster-mode",
                "0",
                "--min-seq-id",
                f"{identity:g}",
                "-c",
                f"{coverage:g}",
                "--cov-mode",
                "0",
                "--threads",
                str(threads or os.cpu_count() or 1),
                "-v",
                "1",
            ],
            work,
        )
        pairs = [line.split("\t") for line in (work / "out_cluster.tsv").read_text().splitlines() if line]
    representative = np.arange(len(sequences))
    for rep, member in pairs:
        representative[int(member)] = int(rep)
    # number clusters by their first member, whatever MMseqs2 chose as representative
    _, first, labels = np.unique(representative, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[labels].astype(np.int32)


def train_clusters(records, identity: float, coverage: float, cache_root: Path) -> np.ndarray:
    """:func:`sequence_clusters` of a list of ProteinRecord, logged with its count."""
    labels = sequence_clusters([r.id for r in records], [r.sequence for r in records], identity, coverage, cache_root)
    log.info(
        "data: %d training chains in %d sequence clusters (>= %.0f %% identity, >= %.0f %% coverage)",
        len(records),
        len(np.unique(labels)),
        100 * identity,
        100 * coverage,
    )
    return labels
