"""Homology-aware splitting (protstruct.data.homology) against an independent Smith-Waterman.

The reference below is a plain affine-gap Smith-Waterman (BLOSUM62, a gap of k residues costs
11 + (k - 1), as MMseqs2 scores), written for clarity and vectorised with numpy along each row: it
shares nothing with MMseqs2 but the scoring. A pair is a *hit* when its best local alignment has
identical pairs >= identity x alignment length (gap columns included) and covers >= coverage of
both chains — the definition homology_split promises to respect. Every val/test x train pair of
two ~60-90-chain sets is aligned; none may be a hit.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict

import numpy as np
import pytest

from protstruct.bench.families import AA, BLOSUM62, mutate, real_sequences
from protstruct.data import embedded, homology

IDENTITY, COVERAGE = homology.DEFAULT_IDENTITY, homology.DEFAULT_COVERAGE
GAP_OPEN, GAP_EXTEND = 11, 1
NEG = -(10**6)
X, PAD = 20, 21
_SUB = np.full((22, 22), -1, np.int32)  # X scores -1 against everything (MMseqs2's blosum62.out)
_SUB[:20, :20] = BLOSUM62
_SUB[PAD, :] = _SUB[:, PAD] = NEG // 4
_CODE = np.full(128, X, np.int8)
for _i, _a in enumerate(AA):
    _CODE[ord(_a)] = _i


def encode(seq: str) -> np.ndarray:
    return _CODE[np.frombuffer(seq.upper().encode(), np.uint8)]


def sw_ends(a: np.ndarray, targets: list[np.ndarray]):
    """Score pass of ``a`` against all ``targets`` at once (padded on the right, which cannot affect
    real cells). Returns per target the best score and its end cell (first maximum, row-major)."""
    n, lb = len(targets), max(len(t) for t in targets)
    tb = np.full((n, lb), PAD, np.int8)
    for k, t in enumerate(targets):
        tb[k, : len(t)] = t
    k_idx, cols = np.arange(lb), np.arange(1, lb + 1)
    h_prev = np.zeros((n, lb + 1), np.int32)
    e = np.full((n, lb + 1), NEG, np.int32)
    best, bi, bj = np.zeros(n, np.int32), np.full(n, -1), np.full(n, -1)
    for i, ai in enumerate(a):
        e = np.maximum(e - GAP_EXTEND, h_prev - GAP_OPEN)  # gap in the target, extended down a column
        hp = np.zeros((n, lb + 1), np.int32)
        hp[:, 1:] = np.maximum(np.maximum(h_prev[:, :-1] + _SUB[ai][tb], e[:, 1:]), 0)
        # gap in the query along the row: F[j] = max_{k<j} H'[k] - 11 - (j - k - 1); opening a gap right
        # after another one never beats extending it, so H' (without F) is enough.
        f = np.maximum.accumulate(hp[:, :-1] + k_idx, axis=1) - cols - (GAP_OPEN - GAP_EXTEND)
        h = hp
        h[:, 1:] = np.maximum(hp[:, 1:], f)
        row_best = h[:, 1:].max(1)
        better = row_best > best
        if better.any():
            best[better], bi[better], bj[better] = row_best[better], i, h[better, 1:].argmax(1)
        h_prev = h
    return best, bi, bj


def sw_align(a: np.ndarray, b: np.ndarray) -> dict:
    """Smith-Waterman with traceback (same recurrences and tie rule as :func:`sw_ends`)."""
    la, lb = len(a), len(b)
    H = np.zeros((la + 1, lb + 1), np.int32)
    E = np.full((la + 1, lb + 1), NEG, np.int32)
    hp_src = np.zeros((la + 1, lb + 1), np.int8)  # H' came from 0: start, 1: diagonal, 2: E
    use_f = np.zeros((la + 1, lb + 1), bool)
    e_ext = np.zeros((la + 1, lb + 1), bool)
    f_from = np.zeros((la + 1, lb + 1), np.int32)
    k_idx, cols = np.arange(lb), np.arange(1, lb + 1)
    best, bi, bj = 0, -1, -1
    for i in range(1, la + 1):
        ext, opn = E[i - 1] - GAP_EXTEND, H[i - 1] - GAP_OPEN
        E[i] = np.maximum(ext, opn)
        e_ext[i] = ext >= opn
        d, row_e = H[i - 1, :-1] + _SUB[a[i - 1]][b], E[i, 1:]
        hp = np.maximum(np.maximum(d, row_e), 0)
        hp_src[i, 1:] = np.where(hp == 0, 0, np.where(d >= row_e, 1, 2))
        vals = np.concatenate(([0], hp[:-1])) + k_idx
        run = np.maximum.accumulate(vals)
        f = run - cols - (GAP_OPEN - GAP_EXTEND)
        use_f[i, 1:] = f > hp
        f_from[i, 1:] = np.maximum.accumulate(np.where(vals == run, k_idx, 0))
        H[i, 1:] = np.maximum(hp, f)
        if H[i, 1:].max() > best:
            best, bi, bj = int(H[i, 1:].max()), i, int(H[i, 1:].argmax()) + 1
    if best == 0:
        return {"score": 0, "nident": 0, "alnlen": 0, "qcov": 0.0, "tcov": 0.0}
    i, j, state, nident, alnlen = bi, bj, "H", 0, 0
    while True:
        if state == "H":
            if H[i, j] == 0:
                break
            if use_f[i, j]:  # a run of query gaps ending at column j
                k = int(f_from[i, j])
                alnlen, j, state = alnlen + j - k, k, "Hp"
                continue
            state = "Hp"
        if state == "Hp":
            if hp_src[i, j] == 1:
                nident += int(a[i - 1] == b[j - 1])
                alnlen, i, j, state = alnlen + 1, i - 1, j - 1, "H"
                continue
            state = "E"
        alnlen += 1  # E: query residue i against a gap
        i, state = i - 1, ("E" if e_ext[i, j] else "H")
    return {"score": best, "nident": nident, "alnlen": alnlen, "qcov": (bi - i) / la, "tcov": (bj - j) / lb}


def is_hit(r: dict) -> bool:
    return (
        r["alnlen"] > 0
        and r["nident"] >= IDENTITY * r["alnlen"] - 1e-9
        and r["qcov"] >= COVERAGE - 1e-9
        and r["tcov"] >= COVERAGE - 1e-9
    )


def sw_hits(queries: list[str], targets: list[str]) -> tuple[list[tuple[int, int, dict]], int]:
    """Every (query, target) pair that is a hit, and how many pairs were aligned with traceback.
    A pair needs the traceback only if its best cell could still give the coverage (the alignment
    ends there, so coverage <= end / length) and the lengths allow it (ratio >= identity x coverage)."""
    enc_t = [encode(t) for t in targets]
    hits, traced = [], 0
    if not enc_t:
        return hits, traced
    for qi, q in enumerate(queries):
        a = encode(q)
        _, bi, bj = sw_ends(a, enc_t)
        for ti, b in enumerate(enc_t):
            short, long_ = sorted((len(a), len(b)))
            if (
                (bi[ti] + 1) < COVERAGE * len(a) - 1e-9
                or (bj[ti] + 1) < COVERAGE * len(b) - 1e-9
                or short < IDENTITY * COVERAGE * long_
            ):
                continue
            traced += 1
            r = sw_align(a, b)
            if is_hit(r):
                hits.append((qi, ti, r))
    return hits, traced


def assert_no_leak(ids, seqs, splits, label):
    held = [i for i, s in enumerate(splits) if s != "train"]
    train = [i for i, s in enumerate(splits) if s == "train"]
    start = time.perf_counter()
    hits, traced = sw_hits([seqs[i] for i in held], [seqs[i] for i in train])
    seconds = time.perf_counter() - start
    leaks = [(ids[held[q]], splits[held[q]], ids[train[t]], r) for q, t, r in hits]
    print(f"{label}: {len(held)} val/test x {len(train)} train pairs, {traced} traced, SW {seconds:.1f} s")
    assert not leaks, f"{label}: val/test chains with a Smith-Waterman hit in train: {leaks[:5]}"
    # val and test must not share homologs either
    val = [i for i in held if splits[i] == "val"]
    test = [i for i in held if splits[i] == "test"]
    hits, _ = sw_hits([seqs[i] for i in val], [seqs[i] for i in test])
    pairs = [(ids[val[q]], ids[test[t]]) for q, t, _ in hits]
    assert not pairs, f"{label}: val/test pairs with a Smith-Waterman hit: {pairs[:5]}"


def embedded_subset(limit_length: int = 400, per_entry_max: int = 2) -> tuple[list[str], list[str], list[str]]:
    """The embedded set's chains up to 400 residues, at most 2 per PDB entry (the 71-chain
    ribosome would otherwise be most of it): 84 real chains, 27 homologous pairs among them."""
    recs = sorted((r for split in embedded.load().values() for r in split), key=lambda r: r.id)
    per_entry = defaultdict(int)
    ids, seqs, entries = [], [], []
    for r in recs:
        entry = r.meta["pdb_id"]
        if len(r.sequence) <= limit_length and per_entry[entry] < per_entry_max:
            per_entry[entry] += 1
            ids.append(r.id)
            seqs.append(r.sequence)
            entries.append(entry)
    return ids, seqs, entries


def families(
    n_roots: int = 10,
    members: int = 8,
    seed: int = 0,
    max_length: int = 400,
    identity: tuple[float, float] = (0.20, 0.95),
):
    """``n_roots`` real chains (one per PDB entry, <= 400 residues) each with ``members`` mutants
    at 20-95 % identity (BLOSUM62-like substitutions plus short indels): pairs straddle 30 %."""
    rng = np.random.default_rng(seed)
    roots, seen = [], set()
    for rid, seq in real_sequences():
        if rid.split("_")[0] not in seen and 80 <= len(seq) <= max_length and "X" not in seq:
            seen.add(rid.split("_")[0])
            roots.append((rid, seq))
    roots = [roots[k] for k in sorted(rng.choice(len(roots), n_roots, replace=False))]
    ids, seqs = [], []
    for rid, root in roots:
        ids.append(f"{rid}_root")
        seqs.append(root)
        for m in range(members):
            ids.append(f"{rid}_m{m}")
            seqs.append(mutate(root, float(rng.uniform(*identity)), rng))
    return ids, seqs, list(ids)  # every chain its own entry


@pytest.fixture(scope="module")
def family_set():
    ids, seqs, entries = families()
    splits, info = homology.homology_split(ids, seqs, entries, threads=2)
    return ids, seqs, entries, splits, info


def test_reference_smith_waterman_on_a_known_alignment():
    a = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQFEVVHSLAKWKRQTLGQHDFSAGEG"
    b = a[:40] + a[43:]  # three residues deleted
    r = sw_align(encode(a), encode(b))
    self_b = sum(BLOSUM62[AA.index(c), AA.index(c)] for c in b)
    assert r["score"] == self_b - (GAP_OPEN + 2 * GAP_EXTEND)
    assert (r["nident"], r["alnlen"], r["qcov"], r["tcov"]) == (len(b), len(a), 1.0, 1.0)
    best, bi, bj = sw_ends(encode(a), [encode(b), encode(a)])
    assert list(best) == [r["score"], sum(BLOSUM62[AA.index(c), AA.index(c)] for c in a)]
    assert (bi[0], bj[0]) == (len(a) - 1, len(b) - 1)


def test_no_val_or_test_chain_is_homologous_to_train_embedded():
    ids, seqs, entries = embedded_subset()
    splits, info = homology.homology_split(ids, seqs, entries, threads=2)
    assert info["edges"] > 0 and info["n_test"] > 0 and info["n_val"] > 0
    assert_no_leak(ids, seqs, splits, f"embedded subset ({len(ids)} chains)")


def test_no_val_or_test_chain_is_homologous_to_train_mutated_families(family_set):
    ids, seqs, _, splits, info = family_set
    assert info["n_test"] == info["target_test"] and info["n_val"] == info["target_val"]
    assert_no_leak(ids, seqs, splits, f"mutated families ({len(ids)} chains)")


def test_mmseqs_edges_agree_with_smith_waterman(family_set):
    """The check above is not vacuous: within one family, where pairs straddle the threshold, the
    reference and MMseqs2 call the same pairs homologous (co-optimal alignments may differ by a
    residue, so allow one disagreement per family)."""
    ids, seqs, *_ = family_set
    edges = homology.homology_edges(seqs, IDENTITY, COVERAGE, threads=2)
    disagreements, hits_total = 0, 0
    for start in range(0, len(ids), 9):
        fam = list(range(start, start + 9))
        for qi, q in enumerate(fam[:-1]):
            hits, _ = sw_hits([seqs[q]], [seqs[t] for t in fam[qi + 1 :]])
            sw = {(q, fam[qi + 1 + t]) for _, t, _ in hits}
            mm = {(q, t) for t in fam[qi + 1 :] if (q, t) in edges}
            hits_total += len(sw)
            disagreements += len(sw ^ mm)
    assert hits_total > 50  # families do have homologous pairs
    assert disagreements <= len(ids) // 9, f"{disagreements} of {hits_total} pairs disagree"


def test_split_is_deterministic_across_runs_threads_and_input_order(family_set):
    ids, seqs, entries, splits, _ = family_set
    again, _ = homology.homology_split(ids, seqs, entries, threads=1)
    assert again == splits
    order = list(range(len(ids)))
    random.Random(1).shuffle(order)
    shuffled, _ = homology.homology_split(
        [ids[i] for i in order], [seqs[i] for i in order], [entries[i] for i in order], threads=2
    )
    assert {ids[i]: s for i, s in zip(order, shuffled)} == dict(zip(ids, splits))
    other, _ = homology.homology_split(ids, seqs, entries, threads=2, seed_key="another split")
    assert other != splits  # seed_key reshuffles the component ranking
    kmer1 = homology.homology_edges(seqs, IDENTITY, COVERAGE, threads=1, exhaustive=False)
    kmer2 = homology.homology_edges(seqs, IDENTITY, COVERAGE, threads=2, exhaustive=False)
    assert kmer1 == kmer2
    kmer3 = homology.homology_edges([seqs[i] for i in order], IDENTITY, COVERAGE, threads=2, exhaustive=False)
    assert {(min(order[a], order[b]), max(order[a], order[b])) for a, b in kmer3} == kmer1


def test_the_logged_info_names_the_search(family_set):
    *_, info = family_set
    assert info["search"].startswith("exhaustive") and info["aligned_pairs"] > 0 and info["kmer_pairs"] == 0


def test_kmer_search_still_aligns_every_pair_of_short_chains():
    """Above EXHAUSTIVE_MAX the k-mer prefilter picks the pairs to align, except among chains of at most
    SHORT_MAX residues, where it is weakest: those are all aligned, so there the k-mer search finds
    exactly the every-pair search's edges."""
    _, seqs, _ = families(n_roots=6, members=8, seed=5, max_length=110)
    _, longer, _ = families(n_roots=3, members=4, seed=6)
    seqs += longer
    short = {i for i, s in enumerate(seqs) if len(s) <= homology.SHORT_MAX}
    kmer = homology.homology_edges(seqs, IDENTITY, COVERAGE, threads=2, exhaustive=False)
    every = homology.homology_edges(seqs, IDENTITY, COVERAGE, threads=2, exhaustive=True)
    among_short = [{(a, b) for a, b in edges if a in short and b in short} for edges in (kmer, every)]
    assert len(among_short[1]) > 20 and among_short[0] == among_short[1]
    assert kmer - every == set()  # every k-mer edge is a real one
    _, info = homology.homology_split([f"c{i}" for i in range(len(seqs))], seqs, None, threads=2, exhaustive=False)
    assert info["search"].startswith("k-mer prefilter") and f"<= {homology.SHORT_MAX} residues" in info["search"]
    assert info["short_chains"] == len({seqs[i] for i in short}) and info["kmer_pairs"] > 0  # distinct ones


def test_identical_sequences_are_searched_once_and_always_homologous():
    _, seqs, _ = families(n_roots=3, members=3, seed=7)
    n = len(seqs)
    copies = [*seqs, seqs[0].lower(), seqs[4], seqs[4]]
    original = [*range(n), 0, 4, 4]
    base = homology.homology_edges(seqs, IDENTITY, COVERAGE, threads=2)
    edges = homology.homology_edges(copies, IDENTITY, COVERAGE, threads=2)
    expected = {
        (i, j)
        for i in range(len(copies))
        for j in range(i + 1, len(copies))
        if original[i] == original[j] or (min(original[i], original[j]), max(original[i], original[j])) in base
    }
    assert edges == expected and {(0, n), (4, n + 1), (n + 1, n + 2)} <= edges
    splits, info = homology.homology_split(
        [f"c{i}" for i in range(len(copies))], copies, None, threads=2, fractions={"test": 0.25, "val": 0.0}
    )
    assert info["identical_chains"] == 3 and info["distinct_sequences"] == n
    assert splits[0] == splits[n] and splits[4] == splits[n + 1] == splits[n + 2]


def test_chains_of_one_entry_never_straddle_splits():
    # Unrelated real chains grouped into fake 2-4-chain entries: only the entry ties them together.
    ids, seqs, _ = embedded_subset()
    keep = [i for i in range(len(ids)) if i % 2 == 0][:40]
    ids, seqs = [ids[i] for i in keep], [seqs[i] for i in keep]
    entries = [f"E{k // 3}" for k in range(len(ids))]
    splits, info = homology.homology_split(ids, seqs, entries, threads=2)
    by_entry = defaultdict(set)
    for e, s in zip(entries, splits):
        by_entry[e].add(s)
    assert all(len(s) == 1 for s in by_entry.values()), by_entry
    assert info["entry_edges"] == len(ids) - len(by_entry)
    # without the entries the same chains do straddle: the rule is doing the work
    loose, _ = homology.homology_split(ids, seqs, None, threads=2)
    loose_by_entry = defaultdict(set)
    for e, s in zip(entries, loose):
        loose_by_entry[e].add(s)
    assert any(len(s) > 1 for s in loose_by_entry.values())


def test_impossible_split_names_the_largest_component():
    ids, seqs, _ = families(n_roots=1, members=29, seed=3, identity=(0.6, 0.95))  # 30 close homologs
    extra_ids, extra_seqs, _ = families(n_roots=3, members=0, seed=4)  # 3 unrelated chains
    ids, seqs = ids + extra_ids, seqs + extra_seqs
    with pytest.raises(ValueError, match=r"largest component holds 30 of 33 chains") as err:
        homology.homology_split(ids, seqs, None, threads=2)
    assert "identity=0.3" in str(err.value) and "coverage=0.8" in str(err.value)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="fraction"):
        homology.homology_edges(["ACDE", "ACDE"], identity=30, coverage=0.8)
    with pytest.raises(ValueError, match="training share"):
        homology.homology_split(["a", "b"], ["ACDEFGHIK", "ACDEFGHIK"], None, fractions={"test": 0.5, "val": 0.5})
    assert homology.homology_edges(["", "MKV"], 0.3, 0.8) == set()
