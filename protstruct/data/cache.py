"""Per-file parse cache: one entry per input file, numeric arrays only, never code.

An entry is two files under ``<cache>/records-v<CACHE_VERSION>/<kk>/``:

- ``<key>.json`` — the stamp: the input's ``os.stat`` (size, mtime_ns, ctime_ns, inode) when it was
  parsed and its sha256;
- ``<key>-<sha256[:24]>.npz`` — the parse: ``meta`` (JSON bytes as uint8: ids, sequences, sources,
  skips, per-chunk record counts) and, per chunk of records, ``length_i``, ``ca_i``, ``mask_i``,
  ``has_pssm_i``, ``pssm_i`` (plain numeric arrays, concatenated; offsets come from the lengths).

``key`` hashes CACHE_VERSION, the reader, its settings and the file's absolute path (as bytes, so
any file name works). An entry is used when the stat matches exactly; when any stat field differs the
content is hashed again and the entry is used only if the hash matches (then the stamp is renewed).
Files changed less than RACY_NS before they were stamped get no stat shortcut (timestamps are
coarser than writes). Entries are read with ``np.load(allow_pickle=False)``: anything else (a pickle,
a torn or foreign file, object arrays, wrong shapes, non-finite values) is ignored and the file is
parsed again. Read errors that may be transient (OSError, MemoryError) are reported but never cached.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import time
import uuid
import zipfile
from pathlib import Path

import numpy as np

from protstruct.data.records import ProteinRecord
from protstruct.data.structures import Skip

log = logging.getLogger(__name__)
CACHE_VERSION = 3  # bump when parsing changes: old entries are never read
CHUNK_RESIDUES = 1 << 18  # residues per stored chunk: writing an entry copies at most one chunk
RACY_NS = 2_000_000_000
_DTYPES = {"length": np.int64, "ca": np.float32, "mask": np.bool_, "has_pssm": np.bool_, "pssm": np.float32}


def shown(path) -> str:
    """A path as text that any log, CSV or tracking server accepts (undecodable bytes as \\xNN)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def _stat(path: Path) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
        os.replace(tmp, path)  # parallel jobs never read a half-written entry
    finally:
        tmp.unlink(missing_ok=True)


def _put(zf: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    with zf.open(name + ".npy", "w", force_zip64=True) as fh:
        np.lib.format.write_array(fh, np.ascontiguousarray(array), allow_pickle=False)


def _chunks(records: list[ProteinRecord]):
    start = 0
    while start < len(records):
        end, residues = start, 0
        while end < len(records) and (end == start or residues + records[end].length <= CHUNK_RESIDUES):
            residues += records[end].length
            end += 1
        part = records[start:end]
        with_pssm = [r.pssm for r in part if r.pssm is not None]
        yield (
            len(part),
            {
                "length": np.array([r.length for r in part], np.int64),
                "ca": np.concatenate([r.ca for r in part]).astype(np.float32, copy=False),
                "mask": np.concatenate([r.mask for r in part]).astype(bool, copy=False),
                "has_pssm": np.array([r.pssm is not None for r in part], bool),
                "pssm": np.concatenate(with_pssm).astype(np.float32) if with_pssm else np.zeros((0, 20), np.float32),
            },
        )
        start = end


def _write_entry(path: Path, key: str, sha: str, records: list, skips: list) -> None:
    def write(fh):
        with zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            counts = []
            for i, (n, arrays) in enumerate(_chunks(records)):
                counts.append(n)
                for name, array in arrays.items():
                    _put(zf, f"{name}_{i}", array)
            meta = {
                "version": CACHE_VERSION,
                "key": key,
                "sha256": sha,
                "chunks": counts,
                "ids": [r.id for r in records],
                "sequences": [r.sequence for r in records],
                "sources": [r.source for r in records],
                "skips": [[s.where, s.reason, s.detail] for s in skips],
            }
            _put(zf, "meta", np.frombuffer(json.dumps(meta).encode(), np.uint8))

    atomic_write(path, write)


def _array(z, name: str, dims: int) -> np.ndarray:
    stem = name.rsplit("_", 1)[0]
    a = z[name]
    if a.dtype != _DTYPES[stem] or a.ndim != dims:
        raise ValueError(f"{name}: {a.dtype} {a.shape}")
    return a


def _read_entry(path: Path, key: str, sha: str):
    """→ (records, skips) from a valid entry, else raises (the caller parses the file again)."""
    z = np.load(path, allow_pickle=False)  # a pickle or object array raises here
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ValueError("not an npz archive")
    with z:
        raw = z["meta"]
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError("meta is not JSON bytes")
        meta = json.loads(raw.tobytes().decode())
        if (meta["version"], meta["key"], meta["sha256"]) != (CACHE_VERSION, key, sha):
            raise ValueError("entry of another version, file or content")
        ids, seqs, sources = meta["ids"], meta["sequences"], meta["sources"]
        records, r = [], 0
        for i, n in enumerate(meta["chunks"]):
            lengths, has_pssm = _array(z, f"length_{i}", 1), _array(z, f"has_pssm_{i}", 1)
            ca, mask, pssm = _array(z, f"ca_{i}", 2), _array(z, f"mask_{i}", 1), _array(z, f"pssm_{i}", 2)
            if (
                len(lengths) != n
                or len(has_pssm) != n
                or (lengths < 0).any()
                or len(ca) != lengths.sum()
                or len(mask) != len(ca)
                or len(pssm) != lengths[has_pssm].sum()
            ):
                raise ValueError(f"chunk {i}: inconsistent shapes")
            if not (np.isfinite(ca).all() and np.isfinite(pssm).all()):
                raise ValueError(f"chunk {i}: non-finite values")
            o = p = 0
            for length, with_pssm in zip(lengths.tolist(), has_pssm.tolist()):
                records.append(
                    ProteinRecord(
                        str(ids[r]),
                        str(seqs[r]),
                        ca[o : o + length],
                        mask[o : o + length],
                        str(sources[r]),
                        {},
                        pssm[p : p + length] if with_pssm else None,
                    )
                )
                o, p, r = o + length, p + (length if with_pssm else 0), r + 1
        if r != len(ids):
            raise ValueError("record count differs from the ids")
        skips = [Skip(str(w), str(reason), str(detail)) for w, reason, detail in meta["skips"]]
    return records, skips


class FileCache:
    """``FileCache(root, "proteinnet", settings).read(file, parse)`` → (records, skips, status);
    status is 'hit', 'rehashed' (stat changed, content did not), 'parsed' or 'uncached'."""

    def __init__(self, root: Path, reader: str, settings: tuple):
        self.dir = Path(root).expanduser() / f"records-v{CACHE_VERSION}"
        self.prefix = repr((CACHE_VERSION, reader, settings)).encode() + b"\0"

    def _paths(self, file: Path):
        key = hashlib.sha256(self.prefix + os.fsencode(os.path.abspath(file))).hexdigest()[:40]
        return key, self.dir / key[:2] / f"{key}.json"

    def _stamp(self, stamp_path: Path):
        try:
            stamp = json.loads(stamp_path.read_bytes())
            sha = stamp["sha256"]
            if stamp.get("version") != CACHE_VERSION or not (
                isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)
            ):
                return None
            return stamp
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _load(self, key, stamp_path, sha, file):
        data = stamp_path.with_name(f"{key}-{sha[:24]}.npz")
        try:
            return _read_entry(data, key, sha)
        except FileNotFoundError:
            return None
        except Exception as exc:  # anything not written by us for this content: parse again
            log.warning(
                "data: cache entry %s for %s is unusable (%s): parsing the file again",
                data.name,
                shown(file),
                str(exc)[:200],
            )
            return None

    def _hit(self, key, stamp_path, stat, file):
        stamp = self._stamp(stamp_path)
        if stamp and stamp.get("stat") == stat:
            return self._load(key, stamp_path, stamp["sha256"], file), stamp
        return None, stamp

    @contextlib.contextmanager
    def _lock(self, stamp_path: Path):
        """Jobs of one sweep starting together: one parses a file, the others wait and read it."""
        fh = None
        try:
            stamp_path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(stamp_path.with_suffix(".lock"), "a")  # noqa: SIM115 - closed below
            fcntl.flock(fh, fcntl.LOCK_EX)
        except OSError:  # a read-only cache or a file system without locks: parse unlocked
            pass
        try:
            yield
        finally:
            if fh is not None:
                fh.close()  # releases the lock

    def read(self, file: Path, parse):
        key, stamp_path = self._paths(file)
        try:
            stat = _stat(file)
            hit, _ = self._hit(key, stamp_path, stat, file)
            if hit:
                return (*hit, "hit")
            with self._lock(stamp_path):
                hit, stamp = self._hit(key, stamp_path, stat, file)  # parsed meanwhile by another job?
                if hit:
                    return (*hit, "hit")
                sha = file_sha256(file)
                if stamp and stamp["sha256"] == sha:
                    hit = self._load(key, stamp_path, sha, file)
                    if hit:
                        self._save(key, stamp_path, stat, sha, None, None)
                        return (*hit, "rehashed")
                try:
                    records, skips = parse(file)
                except (OSError, MemoryError):
                    raise
                except Exception as exc:  # a reader bug: skip the file, never cache it
                    log.warning("data: reading %s failed: %r", shown(file), exc)
                    return (
                        [],
                        [Skip(shown(file), "unreadable", f"{type(exc).__name__}: {str(exc)[:160]} (not cached)")],
                        "uncached",
                    )
                if _stat(file) != stat:
                    log.warning("data: %s changed while it was read: not cached", shown(file))
                    return records, skips, "uncached"
                self._save(key, stamp_path, stat, sha, records, skips)
                return records, skips, "parsed"
        except (OSError, MemoryError) as exc:  # may be transient (EIO, NFS, memory): never cached
            why = f"{type(exc).__name__}: {exc}"[:200]
            return [], [Skip(shown(file), "read_error", f"{why} (not cached: tried again next run)")], "uncached"

    def _save(self, key, stamp_path, stat, sha, records, skips) -> None:
        racy = time.time_ns() - max(stat[1], stat[2]) < RACY_NS
        try:
            stamp_path.parent.mkdir(parents=True, exist_ok=True)
            old = self._stamp(stamp_path)
            if records is not None:
                _write_entry(stamp_path.with_name(f"{key}-{sha[:24]}.npz"), key, sha, records, skips)
            body = json.dumps({"version": CACHE_VERSION, "stat": None if racy else stat, "sha256": sha})
            atomic_write(stamp_path, lambda fh: fh.write(body.encode()))
            if old and old["sha256"][:24] != sha[:24]:
                stamp_path.with_name(f"{key}-{old['sha256'][:24]}.npz").unlink(missing_ok=True)
        except (OSError, MemoryError) as exc:  # a read-only or full cache never fails a job
            log.warning("data: could not write the parse cache in %s (%s)", self.dir, exc)
