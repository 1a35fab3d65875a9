"""Sequence identity and clustering, as used for the embedded set's split.

Identity = identical aligned residues ÷ length of the *shorter* chain, in percent, from gemmi's
global alignment (``gemmi.align_string_sequences`` with its default BLOSUM62-free scoring,
``AlignmentResult.calculate_identity(0)``). Chains are clustered by single linkage at ≥ 90 %:
any two chains at ≥ 90 % end in the same cluster, so a split by cluster cannot leak.
"""
from __future__ import annotations

import hashlib

import gemmi

CLUSTER_IDENTITY = 90.0
SPLIT_FRACTIONS = {"test": 0.15, "val": 0.15}  # the rest is train


def identity(seq_a: str, seq_b: str) -> float:
    if not seq_a or not seq_b:
        return 0.0
    result = gemmi.align_string_sequences(list(seq_a), list(seq_b), [])
    return result.calculate_identity(0)


def cluster(sequences: list[str], threshold: float = CLUSTER_IDENTITY) -> list[int]:
    """Single-linkage clusters; cluster ids are the index of each cluster's first member."""
    parent = list(range(len(sequences)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(sequences)):
        for j in range(i + 1, len(sequences)):
            if root(i) != root(j) and identity(sequences[i], sequences[j]) >= threshold:
                a, b = sorted((root(i), root(j)))
                parent[b] = a
    return [root(i) for i in range(len(sequences))]


def assign_splits(cluster_ids: list[int], ids: list[str]) -> list[str]:
    """Rank clusters by the sha256 of their first member's id; first 15 % test, next 15 % val."""
    firsts = sorted({c: ids[c] for c in cluster_ids}.items(),
                    key=lambda kv: hashlib.sha256(kv[1].encode()).hexdigest())
    n = len(firsts)
    n_test, n_val = round(SPLIT_FRACTIONS["test"] * n), round(SPLIT_FRACTIONS["val"] * n)
    split_of = {}
    for rank, (c, _) in enumerate(firsts):
        split_of[c] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return [split_of[c] for c in cluster_ids]
