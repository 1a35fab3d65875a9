"""README, the parse cache: "An entry is used when the file's size, mtime, ctime and inode are
unchanged; if any changed, the file is hashed again and re-parsed unless its content is the same —
a changed file is never served stale." Checked on a PDB folder and a ProteinNet text folder for the
hard cases: content edited in place with the size and the mtime put back (only ctime and the bytes
differ), and a file renamed over by another of the same size and mtime (a new inode).

The stat shortcut must be live for this to test anything: a stamp taken within the cache's racy
window (``cache.RACY_NS``, 2 s) holds no stat, so every read of a freshly written file is hashed
anyway. Here the window is shortened to 50 ms and the files are stamped after it has passed, so the
unchanged files are served by their stat ("hit") and only the stat comparison can notice the edits.
"""

from __future__ import annotations

import os
import time
from collections import Counter

import numpy as np
import pytest

from protstruct.data import cache, embedded, folder, proteinnet
from protstruct.data.structures import read_structure_file
from tests import fixtures as fx

N_FILES = 10
WINDOW_NS = 50_000_000


def _records(n=N_FILES):
    """n embedded chains of distinct clusters (the folder's homology split needs unrelated chains)."""
    out, clusters = [], set()
    for r in embedded.load()["train"]:
        if r.length <= 200 and r.meta["cluster"] not in clusters:
            clusters.add(r.meta["cluster"])
            out.append(r)
        if len(out) == n:
            return out


def _write_folder(root, kind):
    root.mkdir()
    for i, r in enumerate(_records()):
        if kind == "structures":
            fx.write_pdb(r, root / f"s{i}.pdb", entry=f"ST{i:02d}")
        else:
            (root / f"p{i}.txt").write_text(fx.proteinnet_text(r, rid=f"PN{i:02d}") + "\n")
    _past_the_window()
    return root


def _past_the_window():
    """Files changed before now are stamped with their stat (the shortened racy window has passed)."""
    time.sleep(2 * WINDOW_NS / 1e9)


def _fresh(path, kind):
    """The file parsed without any cache."""
    records, _ = read_structure_file(path, "structures") if kind == "structures" else proteinnet.read_file(path)
    (record,) = records
    return record


def _edited(path, kind, nth: int) -> str:
    """The file's text with one C-alpha x coordinate of its ``nth`` observed residue changed, the
    text keeping its length: PDB columns 31-38 moved by 1.5 Å; ProteinNet [TERTIARY] (pm) one digit."""
    text = path.read_text()
    if kind == "structures":
        lines = text.splitlines(keepends=True)
        i = [k for k, line in enumerate(lines) if line.startswith("ATOM")][nth]
        x = f"{float(lines[i][30:38]) + 1.5:8.3f}"
        assert len(x) == 8
        lines[i] = lines[i][:30] + x + lines[i][38:]
        return "".join(lines)
    lines = text.split("\n")
    row = lines.index("[TERTIARY]") + 1  # the x row: N, CA, C of each residue
    mask = lines[lines.index("[MASK]") + 1]
    residue = [k for k, m in enumerate(mask) if m == "+"][nth]
    values = lines[row].split("\t")
    v = values[3 * residue + 1]
    digit = len(v) - 3  # the units digit of a "%.1f" value
    values[3 * residue + 1] = v[:digit] + str((int(v[digit]) + 5) % 10) + v[digit + 1 :]
    lines[row] = "\t".join(values)
    return "\n".join(lines)


def _load(path, kind, cache_dir):
    stats = Counter()
    records, _, _ = folder.load(path, kind, cache_dir=cache_dir, cache_stats=stats)
    return records, stats


def _ca_of(records, path, kind):
    rid = _fresh(path, kind).id
    (record,) = [r for r in records if r.id == rid]
    return record.ca


@pytest.mark.parametrize("kind", ["structures", "proteinnet"])
def test_a_changed_file_is_never_served_stale(kind, tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "RACY_NS", WINDOW_NS)
    d, cache_dir = _write_folder(tmp_path / kind, kind), tmp_path / "cache"
    files = sorted(p for p in d.iterdir())
    first, stats = _load(d, kind, cache_dir)
    assert stats == {"parsed": N_FILES}
    _, stats = _load(d, kind, cache_dir)
    assert stats == {"hit": N_FILES}  # the stat shortcut is live

    # 1. edited in place: same size, same inode, mtime put back — only ctime and the content differ
    f = files[0]
    before = os.stat(f)
    time.sleep(0.02)  # a later ctime tick than the stamp's (Linux timestamps are jiffy-coarse)
    f.write_text(_edited(f, kind, 7))
    os.utime(f, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(f)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    _past_the_window()
    second, stats = _load(d, kind, cache_dir)
    assert stats == {"parsed": 1, "hit": N_FILES - 1}
    np.testing.assert_array_equal(_ca_of(second, f, kind), _fresh(f, kind).ca)
    assert not np.array_equal(_ca_of(second, f, kind), _ca_of(first, f, kind))

    # 2. renamed over by a file of the same size and mtime (another inode)
    g = files[1]
    before = os.stat(g)
    incoming = d / "incoming.part"  # not a structure/ProteinNet name: never read while it is written
    incoming.write_text(_edited(g, kind, 3))
    os.utime(incoming, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(incoming, g)
    after = os.stat(g)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns) and after.st_ino != before.st_ino
    _past_the_window()
    third, stats = _load(d, kind, cache_dir)
    assert stats == {"parsed": 1, "hit": N_FILES - 1}
    np.testing.assert_array_equal(_ca_of(third, g, kind), _fresh(g, kind).ca)
    assert not np.array_equal(_ca_of(third, g, kind), _ca_of(first, g, kind))
    np.testing.assert_array_equal(_ca_of(third, f, kind), _ca_of(second, f, kind))  # the first edit stays

    # 3. touched, content unchanged: hashed again and served, not parsed
    os.utime(g)
    _past_the_window()
    fourth, stats = _load(d, kind, cache_dir)
    assert stats == {"rehashed": 1, "hit": N_FILES - 1}
    np.testing.assert_array_equal(_ca_of(fourth, g, kind), _ca_of(third, g, kind))
