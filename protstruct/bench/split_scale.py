"""Homology-aware splitting at scale: time :func:`protstruct.data.homology.homology_split` on
synthetic sets with realistic homology.

``python -m protstruct.bench.split_scale [--sizes 1000 5000 20000] [--seed 0] [--recall-at 5000]``
prints one JSON line per size (``--recall-at``: see :func:`split_timings`). The issue's target is
<= 2 minutes for 20,000 chains on a 2-core CPU.

The chains are not random strings. Every family descends from a real chain of the embedded set
(185 PDB chains): a family's ancestor is the real sequence itself or, once the real sequences are
used up, a distant relative of it (``ANCESTOR_IDENTITY`` ~ 15 %, i.e. below any threshold, so two
families drawn from the same real chain are unrelated at 30 %). Members are the ancestor mutated to
a uniform 20-95 % identity, with substitutions drawn from BLOSUM62's target frequencies and short
insertions/deletions, so a family spans the twilight zone on both sides of the default threshold.
Family sizes are geometric (mean 8: many singletons and small families, a few large ones); about a
fifth of the chains share a PDB-like entry with other members of their family (homo-oligomers) and
1 % pair up with another family (hetero-oligomers), so same-entry edges matter.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time

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


class _PeakRSS:
    """Peak resident memory (MiB) of this process and, separately, of its finished children
    (the mmseqs processes): ``ru_maxrss`` of RUSAGE_CHILDREN is the largest single child."""

    def __init__(self):
        self._stop = threading.Event()
        self.self_peak = 0.0

    def _poll(self):
        import psutil

        proc = psutil.Process()
        while not self._stop.wait(0.05):
            self.self_peak = max(self.self_peak, proc.memory_info().rss / 2**20)

    def __enter__(self):
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def split_timings(
    sizes=(1000, 5000, 20000),
    seed: int = 0,
    threads: int | None = None,
    identity: float | None = None,
    coverage: float | None = None,
    exhaustive: bool | None = None,
    recall_at: int | None = 5000,
) -> list[dict]:
    """Time :func:`homology_split` on ``mutated_families(n, seed)`` for each ``n`` in ``sizes``.

    One dict per size: chains, residues, wall seconds (total and the MMseqs2 search alone), CPU
    seconds of the MMseqs2 processes (user + system; wall x cores on an idle machine) and of this
    process, components and the largest one, homology edges, split sizes, which search ran (``search``,
    ``aligned_pairs``, ``kmer_pairs``, ``short_chains``), and peak RSS in MiB of the Python process
    (sampled every 50 ms) and of the largest MMseqs2 child process (``ru_maxrss``; the maximum over
    every child so far, so sizes run in increasing order).

    At ``n == recall_at`` (None: never) the row also gets ``kmer_recall``: the k-mer search's edges
    against every-pair alignment of the same chains (:func:`kmer_recall`), an extra ~2.5 minutes of
    MMseqs2 CPU at 5,000 chains.
    """
    from protstruct.data import homology

    identity = homology.DEFAULT_IDENTITY if identity is None else identity
    coverage = homology.DEFAULT_COVERAGE if coverage is None else coverage
    roots = real_sequences()
    results = []
    for n in sizes:
        ids, seqs, entries, fams = mutated_families(n, seed, roots)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_self = time.process_time()
        with _PeakRSS() as rss:
            start = time.perf_counter()
            # exhaustive=None: homology_split's default (every pair aligned up to 5,000 chains)
            splits, info = homology.homology_split(
                ids, seqs, entries, identity, coverage, threads=threads, exhaustive=exhaustive
            )
            seconds = time.perf_counter() - start
        cpu_self = time.process_time() - cpu_self
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        child_peak = after.ru_maxrss / 1024
        child_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        row = {
            "chains": n,
            "residues": sum(map(len, seqs)),
            "families": len(set(fams)),
            "seconds": round(seconds, 2),
            "search_seconds": info["search_seconds"],
            "mmseqs_cpu_seconds": round(child_cpu, 1),
            "python_cpu_seconds": round(cpu_self, 1),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "components": info["components"],
            "largest_component": info["largest_component"],
            "largest_component_share": info["largest_component_share"],
            "edges": info["edges"],
            "splits": {s: splits.count(s) for s in ("train", "val", "test")},
            "peak_rss_mib_python": round(rss.self_peak, 1),
            "peak_rss_mib_mmseqs_max_so_far": round(child_peak, 1),
            "threads": info["threads"],
            "search": info["search"],
            "prefilter": info["prefilter"],
            "aligned_pairs": info["aligned_pairs"],
            "kmer_pairs": info["kmer_pairs"],
            "short_chains": info["short_chains"],
        }
        if n == recall_at:
            row["kmer_recall"] = kmer_recall(seqs, entries, identity, coverage, threads)
        results.append(row)
    return results


def kmer_recall(
    seqs: list[str], entries: list[str] | None, identity: float, coverage: float, threads: int | None = None
) -> dict:
    """What the k-mer search (the default above 5,000 distinct sequences) misses on ``seqs``, against
    aligning every pair: edges (homologous pairs) of each, the pairs missed, and the component merges
    lost (components of homology + same-entry edges that the k-mer edges leave apart: how many more
    components the split would see), with both searches' MMseqs2 CPU seconds."""
    from protstruct.data import homology

    found, cpu = {}, {}
    for mode, exhaustive in (("exhaustive", True), ("kmer", False)):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        found[mode] = homology.homology_edges(seqs, identity, coverage, threads=threads, exhaustive=exhaustive)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu[mode] = round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1)
    first: dict[str, int] = {}
    same_entry = []
    for i, e in enumerate(entries or []):
        if e and first.setdefault(e, i) != i:
            same_entry.append((first[e], i))
    n_components = {
        mode: len(set(homology.components(len(seqs), list(edges) + same_entry))) for mode, edges in found.items()
    }
    return {
        "chains": len(seqs),
        "edges_exhaustive": len(found["exhaustive"]),
        "edges_kmer": len(found["kmer"]),
        "pairs_missed": len(found["exhaustive"] - found["kmer"]),
        "pairs_extra": len(found["kmer"] - found["exhaustive"]),
        "merges_lost": n_components["kmer"] - n_components["exhaustive"],
        "mmseqs_cpu_seconds": cpu,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--exhaustive", dest="exhaustive", action="store_true", default=None)
    mode.add_argument("--kmer", dest="exhaustive", action="store_false")
    parser.add_argument(
        "--recall-at",
        type=int,
        default=5000,
        help="size at which to also measure the k-mer search's misses against every-pair alignment (0: never)",
    )
    args = parser.parse_args(argv)
    for row in split_timings(
        tuple(args.sizes), args.seed, args.threads, exhaustive=args.exhaustive, recall_at=args.recall_at or None
    ):
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
