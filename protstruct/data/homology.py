"""Homology-aware train/val/test splits with MMseqs2 (the field's tool for this job).

Two chains are *homologous* when the best local alignment MMseqs2 finds between them has sequence
identity >= ``identity`` — identical aligned pairs ÷ alignment length, gap columns included
(``--seq-id-mode 0``) — and covers >= ``coverage`` of *both* chains (aligned span ÷ chain length,
MMseqs2's ``--cov-mode 0`` definition); identical sequences always are. A split is leak-free when no
val/test chain is homologous to a training chain (or to a chain of the other held-out split).
:func:`homology_split` gets that by single linkage: each connected component of the graph whose edges
are the homologous pairs plus same-PDB-entry pairs goes, whole, to one split.

Defaults: 30 % identity over >= 80 % coverage, the usual "remote homology" cut-off of structure prediction
splits (RCSB 30 % clusters, ProteinNet's < 30 % validation set) and MMseqs2's clustering coverage. Coverage
of *both* chains keeps the relation symmetric and stops single linkage from chaining families through a
shared domain (pass a lower ``coverage`` if domain-level leakage matters). Identity is not divided by the
shorter chain's length (the old ``identity.py`` rule: 7CTH_F vs the 1,451-residue 6MSM_A scored 89.3 %).

Search (:mod:`protstruct.data.homology_search`). Identical sequences are merged first (lossless: a copy
has its original's edges). A pair whose shorter chain is under ``identity x coverage`` of the longer one
cannot qualify; every other pair is a *candidate*, aligned at most once, the longer chain as query:

* up to :data:`EXHAUSTIVE_MAX` distinct sequences, every candidate: nothing is lost to a prefilter;
* above, the candidates MMseqs2's k-mer prefilter finds (``-s 6.8 -k 5 --max-seqs 100``) and every
  candidate pair of chains of at most :data:`SHORT_MAX` residues.

Why, measured with :mod:`protstruct.bench.split_scale` (mutated real families; MMseqs2 CPU-s, 2 cores;
"a / b": homologous pairs missed / components left apart that the full edge set joins, same-entry edges
counted; truth at 5,000 chains: every pair aligned both ways, 18,113 edges; at 20,000, a lower bound:
every pair within families of related roots or of chains <= 120 residues, and any edge a search found):

    search                                1,000   5,000             20,000
    every pair, both ways (before)        7       144               ~2,300 (16x the pairs of 5,000)
    -s 7.5 --max-seqs 1000 (before)       --      79;  45 / 2       404;  288 / 28  (CPU-s / 2: ~3.4 min)
    every candidate, once (now)           4.5     100;  2 / 0       --
    -s 6.8 --max-seqs 100 + short (now)   --      31;  51 / 1       172;  266 / 6   (CPU-s / 2: ~1.5 min)

* The k-mer prefilter loses short chains (few k-mers; diagonal scores that long targets outrank): all 28
  merges ``-s 7.5`` lost at 20,000 joined chains of 40-90 residues, through 37 edges, 13 of them chance 30 %
  hits between unrelated chains. A second ``-s 7.5`` search of the short chains alone won back little (3 of
  30 on an earlier, 185-root bench set); aligning every pair of chains <= 120 residues (~8 M pairs, ~40
  CPU-s at 20,000) does: with ``-s 6.8``, the 6 merges left all join chains of 122-166 residues.
* That pays for a cheaper prefilter, the cost at 20,000 chains. On the earlier set: ``-s 7.5 / 6.8 / 6.5``
  took 233 / 111 / 99 CPU-s and, with the short pairs, lost 2 / 5 / 9 merges (``-k 6``, contiguous k-mers
  or ``--diag-score 0``: slower or far less sensitive); ``--max-seqs`` 1000, 300 or 100 lost the same 5, 100
  aligning 9x fewer pairs. Its risk: a weak link crowded out, on both sides, by > 100 closer hits.
* Redundancy reduction (``linclust``, then searching representatives) was rejected: at 90 % identity it
  dropped 1.6 % of the earlier set's chains yet lost 22 merges even if the representatives' search missed
  nothing (70 %: 16 % fewer chains, 166 lost; 50 %: 24 %, 282): a member's near-threshold homologs need not
  be its representative's. Exact duplicates (merged here) are the lossless case.

Always: exact identity from the backtrace (``--alignment-mode 3 -a``), ``-e inf`` (short 30 % pairs
have E-values far above the 1e-3 default), no composition-bias correction, no masking (both only remove
hits), BLOSUM62 with gap open 11 / extend 1 (MMseqs2's defaults, stated explicitly). MMseqs2 is asked for
slightly looser criteria (``--min-seq-id`` 0.001 lower, ``--cov-mode 1 -c coverage``: the shorter,
target chain covered) and the exact ones are applied here to every returned alignment.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import time
from typing import NamedTuple

from protstruct.data import homology_search
from protstruct.data.homology_search import components, mmseqs_binary, mmseqs_version, run_mmseqs  # noqa: F401

DEFAULT_IDENTITY = 0.30
DEFAULT_COVERAGE = 0.80
DEFAULT_FRACTIONS = {"test": 0.15, "val": 0.15}  # the rest is train
MIN_FILL = 0.9  # val/test may fall short of their target by at most 10 % (see homology_split)
EXHAUSTIVE_MAX = 5000  # up to this many distinct sequences every candidate pair is aligned
SENSITIVITY = 6.8  # k-mer prefilter above EXHAUSTIVE_MAX: -s 6.8 with 5-mers, 100 candidates per query
KMER = 5
MAX_SEQS = 100
SHORT_MAX = 120  # above EXHAUSTIVE_MAX, every candidate pair of chains this short is aligned too
# MMseqs2 flags: the alignments (see "Always" above; a gap of k residues costs 11 + (k - 1)), the k-mer prefilter
_MATRIX = "--sub-mat aa:blosum62.out,nucl:nucleotide.out"
ALIGN_FLAGS = (
    f"--alignment-mode 3 -a 1 --seq-id-mode 0 -e inf --comp-bias-corr 0 {_MATRIX} "
    "--gap-open aa:11,nucl:5 --gap-extend aa:1,nucl:2"
).split()
PREFILTER_FLAGS = f"-s {SENSITIVITY:g} -k {KMER} --max-seqs {MAX_SEQS} --comp-bias-corr 0 --mask 0 {_MATRIX}".split()


class Split(NamedTuple):
    splits: list[str]  # "train" / "val" / "test", one per input chain
    info: dict  # scalars to log on the MLflow run (see homology_split)


def _check_fraction(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}={value!r}: expected a fraction in [0, 1] (e.g. 0.3 for 30 %)")
    return value


def search_mode(exhaustive: bool) -> str:
    """How the candidate pairs were chosen, as logged in ``info["search"]``."""
    if exhaustive:
        return "exhaustive: every pair of distinct sequences aligned"
    return (
        f"k-mer prefilter -s {SENSITIVITY:g} -k {KMER} --max-seqs {MAX_SEQS} + every pair of chains "
        f"<= {SHORT_MAX} residues"
    )


def _search(
    sequences: list[str], identity: float, coverage: float, threads: int | None, tmp_dir, exhaustive: bool | None
) -> tuple[list[list[int]], set[tuple[int, int]], dict]:
    """:func:`homology_search.search` with this module's settings: the chains holding each distinct
    sequence, the edges among distinct sequences, and the ``info`` entries of :func:`homology_split`
    about the search."""
    identity = _check_fraction("identity", identity)
    coverage = _check_fraction("coverage", coverage)
    threads = int(threads or os.cpu_count() or 1)
    if exhaustive is None:
        exhaustive = len({s.upper() for s in sequences if s}) <= EXHAUSTIVE_MAX
    holders, edges, stats = homology_search.search(
        sequences, identity, coverage, threads, tmp_dir, exhaustive, SHORT_MAX, PREFILTER_FLAGS, ALIGN_FLAGS
    )
    prefilter = "none (every pair aligned)" if exhaustive else f"k-mer -s {SENSITIVITY:g} -k {KMER}"
    return holders, edges, {"threads": threads, "search": search_mode(exhaustive), "prefilter": prefilter, **stats}


def homology_edges(
    sequences: list[str],
    identity: float,
    coverage: float,
    threads: int | None = None,
    tmp_dir=None,
    exhaustive: bool | None = None,
) -> set[tuple[int, int]]:
    """All pairs ``(i, j)``, ``i < j``, of homologous chains of ``sequences`` (see the module
    docstring): identical sequences, and pairs whose best local alignment has identical pairs >=
    ``identity`` x alignment length (gap columns included) and covers >= ``coverage`` of both chains.

    ``identity`` and ``coverage`` are fractions (0.3, not 30). ``exhaustive`` (default: up to
    :data:`EXHAUSTIVE_MAX` distinct sequences) aligns every pair that could qualify; otherwise the
    k-mer prefilter picks the pairs, plus every pair of chains up to :data:`SHORT_MAX` residues — much
    faster on large sets, but it can miss a few pairs near the identity threshold. ``threads``
    defaults to every CPU; the result does not depend on it, nor on the order of ``sequences``. Work
    files go to a fresh directory under ``tmp_dir`` (default: the system temp dir), removed
    afterwards. Empty sequences have no edges.
    """
    holders, edges, _ = _search(sequences, identity, coverage, threads, tmp_dir, exhaustive)
    pairs = {p for chains in holders for p in itertools.combinations(chains, 2)}
    for a, b in edges:
        pairs.update((min(i, j), max(i, j)) for i in holders[a] for j in holders[b])
    return pairs


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


def homology_split(
    ids: list[str],
    sequences: list[str],
    entries: list[str] | None,
    identity: float = DEFAULT_IDENTITY,
    coverage: float = DEFAULT_COVERAGE,
    fractions: dict | None = None,
    seed_key: str = "",
    threads: int | None = None,
    tmp_dir=None,
    exhaustive: bool | None = None,
) -> Split:
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
    edges (homologous pairs of distinct sequences), entry_edges, identical_chains (chains whose sequence
    an earlier chain has), distinct_sequences, identity, coverage, cov_mode, per-split targets and
    counts, seconds (total) and search_seconds, threads, search (which search: exhaustive or k-mer
    prefilter + short chains, with its settings), prefilter, aligned_pairs, kmer_pairs, short_chains,
    mmseqs_version.
    """
    start = time.perf_counter()
    n = len(ids)
    if len(sequences) != n or (entries is not None and len(entries) != n):
        raise ValueError(
            f"homology_split: {n} ids, {len(sequences)} sequences, "
            f"{'no' if entries is None else len(entries)} entries: lengths must match"
        )
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

    t_search = time.perf_counter()
    holders, edges, searched = _search(sequences, identity, coverage, threads, tmp_dir, exhaustive)
    search_seconds = time.perf_counter() - t_search
    links = [(chains[0], i) for chains in holders for i in chains[1:]]  # identical sequences
    links += [(holders[a][0], holders[b][0]) for a, b in edges]
    entry_edges = []
    if entries is not None:
        first_of: dict[str, int] = {}
        for i, e in enumerate(entries):
            if not e:  # unknown entry: no same-entry edge
                continue
            if e in first_of:
                entry_edges.append((first_of[e], i))
            else:
                first_of[e] = i
    comp = components(n, links + entry_edges)
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
        "chains": n,
        "components": len(groups),
        "largest_component": len(largest),
        "largest_component_share": round(len(largest) / n, 4) if n else 0.0,
        "largest_component_member": largest_member,
        "edges": len(edges),
        "entry_edges": len(entry_edges),
        "identical_chains": n - sum(1 for s in sequences if not s) - len(holders),
        "identity": float(identity),
        "coverage": float(coverage),
        "cov_mode": 0,
        **{f"target_{s}": targets[s] for s in targets},
        **{f"n_{s}": counts[s] for s in counts},
        "n_train": n - sum(counts.values()),
        "seconds": round(time.perf_counter() - start, 3),
        "search_seconds": round(search_seconds, 3),
        **searched,
        "mmseqs_version": mmseqs_version() if len(holders) >= 2 else "",
    }
    short = [s for s in ("test", "val") if counts[s] < MIN_FILL * targets[s]]
    if short:
        raise ValueError(
            f"homology split impossible at identity={identity:g}, coverage={coverage:g} (both chains), "
            f"fractions={fractions}: the largest component holds {len(largest)} of {n} chains "
            f"({100 * len(largest) / n:.1f} %, e.g. {largest_member}); the components that fit fill only "
            + ", ".join(f"{s} {counts[s]}/{targets[s]}" for s in short)
            + " chains. Lower the val/test fractions, or raise identity/coverage to split the big component."
        )
    return Split(splits, info)
