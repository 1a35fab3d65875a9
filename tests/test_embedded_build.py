"""`make data` rebuilds the embedded set byte-identically (README): the set is rebuilt from the pinned
package files and compared with the shipped file, byte for byte.

No network inside the test: the package files come from the cache
(``$PROTSTRUCT_EMBEDDED_CACHE``, default ~/.cache/protstruct/embedded-packages) that CI fills
beforehand with ``python -m protstruct.data.build_embedded --download-only``. Without it the rebuild
tests skip, or fail where ``PROTSTRUCT_REQUIRE_EMBEDDED_CACHE=1`` (CI). ``PROTSTRUCT_EMBEDDED_EXPECTED``
names another file to compare with (a candidate build) instead of the shipped one.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

from protstruct.data import build_embedded, embedded, embedded_sources

EXPECTED = Path(os.environ.get("PROTSTRUCT_EMBEDDED_EXPECTED") or embedded.DEFAULT_PATH)
REQUIRE_CACHE = os.environ.get("PROTSTRUCT_REQUIRE_EMBEDDED_CACHE") == "1"


def _cache_or_skip() -> Path:
    cache = embedded_sources.default_cache()
    missing = [s["filename"] for s in embedded_sources.SOURCES if not (cache / s["filename"]).is_file()]
    if missing:
        why = (
            f"{len(missing)} of {len(embedded_sources.SOURCES)} pinned package files are not in {cache} "
            f"({', '.join(missing[:3])}{', …' if len(missing) > 3 else ''}): run "
            f"`python -m protstruct.data.build_embedded --download-only`"
        )
        if REQUIRE_CACHE:
            pytest.fail(why + " (PROTSTRUCT_REQUIRE_EMBEDDED_CACHE=1)")
        pytest.skip(why)
    return cache


@pytest.fixture(scope="module")
def rebuilt():
    cache = _cache_or_skip()
    payload = build_embedded.build(cache, offline=True)
    return cache, payload, build_embedded.encode(payload)


def test_rebuild_is_byte_identical_to_the_shipped_file(rebuilt):
    _, payload, data = rebuilt
    expected = EXPECTED.read_bytes()
    if data != expected:  # say what moved, not only that the hashes differ
        old = json.loads(gzip.decompress(expected))
        diff = {
            k: (repr(old.get(k))[:100], repr(payload.get(k))[:100])
            for k in sorted(set(old) | set(payload))
            if k != "records" and old.get(k) != payload.get(k)
        }
        old_by_id = {r["id"]: r for r in old["records"]}
        old_ids, new_ids = set(old_by_id), {r["id"] for r in payload["records"]}
        moved = sorted(r["id"] for r in payload["records"] if r["id"] in old_by_id and r != old_by_id[r["id"]])
        pytest.fail(
            f"rebuild sha256 {hashlib.sha256(data).hexdigest()} != {EXPECTED} "
            f"{hashlib.sha256(expected).hexdigest()}: metadata {diff}; ids only in the rebuild "
            f"{sorted(new_ids - old_ids)[:10]}, only in the file {sorted(old_ids - new_ids)[:10]}; "
            f"records that differ {moved[:10]}"
        )


def test_rebuild_follows_the_set_rules(rebuilt):
    _, payload, _ = rebuilt
    records, summary = payload["records"], payload["summary"]
    assert len(records) >= 150
    assert len({r["id"] for r in records}) == len(records)
    assert len({r["sequence"] for r in records}) == len(records)  # one chain per distinct sequence
    per_entry = Counter(r["pdb_id"] for r in records)
    assert max(per_entry.values()) <= build_embedded.MAX_CHAINS_PER_ENTRY == payload["max_chains_per_entry"]
    for key in ("cluster", "pdb_id"):  # homology components and PDB entries never cross splits
        where: dict = {}
        for r in records:
            assert where.setdefault(r[key], r["split"]) == r["split"], f"{key} {r[key]} in two splits"
    assert all(r["mask"].count("1") >= build_embedded.MIN_LENGTH for r in records)
    comps = Counter(r["cluster"] for r in records)
    assert summary["chains"] == len(records) and summary["entries"] == len(per_entry)
    assert summary["components"] == len(comps) and summary["largest_component"] == max(comps.values())
    assert summary["largest_entry_chains"] == max(per_entry.values())
    assert summary["split_counts"] == {s: sum(r["split"] == s for r in records) for s in embedded.SPLITS}
    assert [s["file"] for s in payload["sources"]] == [s["filename"] for s in embedded_sources.SOURCES]


def test_download_only_checks_a_full_cache_without_network(rebuilt, capsys):
    cache, _, _ = rebuilt
    assert build_embedded.main(["--download-only", "--offline", "--cache", str(cache)]) == 0
    assert capsys.readouterr().out.count("sha256 ok") == len(embedded_sources.SOURCES)


def test_a_missing_or_altered_package_file_is_named(tmp_path):
    source = dict(embedded_sources.SOURCES[0])
    with pytest.raises(FileNotFoundError, match="--download-only"):
        embedded_sources.fetch(source, tmp_path, offline=True)
    (tmp_path / source["filename"]).write_bytes(b"not the package")
    with pytest.raises(RuntimeError, match="sha256 .* expected " + source["sha256"]):
        embedded_sources.fetch(source, tmp_path, offline=True)


def _chain(entry: str, chain: str, sequence: str):
    return SimpleNamespace(id=f"{entry}_{chain}", sequence=sequence), {"pdb_id": entry}


def test_select_drops_repeated_sequences_first_then_caps_each_entry_in_order():
    chains = [_chain("1AAA", c, s) for c, s in zip("ABCDE", ["AAAA", "AAAA", "CCCC", "DDDD", "EEEE"], strict=True)]
    chains += [_chain("2BBB", "A", "DDDD"), _chain("2BBB", "B", "EEEE"), _chain("2BBB", "C", "FFFF")]
    kept, dropped = build_embedded.select(chains, max_chains_per_entry=2)
    # 1AAA_B repeats 1AAA_A; 1AAA_D and 1AAA_E are over the cap, yet their sequences count as read first,
    # so 2BBB_A and 2BBB_B are repeats (de-duplication comes before the cap)
    assert [rec.id for rec, _ in kept] == ["1AAA_A", "1AAA_C", "2BBB_C"]
    assert dropped == {"duplicate_sequence": 3, "entry_cap": 2}
    kept, dropped = build_embedded.select(chains, max_chains_per_entry=None)
    assert [rec.id for rec, _ in kept] == ["1AAA_A", "1AAA_C", "1AAA_D", "1AAA_E", "2BBB_C"]
    with pytest.raises(ValueError, match="max_chains_per_entry=0"):
        build_embedded.select(chains, max_chains_per_entry=0)


def test_encoding_is_reproducible():
    payload = {"b": [1, 2], "a": {"z": "é", "y": None}}
    data = build_embedded.encode(payload)
    assert data == build_embedded.encode(json.loads(json.dumps(payload)))
    assert data[4:8] == b"\0\0\0\0"  # no gzip time stamp
    assert json.loads(gzip.decompress(data)) == payload
