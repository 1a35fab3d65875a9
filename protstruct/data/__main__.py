"""``python -m protstruct.data summarize SOURCE`` — what a sweep would train on, before it runs.

SOURCE is ``embedded`` (the shipped set), or a ProteinNet file/folder, or a folder of PDB/mmCIF
files (``--kind`` picks; ``auto`` looks for structure files first). For a ProteinNet casp folder,
``--thinning N`` picks training_<N> and ``--validation-identity B [B ...]`` the validation bins, as
``data.thinning`` / ``data.validation_identity`` do for a run.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from protstruct import console
from protstruct.data.choices import MAX_LENGTH, MIN_LENGTH, THINNINGS, VALIDATION_BINS

console.set_log_levels()


def _kind(path: Path, kind: str) -> str:
    from protstruct.data.structures import is_structure_file

    if kind != "auto":
        return kind
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return "structures" if any(is_structure_file(p) for p in files) else "proteinnet"


def _largest(counts: Counter) -> tuple[str, int]:
    return min(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))


def _entry_and_component_lines(records: list, split_info: dict) -> list[str]:
    """PDB entries and homology components, each with its largest and that one's share of the chains:
    a split is only as fair as these (one big entry or family can dominate a split)."""
    if not records:
        return []
    n = len(records)
    # the embedded set records its entry; a structure or ProteinNet id starts with it (6ZU5_A, 70#1ABC_1_A)
    entries = Counter(r.meta.get("pdb_id") or r.id.split("#")[-1].split("_")[0] for r in records)
    top, k = _largest(entries)
    lines = [f"entries: {len(entries)}, the largest {top} with {k} chains ({100 * k / n:.1f} %)"]
    if split_info:  # a homology split made now (structure folders, ProteinNet without its own split)
        lines.append(
            f"components: {split_info['components']} (MMseqs2 identity >= {split_info['identity']:g} over "
            f">= {split_info['coverage']:g} of both chains, plus same-entry edges), the largest with "
            f"{split_info['largest_component']} chains ({100 * split_info['largest_component_share']:.1f} %,"
            f" e.g. {split_info['largest_component_member']})"
        )
    elif all("cluster" in r.meta for r in records):  # a fixed split by component (the embedded set)
        top, k = _largest(Counter(r.meta["cluster"] for r in records))
        lines.append(
            f"components: {len({r.meta['cluster'] for r in records})}, the largest with {k} chains "
            f"({100 * k / n:.1f} %, e.g. {top})"
        )
    return lines


def summarize(
    source: str,
    kind: str = "auto",
    min_length: int = MIN_LENGTH,
    max_length: int | None = MAX_LENGTH,
    cache_dir: str | None = None,
    thinning: int | None = None,
    validation_identity=None,
    split: dict | None = None,
) -> str:
    """What a run on ``source`` would train on: chains kept per split, skips with reasons, PDB
    entries and homology components, lengths. ``split`` (identity, coverage) as ``data.split``."""
    from protstruct.data import sources
    from protstruct.data.folder import VALIDATION_IDENTITY

    if source == "embedded":
        splits = sources.embedded_source()
    else:
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"{source}: no such file or folder")
        kind = _kind(path, kind)
        if kind == "proteinnet":
            splits = sources.proteinnet_source(
                str(path.resolve()),
                min_length,
                max_length,
                cache_dir,
                thinning=thinning,
                validation_identity=validation_identity,
                split=split,
            )
        elif thinning is not None or validation_identity is not None:
            raise ValueError("--thinning / --validation-identity apply to ProteinNet folders only")
        else:
            splits = sources.structures_source(str(path.resolve()), min_length, max_length, cache_dir, split=split)
    records = [r for _, recs in splits.items() for r in recs]
    lengths = np.array([r.length for r in records])
    lines = [
        f"source: {splits.name}",
        f"fingerprint: {splits.fingerprint()}",
        f"chains kept: {len(records)} (" + ", ".join(f"{s} {len(r)}" for s, r in splits.items()) + ")",
        f"skipped: {len(splits.skips)}",
    ]
    lines += [f"  {reason}: {n}" for reason, n in splits.skip_counts().items()]
    lines += _entry_and_component_lines(records, splits.split_info)
    bins = Counter(r.meta[VALIDATION_IDENTITY] for r in splits.val if VALIDATION_IDENTITY in r.meta)
    if bins:
        lines.append("validation identity bins: " + ", ".join(f"{b}%: {n}" for b, n in sorted(bins.items())))
    lines += [f"    {s.where}: {s.detail}" for s in splits.skips[:20] if s.detail]
    lines.append("length (residues) histogram:")
    edges = [0, 64, 128, 256, 512, 1000, 10**9]
    counts, _ = np.histogram(lengths, bins=edges)
    for lo, hi, n in zip(edges[:-1], edges[1:], counts):
        label = f"{lo}-{hi - 1}" if hi < 10**9 else f">={lo}"
        lines.append(f"  {label:>9}: {n:4d} {'#' * int(np.ceil(40 * n / max(1, counts.max())))}")
    lines.append(
        f"observed residues per chain: median {int(np.median([r.n_observed for r in records]))}, "
        f"min {min(r.n_observed for r in records)}, max {max(r.n_observed for r in records)}"
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m protstruct.data", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("summarize", help="chains kept, skipped (with reasons), length histogram")
    p.add_argument("source", help="'embedded', a ProteinNet file/folder, or a PDB/mmCIF folder")
    p.add_argument("--kind", choices=["auto", "proteinnet", "structures"], default="auto")
    p.add_argument("--min-length", type=int, default=MIN_LENGTH)
    p.add_argument("--max-length", type=int, default=MAX_LENGTH)
    p.add_argument("--cache-dir", default=None)
    p.add_argument(
        "--thinning",
        type=int,
        choices=THINNINGS,
        default=None,
        help="ProteinNet casp folder: read training_<N> (needed when it holds several)",
    )
    p.add_argument(
        "--validation-identity",
        type=int,
        nargs="+",
        choices=VALIDATION_BINS,
        default=None,
        metavar="BIN",
        help=f"keep only these bins of ProteinNet's validation set {VALIDATION_BINS}",
    )
    p.add_argument("--split-identity", type=float, default=None, help="as data.split.identity (default 0.3)")
    p.add_argument("--split-coverage", type=float, default=None, help="as data.split.coverage (default 0.8)")
    args = parser.parse_args(argv)
    split = {"identity": args.split_identity, "coverage": args.split_coverage}
    try:
        print(
            summarize(
                args.source,
                args.kind,
                args.min_length,
                args.max_length,
                args.cache_dir,
                args.thinning,
                args.validation_identity,
                split,
            )
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"protstruct.data: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
