"""Homology-aware splitting at scale: time :func:`protstruct.data.homology.homology_split` on
synthetic sets with realistic homology.

``python -m protstruct.bench.split_scale [--sizes 1000 5000 20000] [--seed 0] [--recall-at 5000]``
prints one JSON line per size (``--recall-at``: see :func:`split_timings`). The issue's target is
<= 2 minutes for 20,000 chains on a 2-core CPU.
The chains are mutated real families (:mod:`protstruct.bench.families`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time

from protstruct.bench.families import mutated_families, real_sequences


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
