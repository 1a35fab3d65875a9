"""``python -m protstruct.data summarize SOURCE`` — what a sweep would train on, before it runs.

SOURCE is ``embedded`` (the shipped set), or a ProteinNet file/folder, or a folder of PDB/mmCIF
files (``--kind`` picks; ``auto`` looks for structure files first).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from protstruct import console

console.set_log_levels()


def _kind(path: Path, kind: str) -> str:
    from protstruct.data.structures import is_structure_file

    if kind != "auto":
        return kind
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return "structures" if any(is_structure_file(p) for p in files) else "proteinnet"


def summarize(source: str, kind: str = "auto", min_length: int = 40, max_length: int | None = 1000,
              cache_dir: str | None = None) -> str:
    from protstruct.data import sources

    if source == "embedded":
        splits = sources.embedded_source()
    else:
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"{source}: no such file or folder")
        builder = {"structures": sources.structures_source, "proteinnet": sources.proteinnet_source}
        splits = builder[_kind(path, kind)](str(path.resolve()), min_length, max_length, cache_dir)
    records = [r for _, recs in splits.items() for r in recs]
    lengths = np.array([r.length for r in records])
    lines = [f"source: {splits.name}", f"fingerprint: {splits.fingerprint()}",
             f"chains kept: {len(records)} (" + ", ".join(f"{s} {len(r)}" for s, r in splits.items()) + ")",
             f"skipped: {len(splits.skips)}"]
    lines += [f"  {reason}: {n}" for reason, n in splits.skip_counts().items()]
    lines += [f"    {s.where}: {s.detail}" for s in splits.skips[:20] if s.detail]
    lines.append("length (residues) histogram:")
    edges = [0, 64, 128, 256, 512, 1000, 10**9]
    counts, _ = np.histogram(lengths, bins=edges)
    for lo, hi, n in zip(edges[:-1], edges[1:], counts):
        label = f"{lo}-{hi - 1}" if hi < 10**9 else f">={lo}"
        lines.append(f"  {label:>9}: {n:4d} {'#' * int(np.ceil(40 * n / max(1, counts.max())))}")
    lines.append(f"observed residues per chain: median {int(np.median([r.n_observed for r in records]))}, "
                 f"min {min(r.n_observed for r in records)}, max {max(r.n_observed for r in records)}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m protstruct.data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("summarize", help="chains kept, skipped (with reasons), length histogram")
    p.add_argument("source", help="'embedded', a ProteinNet file/folder, or a PDB/mmCIF folder")
    p.add_argument("--kind", choices=["auto", "proteinnet", "structures"], default="auto")
    p.add_argument("--min-length", type=int, default=40)
    p.add_argument("--max-length", type=int, default=1000)
    p.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)
    try:
        print(summarize(args.source, args.kind, args.min_length, args.max_length, args.cache_dir))
    except (FileNotFoundError, ValueError) as exc:
        print(f"protstruct.data: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
