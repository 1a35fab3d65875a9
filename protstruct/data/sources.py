"""Data sources: each turns its input into train/val/test lists of ProteinRecord.

A source is built from the ``data=`` config group via ``_target_``; the rest of protstruct only
ever sees :class:`Splits`.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from protstruct.data import embedded
from protstruct.data.records import ProteinRecord


@dataclass
class Splits:
    train: list[ProteinRecord]
    val: list[ProteinRecord]
    test: list[ProteinRecord]
    name: str

    def items(self):
        return (("train", self.train), ("val", self.val), ("test", self.test))

    def fingerprint(self) -> str:
        """sha256 over every record's split, id, sequence, coordinates and mask."""
        h = hashlib.sha256()
        for split, records in self.items():
            for r in records:
                h.update(f"{split}\0{r.id}\0{r.sequence}\0".encode())
                h.update(r.ca.tobytes())
                h.update(r.mask.tobytes())
        return h.hexdigest()

    def manifest(self) -> dict:
        return {
            "source": self.name,
            "fingerprint": self.fingerprint(),
            "counts": {s: len(r) for s, r in self.items()},
            "ids": {s: [r.id for r in recs] for s, recs in self.items()},
        }


def _limit(records: list, n: int | None) -> list:
    if n is not None and n < 0:
        raise ValueError(f"data.limit: expected a non-negative count or null, got {n}")
    return records if n is None else records[:n]


def embedded_source(path: str | None = None, limit: dict | None = None) -> Splits:
    """The embedded real set with its fixed cluster split; ``limit`` caps each split (smoke runs)."""
    file = Path(path) if path else embedded.DEFAULT_PATH
    if not file.is_file():
        raise FileNotFoundError(f"data.path: embedded set {file} does not exist")
    by_split = embedded.load(file)
    limit = dict(limit or {})
    unknown = set(limit) - set(embedded.SPLITS)
    if unknown:
        raise ValueError(f"data.limit: unknown split(s) {sorted(unknown)}; expected train/val/test")
    return Splits(
        *(_limit(by_split[s], limit.get(s)) for s in embedded.SPLITS),
        name=f"embedded:{file.name}",
    )
