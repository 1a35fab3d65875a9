"""Data sources: each turns its input into train/val/test lists of ProteinRecord.

A source is built from the ``data=`` config group via ``_target_``; the rest of protstruct only
ever sees :class:`Splits`.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from protstruct.data import embedded, folder
from protstruct.data.choices import MAX_LENGTH, MIN_LENGTH
from protstruct.data.records import ProteinRecord
from protstruct.data.structures import Skip

log = logging.getLogger(__name__)


@dataclass
class Splits:
    train: list[ProteinRecord]
    val: list[ProteinRecord]
    test: list[ProteinRecord]
    name: str
    skips: list[Skip] = field(default_factory=list)
    uri: str = ""  # where the records came from (file or folder), for lineage
    split_info: dict = field(default_factory=dict)  # how a homology split was made (empty: a fixed split)
    _digests: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def require_all_splits(self) -> Splits:
        """Training needs proteins in every split; say which are empty and why."""
        empty = [s for s, recs in self.items() if not recs]
        if empty:
            total = sum(len(r) for _, r in self.items())
            raise ValueError(
                f"data: {self.name}: split(s) {empty} are empty ({total} usable chains, "
                f"{len(self.skips)} skipped: {self.skip_counts()}); add more proteins "
                f"or raise data.limit"
            )
        return self

    def skip_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(s.reason for s in self.skips).items()))

    def items(self):
        return (("train", self.train), ("val", self.val), ("test", self.test))

    def split_digest(self, split: str) -> str:
        """sha256 of one split's records (ids, sequences, coordinates, masks, PSSMs); computed once:
        the resume key, the data manifest and the MLflow dataset inputs all need it."""
        if split not in self._digests:
            h = hashlib.sha256()
            for r in dict(self.items())[split]:
                h.update(f"{r.id}\0{r.sequence}\0".encode())
                h.update(r.ca.tobytes())
                h.update(r.mask.tobytes())
                if r.pssm is not None:
                    h.update(b"pssm\0" + r.pssm.astype("<f8").tobytes())
            self._digests[split] = h.hexdigest()
        return self._digests[split]

    def fingerprint(self) -> str:
        """sha256 over the three splits' digests: which record is in which split, and its data."""
        text = "\0".join(f"{split}:{self.split_digest(split)}" for split, _ in self.items())
        return hashlib.sha256(text.encode()).hexdigest()

    def profile(self, split: str) -> dict:
        records = dict(self.items())[split]
        return {
            "chains": len(records),
            "residues": int(sum(r.length for r in records)),
            "observed_residues": int(sum(r.n_observed for r in records)),
        }

    def manifest(self) -> dict:
        return {
            "source": self.name,
            "fingerprint": self.fingerprint(),
            "counts": {s: len(r) for s, r in self.items()},
            "skipped": self.skip_counts(),
            "ids": {s: [r.id for r in recs] for s, recs in self.items()},
        }


def _limit(records: list, n: int | None) -> list:
    if n is not None and n < 0:
        raise ValueError(f"data.limit: expected a non-negative count or null, got {n}")
    return records if n is None else records[:n]


def spread_sample(records: list, n: int | None) -> list:
    """At most ``n`` records, evenly spaced over the list (deterministic; order kept), so a capped
    validation set keeps the mix of its sources (e.g. ProteinNet's identity bins, stored in order)."""
    if n is None or len(records) <= n:
        return records
    if n < 1:
        raise ValueError(f"data.val_sample: expected a positive count or null, got {n}")
    return [records[i * len(records) // n] for i in range(n)]


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
    train, val, test = (_limit(by_split[s], limit.get(s)) for s in embedded.SPLITS)
    return Splits(train, val, test, name=f"embedded:{file.name}", uri=str(file.resolve()))


def _from_folder(kind: str, path, min_length, max_length, cache_dir, limit, val_sample, **layout) -> Splits:
    # any file name must print in MLflow and CSV files
    from protstruct.data.cache import shown

    if not path:
        raise ValueError(f"data.path: data={kind} needs a file or folder (data.path=...)")
    split_info: dict = {}
    records, skips, splits = folder.load(
        path,
        kind,
        int(min_length),
        None if max_length is None else int(max_length),
        cache_dir,
        split_info=split_info,
        **layout,
    )
    limit = dict(limit or {})
    by_split = {s: [r for r, sp in zip(records, splits) if sp == s] for s in embedded.SPLITS}
    if val_sample is not None and len(by_split["val"]) > int(val_sample):
        log.info(
            "data: validating on %d of %d validation chains (data.val_sample)", int(val_sample), len(by_split["val"])
        )
        by_split["val"] = spread_sample(by_split["val"], int(val_sample))
    resolved = Path(path).expanduser().resolve()
    train, val, test = (_limit(by_split[s], limit.get(s)) for s in embedded.SPLITS)
    return Splits(
        train, val, test, name=f"{kind}:{shown(resolved.name)}", skips=skips, uri=shown(resolved), split_info=split_info
    )


def proteinnet_source(
    path: str | None = None,
    min_length: int = MIN_LENGTH,
    max_length: int | None = MAX_LENGTH,
    cache_dir: str | None = None,
    limit: dict | None = None,
    thinning: int | None = None,
    validation_identity=None,
    split: dict | None = None,
    val_sample: int | None = None,
) -> Splits:
    """ProteinNet text or TFRecord file(s). A casp folder (``training_<N>``/``validation``/``testing``
    or ``training/<N>/``, ``validation/``, ``testing/`` shards) keeps ProteinNet's own split, with
    ``thinning`` choosing the training set and ``validation_identity`` (one bin or a list) the
    validation bins; files named training*/validation*/testing* keep theirs; anything else is split
    by homology (``split``: identity, coverage). ``val_sample`` caps the validation set (evenly spread)."""
    return _from_folder(
        "proteinnet",
        path,
        min_length,
        max_length,
        cache_dir,
        limit,
        val_sample,
        thinning=thinning,
        validation_identity=validation_identity,
        **_split_settings(split),
    )


def structures_source(
    path: str | None = None,
    min_length: int = MIN_LENGTH,
    max_length: int | None = MAX_LENGTH,
    cache_dir: str | None = None,
    limit: dict | None = None,
    split: dict | None = None,
    val_sample: int | None = None,
) -> Splits:
    """A folder (searched recursively) of PDB/mmCIF files, split by homology (``split``: identity,
    coverage) with the chains of one entry kept together; ``val_sample`` caps the validation set."""
    return _from_folder(
        "structures", path, min_length, max_length, cache_dir, limit, val_sample, **_split_settings(split)
    )


def _split_settings(split: dict | None) -> dict:
    split = dict(split or {})
    unknown = set(split) - {"identity", "coverage"}
    if unknown:
        raise ValueError(f"data.split: unknown key(s) {sorted(unknown)}; expected identity, coverage")
    return {f"split_{k}": float(v) for k, v in split.items() if v is not None}
