"""ProteinNet records — text or TFRecord (``tf.train.SequenceExample``) — → ProteinRecord.

Text: ``[ID]``, ``[PRIMARY]``, ``[EVOLUTIONARY]`` (20 PSSM rows in ACDEFGHIKLMNPQRSTVWY order, then
an optional information-content row), ``[SECONDARY]`` (optional), ``[TERTIARY]`` (3 rows x, y, z of
3L values: N, CA, C per residue, picometres), ``[MASK]`` (+/-); a blank line ends a record.
TFRecord: context ``id``; sequence features ``primary`` (int 0-19), ``evolutionary`` (20 or 21
floats per step), optional ``secondary``, ``tertiary`` (3 floats per step, 3L steps), ``mask``.
Both are read record by record (text numbers in batches of ~BATCH_BYTES): memory holds the kept
arrays, not the file. Only the C-alpha atoms are kept; a bad record is skipped with a reason.

The casp folders of the release (``training_30 … training_100``, ``validation``, ``testing``, or
the TFRecord shards ``training/<N>/*``, ``validation/*``, ``testing/*``) are read by :func:`casp_layout`.
"""

from __future__ import annotations

import io
import itertools
import logging
import os
from pathlib import Path

import numpy as np

from protstruct.data.cache import shown
from protstruct.data.choices import MIN_LENGTH
from protstruct.data.records import STANDARD_AA, ProteinRecord
from protstruct.data.structures import MAX_ABS_COORD, Skip

log = logging.getLogger(__name__)
PM_PER_A = 100.0
BATCH_BYTES = 4 << 20  # text of number rows parsed in one go
_WHITESPACE = bytes.maketrans(b" \t\r\x0b\x0c", b"\n\n\n\n\n")
_NUMERIC = ("EVOLUTIONARY", "TERTIARY")


class _Bad(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


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
    if pssm is not None:
        if pssm.shape != (n, 20):
            return None, Skip(rid, "wrong_row_count", f"[EVOLUTIONARY] shape {pssm.shape}, expected ({n}, 20)")
        with np.errstate(over="ignore", invalid="ignore"):
            pssm = pssm.astype(np.float32)
        if not np.isfinite(pssm).all():
            return None, Skip(rid, "bad_pssm", "NaN or infinite value in the PSSM ([EVOLUTIONARY])")
    ca = (tertiary[:, 1::3].T / PM_PER_A).astype(np.float64)
    mask = mask & (np.frombuffer(seq.encode(), np.uint8) != ord("X"))
    if not np.isfinite(ca[mask]).all() or (np.abs(ca[mask]) > MAX_ABS_COORD).any():
        return None, Skip(rid, "bad_coordinates", "NaN or |coordinate| > 9999 Å")
    if mask.sum() < min_length:
        return None, Skip(rid, "too_short", f"{int(mask.sum())} residues with CA < {min_length}")
    ca = np.where(mask[:, None], ca, 0.0).astype(np.float32)
    return ProteinRecord(rid, seq, ca, mask, source, {}, pssm), None


# ---- text ------------------------------------------------------------------------------------


def _floats(blob: bytes) -> np.ndarray:
    """Whitespace-separated numbers → float64 (pandas' C parser; NaN/inf kept); ValueError if not numbers."""
    blob = blob.translate(_WHITESPACE)
    if not blob.strip(b"\n"):
        return np.zeros(0)
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas comes with mlflow
        return np.fromstring(blob.decode("ascii", "replace"), sep=" ")
    frame = pd.read_csv(io.BytesIO(blob), header=None, sep="\t", quoting=3, dtype=np.float64, engine="c")
    if frame.shape[1] != 1:
        raise ValueError("not one number per token")
    return frame.to_numpy().ravel()


def _matrix(sections: dict, key: str, parsed) -> np.ndarray | None:
    lines = sections.get(key)
    if not lines:
        return None
    values, counts = parsed if parsed is not None else (None, [])
    if values is None:  # the batch did not parse: this record alone, line by line
        try:
            rows = [_floats(line) for line in lines]
        except ValueError as exc:
            raise _Bad(
                "bad_pssm" if key == "EVOLUTIONARY" else "bad_coordinates", f"[{key}]: not a number: {str(exc)[:120]}"
            ) from None
        counts, values = [len(r) for r in rows], np.concatenate(rows)
    if len(set(counts)) > 1:
        raise _Bad("wrong_row_count", f"[{key}]: rows of different lengths")
    return values.reshape(len(counts), counts[0])


def _text_record(sections: dict, parsed: dict, name: str, min_length: int):
    rid = (sections.get("ID") or [b""])[0].decode("utf-8", "replace") or f"{name}:?"
    missing = [s for s in ("ID", "PRIMARY", "TERTIARY", "MASK") if not sections.get(s)]
    if missing:
        return None, Skip(rid, "missing_field", f"{name}: no {', '.join('[' + m + ']' for m in missing)}")
    seq = b"".join(sections["PRIMARY"]).decode("ascii", "replace")
    try:
        tertiary = _matrix(sections, "TERTIARY", parsed.get("TERTIARY"))
        evo = _matrix(sections, "EVOLUTIONARY", parsed.get("EVOLUTIONARY"))
    except _Bad as bad:
        return None, Skip(rid, bad.reason, f"{name}: {bad}")
    if evo is not None and evo.shape[0] not in (20, 21):
        return None, Skip(rid, "wrong_row_count", f"[EVOLUTIONARY] has {evo.shape[0]} rows, expected 20 or 21")
    pssm = None if evo is None else evo[:20].T
    mask = np.frombuffer(b"".join(sections["MASK"]), np.uint8) == ord("+")
    return _record(rid, seq, pssm, tertiary, mask, f"proteinnet:{name}", min_length)


def _parse_batch(pending: list[dict], name: str, min_length: int):
    lines = [line for s in pending for key in _NUMERIC for line in s.get(key, ())]
    blob = b"\n".join(lines)
    if any(c in blob for c in (b" ", b"\r", b"\x0b", b"\x0c")):  # other separators than tabs: count exactly
        counts = [len(line.split()) for line in lines]
    else:
        counts = [line.count(b"\t") + 1 for line in lines]
    values: np.ndarray | None
    try:
        values = _floats(blob)
        values = values if len(values) == sum(counts) else None
    except ValueError:
        values = None  # some record holds a non-number: each record on its own finds which
    pos = li = 0
    for s in pending:
        parsed = {}
        for key in _NUMERIC:
            c = counts[li : li + len(s.get(key, ()))]
            li += len(c)
            parsed[key] = None if values is None else (values[pos : pos + sum(c)], c)
            pos += sum(c)
        yield _text_record(s, parsed, name, min_length)


def iter_text(path: Path, min_length: int = MIN_LENGTH):
    """Stream (record, None) / (None, Skip) from a ProteinNet text file."""
    name = shown(Path(path).name)
    pending: list[dict] = []
    sections: dict[str, list[bytes]] = {}
    size, current, blank = 0, None, True
    with open(path, "rb") as fh:
        for raw in fh:
            line = raw.strip()
            if (line.startswith(b"[ID]") and "ID" in sections) or (not line and sections):
                pending.append(sections)  # a record ends at a blank line or at the next [ID]
                size += sum(len(x) for k in _NUMERIC for x in sections.get(k, ()))
                sections, current = {}, None
                if size >= BATCH_BYTES:
                    yield from _parse_batch(pending, name, min_length)
                    pending, size = [], 0
            blank = not line
            if blank:
                continue
            if line[:1] == b"[" and line[-1:] == b"]":
                current = line[1:-1].decode("ascii", "replace")
                sections[current] = []
            elif current is not None:
                sections[current].append(line)
    cut = bool(sections) and not blank  # the last record has no blank line after it
    if sections:
        pending.append(sections)
    last = list(_parse_batch(pending, name, min_length))
    if cut and last and last[-1][1] is not None:
        skip = last[-1][1]
        last[-1] = (
            None,
            Skip(
                skip.where,
                "truncated_text",
                f"{name}: the last record does not end with a "
                f"blank line (file cut short?): {skip.reason} {skip.detail}".strip(),
            ),
        )
    yield from last


def read_text(path: Path, min_length: int = MIN_LENGTH):
    records, skips = [], []
    for rec, skip in iter_text(path, min_length):
        (records.append(rec) if rec else skips.append(skip))
    return records, skips


# ---- TFRecord --------------------------------------------------------------------------------

_KINDS = {"primary": "int64_list", "evolutionary": "float_list", "tertiary": "float_list", "mask": "float_list"}


def _steps(example, name: str) -> list:
    feats = example.feature_lists.feature_list[name].feature
    kinds = {f.WhichOneof("kind") for f in feats} - {None}
    if kinds - {_KINDS[name]}:
        raise _Bad("wrong_dtype", f"feature {name!r} holds {sorted(kinds)}, expected {_KINDS[name]}")
    return [getattr(f, _KINDS[name]).value for f in feats]


def _floats_of(steps: list, width, name: str) -> np.ndarray:
    if any(len(s) not in width for s in steps):
        raise _Bad("wrong_row_count", f"{name} steps must hold {' or '.join(map(str, width))} values")
    n = len(steps[0]) if steps else width[0]
    return np.fromiter(itertools.chain.from_iterable(steps), np.float64, count=n * len(steps)).reshape(-1, n)


def _tfrecord_example(raw: bytes, name: str, index: int, min_length: int):
    import tensorflow as tf

    where = rid = f"{name}#{index}"
    try:
        example = tf.train.SequenceExample.FromString(raw)
    except Exception as exc:  # protobuf DecodeError
        return None, Skip(where, "bad_tfrecord", str(exc)[:200])
    try:
        ctx = example.context.feature
        if "id" in ctx and ctx["id"].WhichOneof("kind") not in ("bytes_list", None):
            kind = ctx["id"].WhichOneof("kind")
            raise _Bad("wrong_dtype", f"{where}: context 'id' holds {kind}, expected bytes_list")
        ids = ctx["id"].bytes_list.value if "id" in ctx else []
        rid = ids[0].decode("utf-8", "replace") if ids else where
        missing = (["id"] if not ids else []) + [
            f for f in ("primary", "tertiary", "mask") if f not in example.feature_lists.feature_list
        ]
        if missing:
            return None, Skip(rid, "missing_field", f"{where}: no {', '.join(missing)}")
        primary = [v[0] if len(v) else -1 for v in _steps(example, "primary")]
        if any(not 0 <= p < 20 for p in primary):
            return None, Skip(rid, "bad_sequence", "primary values outside 0-19")
        seq = "".join(STANDARD_AA[p] for p in primary)
        tertiary = _floats_of(_steps(example, "tertiary"), (3,), "tertiary").T
        mask = np.array([len(v) > 0 and v[0] > 0.5 for v in _steps(example, "mask")], bool)
        pssm = None
        if "evolutionary" in example.feature_lists.feature_list:
            pssm = _floats_of(_steps(example, "evolutionary"), (20, 21), "evolutionary")[:, :20]
        return _record(rid, seq, pssm, tertiary, mask, f"proteinnet:{name}", min_length)
    except _Bad as bad:
        return None, Skip(rid, bad.reason, str(bad))
    except (TypeError, ValueError, IndexError, OverflowError) as exc:  # anything else malformed
        return None, Skip(rid, "bad_tfrecord", f"{where}: {type(exc).__name__}: {str(exc)[:160]}")


def read_tfrecord(path: Path, min_length: int = MIN_LENGTH):
    """Stream a TFRecord file; corruption is a skip, an I/O failure an OSError (never cached)."""
    import tensorflow as tf

    name, records, skips, index = shown(Path(path).name), [], [], 0
    try:
        for raw in tf.data.TFRecordDataset(os.fsencode(path)).as_numpy_iterator():
            rec, skip = _tfrecord_example(raw, name, index, min_length)
            (records.append(rec) if rec else skips.append(skip))
            index += 1
    except tf.errors.DataLossError:
        if index == 0:
            skips.append(
                Skip(shown(path), "not_proteinnet", "neither ProteinNet text (starting with [ID]) nor a TFRecord file")
            )
        else:
            skips.append(
                Skip(f"{name}#{index}", "truncated_tfrecord", f"corrupted or truncated after {index} record(s)")
            )
    except tf.errors.OpError as exc:
        raise OSError(f"reading {shown(path)}: {exc.message[:200]}") from None
    if index == 0 and not skips:
        skips.append(Skip(shown(path), "empty_file"))
    return records, skips


def read_file(path: Path, min_length: int = MIN_LENGTH):
    """One ProteinNet file of either format (detected from its content) → (records, skips)."""
    path = Path(path)
    if path.stat().st_size == 0:
        return [], [Skip(shown(path), "empty_file")]
    return read_text(path, min_length) if is_text(path) else read_tfrecord(path, min_length)
