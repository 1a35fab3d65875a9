"""A user's file or folder → records, skips and a split.

Each input file's parse is cached on its own (:mod:`protstruct.data.cache`): adding a file to a
large folder parses that file, and a changed file is parsed again. A ProteinNet casp folder
(:func:`casp.casp_layout`) is read as released — one thinning, ProteinNet's own validation and
test sets, never re-split; anything else is split by identity cluster (the assignment cached by the
ids and sequences it was computed from).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections import Counter
from pathlib import Path

from protstruct.data import casp, homology, homology_search, proteinnet
from protstruct.data.cache import CACHE_VERSION, FileCache, atomic_write, shown
from protstruct.data.choices import MAX_LENGTH, MIN_LENGTH, THINNINGS, VALIDATION_BINS
from protstruct.data.structures import Skip, is_structure_file, read_structure_file

log = logging.getLogger(__name__)
PROTEINNET_SPLITS = {"training": "train", "validation": "val", "testing": "test"}
VALIDATION_IDENTITY = "validation_identity"  # record.meta key: the ProteinNet validation bin (int)


def default_cache_dir() -> Path:
    return Path(os.environ.get("PROTSTRUCT_CACHE", Path.home() / ".cache" / "protstruct")).expanduser()


def list_files(path: Path, kind: str) -> list[Path]:
    if not path.exists():
        raise FileNotFoundError(f"data.path: {shown(path)} does not exist")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    if kind == "structures":
        files = [p for p in files if is_structure_file(p)]
    if not files:
        expected = (
            "PDB/mmCIF files (.pdb, .ent, .cif, .mmcif, optionally .gz)"
            if kind == "structures"
            else "ProteinNet text or TFRecord files"
        )
        raise FileNotFoundError(f"data.path: {shown(path)} holds no files; expected {expected}")
    return files


def _read(file: Path, kind: str, min_length: int):
    if kind != "structures":
        return proteinnet.read_file(file, min_length)
    name = shown(file.name)
    if name == file.name:
        return read_structure_file(file, f"structures:{name}", min_length)
    with tempfile.TemporaryDirectory() as tmp:  # gemmi takes UTF-8 paths only: read through a link
        link = Path(tmp) / name
        link.symlink_to(file)
        records, skips = read_structure_file(link, f"structures:{name}", min_length)
    return records, [Skip(s.where.replace(str(link), shown(file)), s.reason, s.detail) for s in skips]


def _split_of_file(file: Path) -> str | None:
    for prefix, split in PROTEINNET_SPLITS.items():
        if file.name.lower().startswith(prefix):
            return split
    return None


def _choice(value, allowed: tuple, key: str, many: bool = False):
    if value is None:
        return None
    values = list(value) if many and not isinstance(value, (int, str)) else [value]
    try:
        values = [int(v) for v in values]
    except (TypeError, ValueError):
        values = [None]
    if not values or any(v not in allowed for v in values):
        raise ValueError(
            f"{key}: expected {'one or more of' if many else 'one of'} "
            f"{', '.join(map(str, allowed))} or null, got {value!r}"
        )
    return frozenset(values) if many else values[0]


def _files(path: Path, kind: str, thinning: int | None) -> tuple[list[tuple[Path, str | None]], bool]:
    """→ ([(file, split or None)], whether this is a casp folder: ProteinNet's split, always)."""
    if kind == "proteinnet" and path.is_dir():
        layout = casp.casp_layout(path, thinning)
        if layout is not None:
            missing = {"train", "val", "test"} - {s for _, s in layout}
            if missing:
                log.warning(
                    "data: %s has no ProteinNet %s set: that split stays empty", shown(path), "/".join(sorted(missing))
                )
            return list(layout), True  # as list[tuple[Path, str | None]], the type of other folders' files
    if thinning is not None:
        raise ValueError(
            f"data.thinning={thinning}: {shown(path)} is not a ProteinNet casp folder "
            f"(no training_<N> file or training/<N>/ folder)"
        )
    files = list_files(path, kind)
    return [(f, _split_of_file(f) if kind == "proteinnet" else None) for f in files], False


def _entry(record_id: str) -> str:
    """The PDB entry of a chain id (``6ZU5_A`` → ``6ZU5``; ProteinNet ``70#1ABC_1_A`` → ``1ABC``)."""
    return record_id.split("#")[-1].split("_")[0]


def _homology_splits(kept: list, cache_root: Path, identity: float, coverage: float) -> tuple[list[str], dict]:
    """Homology-aware train/val/test (:func:`homology.homology_split`: connected components of an
    MMseqs2 all-against-all search plus same-entry edges), cached by ids, sequences and settings."""
    h = hashlib.sha256(f"{CACHE_VERSION}\0{identity}\0{coverage}\0".encode())
    for source in (homology.__file__, homology_search.__file__):  # a change in the splitting code is a new entry
        h.update(Path(str(source)).read_bytes())
    for r in kept:
        h.update(f"{r.id}\0{r.sequence}\0".encode("utf-8", "surrogatepass"))
    entry = cache_root / f"splits-v{CACHE_VERSION}" / f"{h.hexdigest()[:40]}.json"
    try:
        cached = json.loads(entry.read_bytes())
        splits = cached["splits"]
        if isinstance(splits, list) and len(splits) == len(kept) and set(splits) <= {"train", "val", "test"}:
            return splits, dict(cached["info"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    splits, info = homology.homology_split(
        [r.id for r in kept],
        [r.sequence for r in kept],
        [_entry(r.id) for r in kept],
        identity=identity,
        coverage=coverage,
        tmp_dir=cache_root,
    )
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(entry, lambda fh: fh.write(json.dumps({"splits": splits, "info": info}).encode()))
    except OSError as exc:
        log.warning("data: could not cache the split in %s (%s)", entry.parent, exc)
    return splits, info


def _validation_bins(kept: list, splits: list, bins, path: Path, own: bool):
    """Tag ProteinNet validation records with their identity bin; keep only ``bins`` when set."""
    for r, s in zip(kept, splits):
        b = casp.validation_bin(r.id) if own and s == "val" else None
        if b is not None:
            r.meta[VALIDATION_IDENTITY] = b
    if bins is None:
        return kept, splits
    if not own:
        raise ValueError(
            f"data.validation_identity: {shown(path)} has no ProteinNet validation set to "
            f"choose bins from (a casp folder with a validation file)"
        )
    found = Counter(r.meta.get(VALIDATION_IDENTITY) for r, s in zip(kept, splits) if s == "val")
    keep = [s != "val" or r.meta.get(VALIDATION_IDENTITY) in bins for r, s in zip(kept, splits)]
    if not any(k and s == "val" for k, s in zip(keep, splits)):
        raise ValueError(
            f"data.validation_identity={sorted(bins)}: no validation record in those bins; "
            f"records per bin: {dict(sorted(found.items(), key=str))}"
        )
    log.info(
        "data: validation identity bins %s: %d of %d validation records kept",
        sorted(bins),
        sum(k and s == "val" for k, s in zip(keep, splits)),
        sum(found.values()),
    )
    return [r for r, k in zip(kept, keep) if k], [s for s, k in zip(splits, keep) if k]


def load(
    path: str | Path,
    kind: str,
    min_length: int = MIN_LENGTH,
    max_length: int | None = MAX_LENGTH,
    cache_dir: str | Path | None = None,
    thinning: int | None = None,
    validation_identity=None,
    split_identity: float = homology.DEFAULT_IDENTITY,
    split_coverage: float = homology.DEFAULT_COVERAGE,
    split_info: dict | None = None,
    cache_stats: Counter | None = None,
):
    """→ (records, skips, split per record). ``kind`` is 'proteinnet' or 'structures'. Without
    ProteinNet's own split, chains are split by homology at ``split_identity`` / ``split_coverage``;
    ``split_info``, if given, receives what the split measured (components, largest, edges, …) and
    ``cache_stats`` the per-file cache outcomes (hit / rehashed / parsed / uncached).

    ``thinning`` (30/50/70/90/95/100) picks a casp folder's training set; ``validation_identity``
    (a bin or bins of 10/20/30/40/50/70/90) keeps those bins of ProteinNet's validation set."""
    path = Path(path).expanduser().resolve()
    thinning = _choice(thinning, THINNINGS, "data.thinning")
    bins = _choice(validation_identity, VALIDATION_BINS, "data.validation_identity", many=True)
    if kind != "proteinnet" and (thinning is not None or bins is not None):
        raise ValueError("data.thinning / data.validation_identity apply to data=proteinnet only")
    files, casp = _files(path, kind, thinning)
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    stats = Counter() if cache_stats is None else cache_stats
    records, skips, file_splits = _read_files(files, kind, min_length, FileCache(root, kind, (min_length,)), stats)
    log.info("data: %s: %d file(s) read, cache %s", shown(path), len(files), dict(stats))
    kept, splits = _unique_within_length(records, file_splits, max_length, skips)
    if not kept:
        reasons = Counter(s.reason for s in skips)
        raise ValueError(
            f"data.path: {shown(path)}: no usable protein chain in {len(files)} file(s); "
            f"skipped {dict(reasons)} (expected protein chains with >= {min_length} residues)"
        )
    own = casp or set(splits) == {"train", "val", "test"}  # else: not a complete set of split files
    if not own:
        splits = _split_by_homology(kept, splits, path, root, split_identity, split_coverage, split_info)
    kept, splits = _validation_bins(kept, splits, bins, path, own)
    return kept, skips, splits


def _read_files(files, kind: str, min_length: int, cache: FileCache, stats: Counter):
    """Every file's records (from the cache when valid), skips, and the split its file implies."""
    records, skips, file_splits = [], [], []
    for f, split in files:
        recs, sk, status = cache.read(f, lambda file: _read(file, kind, min_length))
        stats[status] += 1
        skips.extend(sk)
        records.extend(recs)
        file_splits.extend([split] * len(recs))
    return records, skips, file_splits


def _unique_within_length(records, file_splits, max_length: int | None, skips: list):
    """Drop repeated ids and over-long chains (each a skip appended to ``skips``)."""
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
    return kept, splits


def _split_by_homology(kept, file_splits, path: Path, root: Path, identity, coverage, split_info) -> list[str]:
    if any(s is not None for s in file_splits):
        log.warning(
            "data: %s has ProteinNet split file(s) for %s only: splitting all %d chains by homology instead",
            shown(path),
            sorted({s for s in file_splits if s}),
            len(kept),
        )
    splits, info = _homology_splits(kept, root, float(identity), float(coverage))
    log.info(
        "data: homology split of %d chains: %d components, the largest %d (%.1f %%)",
        len(kept),
        info["components"],
        info["largest_component"],
        100 * info["largest_component_share"],
    )
    if split_info is not None:
        split_info.update(info)
    return splits
