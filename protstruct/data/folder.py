"""A user's file or folder → records, skips and a split, cached on disk.

The cache key covers every input file's relative path and content hash plus the reader and its
settings, so a 20-job sweep parses once and a changed file or setting never reuses a stale entry.
"""
from __future__ import annotations

import hashlib
import logging
import os
import pickle
from collections import Counter
from pathlib import Path

from protstruct.data import identity, proteinnet
from protstruct.data.structures import Skip, is_structure_file, read_structure_file

log = logging.getLogger(__name__)
CACHE_VERSION = 2  # bump when parsing or splitting changes: old entries are never reused
PROTEINNET_SPLITS = {"training": "train", "validation": "val", "testing": "test"}


def default_cache_dir() -> Path:
    return Path(os.environ.get("PROTSTRUCT_CACHE", Path.home() / ".cache" / "protstruct")).expanduser()


def list_files(path: Path, kind: str) -> list[Path]:
    if not path.exists():
        raise FileNotFoundError(f"data.path: {path} does not exist")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    if kind == "structures":
        files = [p for p in files if is_structure_file(p)]
    if not files:
        expected = "PDB/mmCIF files (.pdb, .ent, .cif, .mmcif, optionally .gz)" if kind == "structures" \
            else "ProteinNet text or TFRecord files"
        raise FileNotFoundError(f"data.path: {path} holds no files; expected {expected}")
    return files


def _read(file: Path, kind: str, min_length: int):
    if kind == "structures":
        return read_structure_file(file, f"structures:{file.name}", min_length)
    return proteinnet.read_file(file, min_length)


def _split_of_file(file: Path) -> str | None:
    for prefix, split in PROTEINNET_SPLITS.items():
        if file.name.lower().startswith(prefix):
            return split
    return None


def load(path: str | Path, kind: str, min_length: int = 40, max_length: int | None = 1000,
         cache_dir: str | Path | None = None):
    """→ (records, skips, split per record). ``kind`` is 'proteinnet' or 'structures'."""
    path = Path(path).expanduser().resolve()
    files = list_files(path, kind)
    key = hashlib.sha256(repr((CACHE_VERSION, kind, min_length, max_length)).encode())
    for f in files:
        key.update(str(f.relative_to(path) if f != path else f.name).encode())
        key.update(hashlib.sha256(f.read_bytes()).digest())
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    cache_file = cache / "records" / f"{kind}-{key.hexdigest()[:32]}.pkl"
    if cache_file.is_file():
        log.info("data: cached parse of %s (%s)", path, cache_file)
        with open(cache_file, "rb") as fh:
            return pickle.load(fh)

    records, skips, file_splits = [], [], []
    for f in files:
        recs, sk = _read(f, kind, min_length)
        skips.extend(sk)
        records.extend(recs)
        file_splits.extend([_split_of_file(f)] * len(recs))
    kept, seen, splits = [], set(), []
    for rec, split in zip(records, file_splits):
        where = f"{rec.source.split(':', 1)[-1]}:{rec.id}"
        if rec.id in seen:
            skips.append(Skip(where, "duplicate_id", "this id was already read from another file"))
        elif max_length is not None and rec.length > max_length:
            skips.append(Skip(where, "too_long", f"{rec.length} residues > data.max_length={max_length}"))
        else:
            seen.add(rec.id)
            kept.append(rec)
            splits.append(split)
    if not kept:
        reasons = Counter(s.reason for s in skips)
        raise ValueError(f"data.path: {path}: no usable protein chain in {len(files)} file(s); "
                         f"skipped {dict(reasons)} (expected protein chains with >= {min_length} residues)")
    if set(splits) != {"train", "val", "test"}:  # not a complete set of ProteinNet split files
        if any(s is not None for s in splits):
            log.warning("data: %s has ProteinNet split file(s) for %s only: splitting all %d chains by "
                        "90 %% identity cluster instead", path, sorted({s for s in splits if s}), len(kept))
        clusters = identity.cluster([r.sequence for r in kept])
        splits = identity.assign_splits(clusters, [r.id for r in kept])
    result = (kept, skips, splits)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_suffix(f".tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        pickle.dump(result, fh)
    os.replace(tmp, cache_file)  # atomic: parallel jobs never read a half-written cache
    return result
