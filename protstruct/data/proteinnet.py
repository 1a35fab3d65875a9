"""ProteinNet records — text or TFRecord (``tf.train.SequenceExample``) — → ProteinRecord.

Text: ``[ID]``, ``[PRIMARY]``, ``[EVOLUTIONARY]`` (20 PSSM rows in ACDEFGHIKLMNPQRSTVWY order, then
an optional information-content row), ``[SECONDARY]`` (optional), ``[TERTIARY]`` (3 rows x, y, z of
3L values: N, CA, C per residue, picometres), ``[MASK]`` (+/-); a blank line ends a record.
TFRecord: context ``id``; sequence features ``primary`` (int 0-19), ``evolutionary`` (20 or 21
floats per step), optional ``secondary``, ``tertiary`` (3 floats per step, 3L steps), ``mask``.
Only the C-alpha atoms are kept; a bad record is skipped with a reason, never raised.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from protstruct.data.records import STANDARD_AA, ProteinRecord
from protstruct.data.structures import MAX_ABS_COORD, Skip

PM_PER_A = 100.0


def is_text(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(64).lstrip().startswith(b"[ID]")


def _record(rid: str, seq: str, pssm, tertiary, mask: np.ndarray, source: str, min_length: int):
    """Validated arrays → (record, None) or (None, Skip). ``tertiary`` is (3, 3L) in pm."""
    n = len(seq)
    if n == 0:
        return None, Skip(rid, "empty_sequence")
    if set(seq) - set(STANDARD_AA + "X"):
        return None, Skip(rid, "bad_sequence", f"letters {sorted(set(seq) - set(STANDARD_AA + 'X'))}")
    if tertiary.shape != (3, 3 * n):
        return None, Skip(rid, "wrong_row_count", f"[TERTIARY] shape {tertiary.shape}, expected (3, {3 * n})")
    if mask.shape != (n,):
        return None, Skip(rid, "wrong_row_count", f"[MASK] has {mask.shape[0]} residues, expected {n}")
    if pssm is not None and pssm.shape != (n, 20):
        return None, Skip(rid, "wrong_row_count", f"[EVOLUTIONARY] shape {pssm.shape}, expected ({n}, 20)")
    ca = (tertiary[:, 1::3].T / PM_PER_A).astype(np.float64)
    mask = mask & np.array([aa != "X" for aa in seq])
    if not np.isfinite(ca[mask]).all() or (np.abs(ca[mask]) > MAX_ABS_COORD).any():
        return None, Skip(rid, "bad_coordinates", "NaN or |coordinate| > 9999 Å")
    if mask.sum() < min_length:
        return None, Skip(rid, "too_short", f"{int(mask.sum())} residues with CA < {min_length}")
    ca = np.where(mask[:, None], ca, 0.0).astype(np.float32)
    return ProteinRecord(rid, seq, ca, mask, source, {}, None if pssm is None else pssm.astype(np.float32)), None


def _rows(lines: list[str]) -> np.ndarray:
    rows = [np.array(line.split(), dtype=np.float64) for line in lines]
    if len({len(r) for r in rows}) > 1:
        raise ValueError("rows of different lengths")
    return np.stack(rows) if rows else np.zeros((0, 0))


def read_text(path: Path, min_length: int = 40):
    records, skips = [], []
    sections: dict[str, list[str]] = {}
    current = None
    lines = Path(path).read_text(errors="replace").splitlines() + [""]
    for line in lines:
        line = line.strip()
        if not line:
            if sections:
                rec, skip = _text_record(sections, path, min_length)
                (records.append(rec) if rec else skips.append(skip))
            sections, current = {}, None
        elif line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    return records, skips


def _text_record(sections: dict, path: Path, min_length: int):
    rid = (sections.get("ID") or [f"{Path(path).name}:?"])[0]
    missing = [s for s in ("ID", "PRIMARY", "TERTIARY", "MASK") if not sections.get(s)]
    if missing:
        return None, Skip(rid, "missing_field", f"{path}: no {', '.join('[' + m + ']' for m in missing)}")
    seq = sections["PRIMARY"][0]
    try:
        tertiary = _rows(sections["TERTIARY"])
        evo = _rows(sections["EVOLUTIONARY"]) if sections.get("EVOLUTIONARY") else None
    except ValueError as exc:
        return None, Skip(rid, "wrong_row_count", f"{path}: {exc}")
    if evo is not None and evo.shape[0] not in (20, 21):
        return None, Skip(rid, "wrong_row_count", f"[EVOLUTIONARY] has {evo.shape[0]} rows, expected 20 or 21")
    pssm = None if evo is None else evo[:20].T
    mask = np.array([c == "+" for c in sections["MASK"][0]])
    return _record(rid, seq, pssm, tertiary, mask, f"proteinnet:{Path(path).name}", min_length)


def _feature_list(example, name: str) -> list:
    return [list(f.int64_list.value) or list(f.float_list.value) or list(f.bytes_list.value)
            for f in example.feature_lists.feature_list[name].feature]


def _tfrecord_example(raw: bytes, path: Path, index: int, min_length: int):
    import tensorflow as tf

    where = f"{Path(path).name}#{index}"
    try:
        example = tf.train.SequenceExample.FromString(raw)
    except Exception as exc:  # protobuf DecodeError
        return None, Skip(where, "bad_tfrecord", str(exc)[:200])
    ids = example.context.feature["id"].bytes_list.value if "id" in example.context.feature else []
    rid = ids[0].decode(errors="replace") if ids else where
    missing = [f for f in ("primary", "tertiary", "mask") if f not in example.feature_lists.feature_list]
    if not ids:
        missing.insert(0, "id")
    if missing:
        return None, Skip(rid, "missing_field", f"{where}: no {', '.join(missing)}")
    primary = [v[0] if v else -1 for v in _feature_list(example, "primary")]
    if any(not 0 <= p < 20 for p in primary):
        return None, Skip(rid, "bad_sequence", "primary values outside 0-19")
    seq = "".join(STANDARD_AA[p] for p in primary)
    tertiary_steps = _feature_list(example, "tertiary")
    if any(len(step) != 3 for step in tertiary_steps):
        return None, Skip(rid, "wrong_row_count", "tertiary steps must hold 3 values")
    tertiary = np.array(tertiary_steps, np.float64).reshape(-1, 3).T
    mask = np.array([bool(v and v[0] > 0.5) for v in _feature_list(example, "mask")])
    pssm = None
    if "evolutionary" in example.feature_lists.feature_list:
        evo = _feature_list(example, "evolutionary")
        if any(len(step) not in (20, 21) for step in evo):
            return None, Skip(rid, "wrong_row_count", "evolutionary steps must hold 20 or 21 values")
        pssm = np.array([step[:20] for step in evo], np.float64).reshape(-1, 20)
    return _record(rid, seq, pssm, tertiary, mask, f"proteinnet:{Path(path).name}", min_length)


def read_tfrecord(path: Path, min_length: int = 40):
    import tensorflow as tf

    records, skips, index = [], [], 0
    try:
        for raw in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
            rec, skip = _tfrecord_example(raw, path, index, min_length)
            (records.append(rec) if rec else skips.append(skip))
            index += 1
    except (tf.errors.DataLossError, tf.errors.OpError):
        if index == 0:
            skips.append(Skip(str(path), "not_proteinnet",
                              "neither ProteinNet text (starting with [ID]) nor a TFRecord file"))
        else:
            skips.append(Skip(f"{Path(path).name}#{index}", "truncated_tfrecord",
                              f"corrupted or truncated after {index} record(s)"))
    if index == 0 and not skips:
        skips.append(Skip(str(path), "empty_file"))
    return records, skips


def read_file(path: Path, min_length: int = 40):
    """One ProteinNet file of either format (detected from its content) → (records, skips)."""
    path = Path(path)
    if path.stat().st_size == 0:
        return [], [Skip(str(path), "empty_file")]
    return read_text(path, min_length) if is_text(path) else read_tfrecord(path, min_length)
