"""Synthetic chains with realistic homology, for the split benchmark and the homology tests.

The chains are not random strings. Every family descends from a real chain of the embedded set
(153 PDB chains): a family's ancestor is the real sequence itself or, once the real sequences are
used up, a distant relative of it (``ANCESTOR_IDENTITY`` ~ 15 %, i.e. below any threshold, so two
families drawn from the same real chain are unrelated at 30 %). Members are the ancestor mutated to
a uniform 20-95 % identity, with substitutions drawn from BLOSUM62's target frequencies and short
insertions/deletions, so a family spans the twilight zone on both sides of the default threshold.
Family sizes are geometric (mean 8: many singletons and small families, a few large ones); about a
fifth of the chains share a PDB-like entry with other members of their family (homo-oligomers) and
1 % pair up with another family (hetero-oligomers), so same-entry edges matter.
"""

from __future__ import annotations

import numpy as np

AA = "ARNDCQEGHILKMFPSTWYV"
# Robinson & Robinson (1991) background amino-acid frequencies, in AA order.
BACKGROUND = np.array(
    [
        0.07805,
        0.05129,
        0.04487,
        0.05364,
        0.01925,
        0.04264,
        0.06295,
        0.07377,
        0.02199,
        0.05142,
        0.09019,
        0.05744,
        0.02243,
        0.03856,
        0.05203,
        0.07120,
        0.05841,
        0.01330,
        0.03216,
        0.06441,
    ]
)
BACKGROUND = BACKGROUND / BACKGROUND.sum()
_BLOSUM62_ROWS = """\
 4 -1 -2 -2  0 -1 -1  0 -2 -1 -1 -1 -1 -2 -1  1  0 -3 -2  0
-1  5  0 -2 -3  1  0 -2  0 -3 -2  2 -1 -3 -2 -1 -1 -3 -2 -3
-2  0  6  1 -3  0  0  0  1 -3 -3  0 -2 -3 -2  1  0 -4 -2 -3
-2 -2  1  6 -3  0  2 -1 -1 -3 -4 -1 -3 -3 -1  0 -1 -4 -3 -3
 0 -3 -3 -3  9 -3 -4 -3 -3 -1 -1 -3 -1 -2 -3 -1 -1 -2 -2 -1
-1  1  0  0 -3  5  2 -2  0 -3 -2  1  0 -3 -1  0 -1 -2 -1 -2
-1  0  0  2 -4  2  5 -2  0 -3 -3  1 -2 -3 -1  0 -1 -3 -2 -2
 0 -2  0 -1 -3 -2 -2  6 -2 -4 -4 -2 -3 -3 -2  0 -2 -2 -3 -3
-2  0  1 -1 -3  0  0 -2  8 -3 -3 -1 -2 -1 -2 -1 -2 -2  2 -3
-1 -3 -3 -3 -1 -3 -3 -4 -3  4  2 -3  1  0 -3 -2 -1 -3 -1  3
-1 -2 -3 -4 -1 -2 -3 -4 -3  2  4 -2  2  0 -3 -2 -1 -2 -1  1
-1  2  0 -1 -3  1  1 -2 -1 -3 -2  5 -1 -3 -1  0 -1 -3 -2 -2
-1 -1 -2 -3 -1  0 -2 -3 -2  1  2 -1  5  0 -2 -1 -1 -1 -1  1
-2 -3 -3 -3 -2 -3 -3 -3 -1  0  0 -3  0  6 -4 -2 -2  1  3 -1
-1 -2 -2 -1 -3 -1 -1 -2 -2 -3 -3 -1 -2 -4  7 -1 -1 -4 -3 -2
 1 -1  1  0 -1  0  0  0 -1 -2 -2  0 -1 -2 -1  4  1 -3 -2 -2
 0 -1  0 -1 -1 -1 -1 -2 -2 -1 -1 -1 -1 -2 -1  1  5 -2 -2  0
-3 -3 -4 -4 -2 -2 -3 -2 -2 -3 -2 -3 -1  1 -4 -3 -2 11  2 -3
-2 -2 -2 -3 -2 -1 -2 -3  2 -1 -1 -2 -1  3 -3 -2 -2  2  7 -1
 0 -3 -3 -3 -1 -2 -2 -3 -3  3  1 -2  1 -1 -2 -2  0 -3 -1  4"""
BLOSUM62 = np.array([[int(v) for v in row.split()] for row in _BLOSUM62_ROWS.splitlines()], np.int32)
LAMBDA = 0.3176  # BLOSUM62's scale: score = ln(q_ab / p_a p_b) / lambda

ANCESTOR_IDENTITY = 0.15
MEMBER_IDENTITY = (0.20, 0.95)
INDEL_PER_RESIDUE = 0.02  # one short (1-4 residue) insertion or deletion per ~50 residues


def _substitution_table() -> np.ndarray:
    """P(b | a, a mutated): BLOSUM62 target frequencies q_ab = p_a p_b e^(lambda S_ab), b != a."""
    q = BACKGROUND[:, None] * BACKGROUND[None, :] * np.exp(LAMBDA * BLOSUM62)
    np.fill_diagonal(q, 0.0)
    return np.cumsum(q / q.sum(1, keepdims=True), axis=1)


_SUB_CDF = _substitution_table()
_INDEX = {a: i for i, a in enumerate(AA)}


def mutate(seq: str, identity: float, rng: np.random.Generator, indels: bool = True) -> str:
    """``seq`` with a fraction ``1 - identity`` of its residues substituted (BLOSUM62-like), then
    short insertions (background composition) and deletions at ``INDEL_PER_RESIDUE``."""
    idx = np.array([_INDEX.get(a, -1) for a in seq])
    out = idx.copy()
    hit = rng.random(len(idx)) >= identity
    known = hit & (idx >= 0)
    u = rng.random(int(known.sum()))
    out[known] = np.minimum((_SUB_CDF[idx[known]] < u[:, None]).sum(1), 19)
    out[hit & (idx < 0)] = rng.choice(20, int((hit & (idx < 0)).sum()), p=BACKGROUND)
    chars = [AA[i] for i in out]
    if indels:
        n_events = rng.poisson(INDEL_PER_RESIDUE * len(chars))
        for _ in range(n_events):
            pos = int(rng.integers(0, len(chars) + 1))
            size = int(rng.integers(1, 5))
            if rng.random() < 0.5:
                chars[pos:pos] = [AA[i] for i in rng.choice(20, size, p=BACKGROUND)]
            elif len(chars) > size + 30:
                del chars[pos : pos + size]
    return "".join(chars)


def real_sequences() -> list[tuple[str, str]]:
    """(id, sequence) of the embedded set's real chains, sorted by id (a fixed order)."""
    from protstruct.data import embedded

    recs = [r for split in embedded.load().values() for r in split]
    return sorted((r.id, r.sequence) for r in recs)


def mutated_families(
    n: int,
    seed: int = 0,
    roots: list[tuple[str, str]] | None = None,
    mean_family: float = 8.0,
    max_family: int | None = None,
    identity: tuple[float, float] = MEMBER_IDENTITY,
    homomer: float = 0.25,
    heteromer: float = 0.01,
) -> tuple[list[str], list[str], list[str], list[int]]:
    """``n`` synthetic chains in families of real-sequence descendants.

    Returns ``(ids, sequences, entries, families)``: ids like ``F0007_M003`` (family 7, member 3),
    a PDB-entry-like label per chain (most alone; homo-oligomer entries of 2-3 members of one
    family; a few two-family hetero-oligomers), and the family index of each chain.
    Family sizes are geometric with mean ``mean_family`` (capped at ``max_family``, default
    ``max(20, n // 20)``); family ``k`` descends from real chain ``k mod len(roots)``, taken as is
    for the first ``len(roots)`` families and as a ~15 %-identity relative after that.
    """
    rng = np.random.default_rng(seed)
    roots = roots if roots is not None else real_sequences()
    max_family = max_family or max(20, n // 20)
    ids: list[str] = []
    seqs: list[str] = []
    fams: list[int] = []
    k = 0
    while len(ids) < n:
        size = min(int(rng.geometric(1.0 / mean_family)), max_family, n - len(ids))
        _, root = roots[k % len(roots)]
        ancestor = root if k < len(roots) else mutate(root, ANCESTOR_IDENTITY, rng)
        for m in range(size):
            member = ancestor if m == 0 else mutate(ancestor, float(rng.uniform(*identity)), rng)
            ids.append(f"F{k:05d}_M{m:03d}")
            seqs.append(member)
            fams.append(k)
        k += 1
    # PDB-like entries: homo-oligomers (a chain joins the previous member of its family in one entry of
    # at most 3 chains, with probability ``homomer``) and a few hetero-oligomers (two chains of different
    # families, ``heteromer`` of the chains), so same-entry edges matter without gluing every family together.
    entries = [f"E{i:06d}" for i in range(n)]
    chains_in = dict.fromkeys(entries, 1)
    for i in range(1, n):
        if fams[i] == fams[i - 1] and chains_in[entries[i - 1]] < 3 and rng.random() < homomer:
            chains_in[entries[i]] -= 1
            entries[i] = entries[i - 1]
            chains_in[entries[i]] += 1
    for _ in range(int(heteromer * n)):
        i, j = (int(x) for x in rng.integers(0, n, 2))
        if fams[i] != fams[j] and chains_in[entries[i]] == 1 and chains_in[entries[j]] == 1:
            chains_in[entries[j]] -= 1
            entries[j] = entries[i]
            chains_in[entries[i]] += 1
    return ids, seqs, entries, fams
