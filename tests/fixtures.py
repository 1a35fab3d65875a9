"""Test fixtures written by our own code from the embedded set: PDB, mmCIF, ProteinNet text and
TFRecord files, plus the hostile files users feed a sweeper."""

from __future__ import annotations

import gzip
from pathlib import Path

import gemmi
import numpy as np

from protstruct.data.records import RESIDUE_NAMES, STANDARD_AA, ProteinRecord

THREE = RESIDUE_NAMES


def atom_line(serial, name, resname, chain, resnum, xyz, het=False, element=None):
    x, y, z = xyz
    rec = "HETATM" if het else "ATOM  "
    return (
        f"{rec}{serial:5d} {name:<4} {resname:>3} {chain}{resnum:4d}    "
        f"{x:8.3f}{y:8.3f}{z:8.3f}{1.0:6.2f}{20.0:6.2f}          {(element or name[0]):>2}"
    )


def pdb_text(record: ProteinRecord, chain: str = "A", models: int = 1, entry: str | None = None) -> str:
    """CA-only PDB of the observed residues; masked positions become numbering gaps."""
    out = [f"HEADER    {'PROTSTRUCT TEST FIXTURE':<40}{'01-JAN-00':9}   {entry:4}"] if entry else []
    for m in range(1, models + 1):
        if models > 1:
            out.append(f"MODEL     {m:4d}")
        for i, (aa, xyz, ok) in enumerate(zip(record.sequence, record.ca, record.mask)):
            if ok:
                out.append(atom_line(len(out) + 1, "CA", THREE.get(aa, "UNK"), chain, i + 1, xyz + 0.1 * (m - 1)))
        out.append("TER")
        if models > 1:
            out.append("ENDMDL")
    return "\n".join([*out, "END"]) + "\n"


def write_pdb(record, path: Path, **kw) -> Path:
    text = pdb_text(record, **kw)
    path.write_bytes(gzip.compress(text.encode(), mtime=0) if path.name.endswith(".gz") else text.encode())
    return path


def write_cif(record, path: Path) -> Path:
    tmp = path.with_suffix(".tmp.pdb")
    write_pdb(record, tmp)
    st = gemmi.read_structure(str(tmp))
    st.setup_entities()
    st.make_mmcif_document().write_file(str(path))
    tmp.unlink()
    return path


def fake_pssm(record) -> np.ndarray:
    """A deterministic 'profile' (one-hot of the residue, smoothed) — the format, not biology."""
    pssm = np.full((record.length, 20), 0.01, np.float64)
    for i, aa in enumerate(record.sequence):
        if aa in STANDARD_AA:
            pssm[i, STANDARD_AA.index(aa)] = 0.81
    return pssm


def proteinnet_text(record, pssm_rows: int = 21, rid: str | None = None) -> str:
    pssm = fake_pssm(record)
    evo = [pssm[:, k] for k in range(20)] + ([np.ones(record.length)] if pssm_rows == 21 else [])
    pm = np.repeat(np.where(record.mask[:, None], record.ca, 0.0) * 100.0, 3, axis=0)  # N, CA, C ← CA
    lines = ["[ID]", rid or record.id, "[PRIMARY]", record.sequence, "[EVOLUTIONARY]"]
    lines += ["\t".join(f"{v:g}" for v in row) for row in evo[:pssm_rows]]
    lines += ["[TERTIARY]"] + ["\t".join(f"{v:.1f}" for v in pm[:, k]) for k in range(3)]
    lines += ["[MASK]", "".join("+" if m else "-" for m in record.mask), ""]
    return "\n".join(lines) + "\n"


def sequence_example(record, drop: tuple = (), evo_width: int = 20, rid: str | None = None) -> bytes:
    import tensorflow as tf

    def floats(values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=list(map(float, values))))

    def ints(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=list(map(int, values))))

    pm = np.repeat(np.where(record.mask[:, None], record.ca, 0.0) * 100.0, 3, axis=0)
    pssm = np.concatenate([fake_pssm(record), np.ones((record.length, 1))], 1)[:, :evo_width]
    lists = {
        "primary": [ints([STANDARD_AA.index(a) if a in STANDARD_AA else 0]) for a in record.sequence],
        "evolutionary": [floats(row) for row in pssm],
        "tertiary": [floats(row) for row in pm],
        "mask": [floats([float(m)]) for m in record.mask],
    }
    context = (
        {}
        if "id" in drop
        else {"id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[(rid or record.id).encode()]))}
    )
    example = tf.train.SequenceExample(
        context=tf.train.Features(feature=context),
        feature_lists=tf.train.FeatureLists(
            feature_list={k: tf.train.FeatureList(feature=v) for k, v in lists.items() if k not in drop}
        ),
    )
    return example.SerializeToString()


def write_tfrecord(path: Path, payloads: list[bytes]) -> Path:
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path)) as writer:
        for p in payloads:
            writer.write(p)
    return path


def wrong_dtype_example(record, feature: str, rid: str) -> bytes:
    """A SequenceExample whose ``feature`` holds the wrong protobuf kind (floats ↔ ints, or bytes)."""
    import tensorflow as tf

    example = tf.train.SequenceExample.FromString(sequence_example(record, rid=rid))
    if feature == "id":
        example.context.feature["id"].Clear()
        example.context.feature["id"].int64_list.value.append(7)
        return example.SerializeToString()
    steps = example.feature_lists.feature_list[feature].feature
    for step in steps:
        values = list(step.int64_list.value) or list(step.float_list.value)
        step.Clear()
        if feature == "primary":
            step.float_list.value.extend(float(v) for v in values)
        else:
            step.bytes_list.value.extend(repr(v).encode() for v in values)
    return example.SerializeToString()


class PicklePayload:
    """Unpickling this creates ``marker``: proof that a cache entry was unpickled (it must never be)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))
