"""The folders of ProteinNet's release (``casp12/``…): one ``training_<N>`` per thinning plus
``validation`` and ``testing``, as text files or as the TFRecord release's shard folders
(``training/<N>/1…``, ``validation/1``, ``testing/1``), and the identity bins of validation ids."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from protstruct.data.cache import shown

log = logging.getLogger(__name__)


def validation_bin(record_id: str) -> int | None:
    """ProteinNet validation ids start with their identity bin: ``70#1ABC_1_A`` → 70."""
    m = re.match(r"(\d+)#", record_id)
    return int(m[1]) if m else None


def _shards(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    return sorted(files, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))


def _split_files(folder: Path, name: str) -> list[Path]:
    for candidate in (folder / name, folder / f"{name}.txt"):
        if candidate.is_file():
            return [candidate]
        if candidate.is_dir():
            return _shards(candidate)
    return []


def casp_layout(folder: Path, thinning: int | None = None) -> list[tuple[Path, str]] | None:
    """A ProteinNet casp folder → [(file, split)] for one thinning, validation and testing (their
    own split); None when ``folder`` holds no ``training_<N>`` file or ``training/<N>/`` folder."""
    text = {
        int(m[1]): p
        for p in folder.iterdir()
        if p.is_file() and (m := re.fullmatch(r"training_(\d+)(?:\.txt)?", p.name))
    }
    tf_root = folder / "training"
    shards = {int(d.name): d for d in tf_root.iterdir() if d.is_dir() and d.name.isdigit()} if tf_root.is_dir() else {}
    choices = sorted(set(text) | set(shards))
    if not choices:
        return None
    if thinning is None and len(choices) > 1:
        raise ValueError(
            f"data.path: {shown(folder)} holds ProteinNet training sets of thinnings {choices}; "
            f"choose one with data.thinning=N (summarize: --thinning N), one of {choices}"
        )
    if thinning is not None and thinning not in choices:
        raise ValueError(f"data.thinning={thinning}: {shown(folder)} holds thinning(s) {choices} only")
    thinning = choices[0] if thinning is None else thinning
    if thinning in text and thinning in shards:
        log.warning(
            "data: %s holds training_%d as text and as TFRecords: reading the text file", shown(folder), thinning
        )
    train = [text[thinning]] if thinning in text else _shards(shards[thinning])
    return (
        [(f, "train") for f in train]
        + [(f, "val") for f in _split_files(folder, "validation")]
        + [(f, "test") for f in _split_files(folder, "testing")]
    )
