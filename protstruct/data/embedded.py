"""The embedded real protein set that ships inside the package (the default data source)."""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from protstruct.data.records import ProteinRecord

FORMAT_VERSION = 1
DEFAULT_PATH = Path(__file__).parent / "embedded" / "proteins.json.gz"
SPLITS = ("train", "val", "test")


@lru_cache(maxsize=4)
def _payload(path: str) -> dict:
    try:
        payload = json.loads(gzip.decompress(Path(path).read_bytes()))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a protstruct embedded set (gzipped JSON expected): {exc}") from exc
    if payload.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path}: field 'format' is {payload.get('format')!r}, expected {FORMAT_VERSION}")
    return payload


def metadata(path: Path = DEFAULT_PATH) -> dict:
    return {k: v for k, v in _payload(str(path)).items() if k != "records"}


def load(path: Path = DEFAULT_PATH) -> dict[str, list[ProteinRecord]]:
    """Records by split name ('train', 'val', 'test'), in file order."""
    by_split: dict[str, list[ProteinRecord]] = {s: [] for s in SPLITS}
    for row in _payload(str(path))["records"]:
        ca = np.asarray(row["ca_milliangstrom"], np.float32).reshape(-1, 3) / 1000.0
        mask = np.frombuffer(row["mask"].encode(), np.uint8) == ord("1")
        meta = {k: row[k] for k in ("pdb_id", "chain", "package", "version", "cluster")}
        by_split[row["split"]].append(
            ProteinRecord(row["id"], row["sequence"], ca, mask, f"embedded:{row['package']}", meta)
        )
    return by_split
