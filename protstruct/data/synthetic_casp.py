"""``python -m protstruct.data.synthetic_casp OUT --records N --thinning 30 [50 ...]`` — a synthetic
ProteinNet casp folder for tests and benchmarks: not biology, the release's layout and format.

Text (``--format text``): ``training_<N>`` per thinning (nested: every record of training_30 is in
training_50), ``validation`` (ids like ``70#1ABC_1_A``: the identity bin NN of ``NN#`` cycling through 10-90) and
``testing`` (ids ``TBM#T0001`` / ``FM#T0002``). TFRecord (``--format tfrecord``): the same records as
shards ``training/<N>/1, 2, …``, ``validation/1``, ``testing/1``. Records: L uniform in 60-300, a
C-alpha trace built residue by residue with 3.8 Å steps (helix, strand and coil pseudo-angles), N
and C atoms beside each C-alpha, terminal and internal gaps in the mask, and a 20-row profile peaked
on the residue plus an information row, written at full float precision like the release (~400
bytes per residue). Records are generated and written one at a time: 10⁵ records need no memory.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any, TextIO

import numpy as np

AA = "ACDEFGHIKLMNPQRSTVWY"
BACKGROUND = np.array(
    [
        8.25,
        1.37,
        5.45,
        6.75,
        3.86,
        7.07,
        2.27,
        5.96,
        5.84,
        9.66,
        2.42,
        4.06,
        4.70,
        3.93,
        5.53,
        6.56,
        5.34,
        6.87,
        1.08,
        2.92,
    ]
)
BACKGROUND /= BACKGROUND.sum()
FRACTION = {30: 0.40, 50: 0.47, 70: 0.50, 90: 0.53, 95: 0.54, 100: 1.0}  # of training_100, roughly CASP12
BINS = (10, 20, 30, 40, 50, 70, 90)
SECONDARY = {"H": (1.59, 0.87), "E": (2.09, -2.97)}  # CA pseudo bond angle, torsion (radians)


def _trace(rng: np.random.Generator, n: int) -> np.ndarray:
    """A C-alpha chain (n, 3) in Å: consecutive atoms 3.8 Å apart, helix/strand/coil segments."""
    angles, torsions, i = np.empty(n), np.empty(n), 0
    while i < n:
        kind, length = rng.choice(["H", "E", "C"], p=[0.4, 0.25, 0.35]), int(rng.integers(4, 16))
        theta, phi = SECONDARY.get(kind, (None, None))
        for j in range(i, min(n, i + length)):
            angles[j] = theta + rng.normal(0, 0.05) if theta else rng.uniform(1.5, 2.4)
            torsions[j] = phi + rng.normal(0, 0.1) if phi else rng.uniform(-math.pi, math.pi)
        i += length
    pts = [(0.0, 0.0, 0.0), (3.8, 0.0, 0.0), (3.8 + 3.8 * math.cos(1.0), 3.8 * math.sin(1.0), 0.0)]
    for k in range(3, n):
        (ax, ay, az), (bx, by, bz), (cx, cy, cz) = pts[-3], pts[-2], pts[-1]
        bc = (cx - bx, cy - by, cz - bz)
        nb = math.sqrt(sum(v * v for v in bc))
        bc = (bc[0] / nb, bc[1] / nb, bc[2] / nb)
        ab = (bx - ax, by - ay, bz - az)
        nx, ny, nz = ab[1] * bc[2] - ab[2] * bc[1], ab[2] * bc[0] - ab[0] * bc[2], ab[0] * bc[1] - ab[1] * bc[0]
        nn = math.sqrt(nx * nx + ny * ny + nz * nz) or 1.0
        nx, ny, nz = nx / nn, ny / nn, nz / nn
        mx, my, mz = ny * bc[2] - nz * bc[1], nz * bc[0] - nx * bc[2], nx * bc[1] - ny * bc[0]
        t, p = angles[k], torsions[k]
        d = (-3.8 * math.cos(t), 3.8 * math.sin(t) * math.cos(p), 3.8 * math.sin(t) * math.sin(p))
        pts.append(
            (
                cx + d[0] * bc[0] + d[1] * mx + d[2] * nx,
                cy + d[0] * bc[1] + d[1] * my + d[2] * ny,
                cz + d[0] * bc[2] + d[1] * mz + d[2] * nz,
            )
        )
    ca = np.array(pts[:n])
    return ca - ca.mean(0)


def record(rng: np.random.Generator, rid: str):
    """→ (id, sequence, evolutionary (21, L), tertiary (3, 3L) pm, mask (L,) bool)."""
    n = int(rng.integers(60, 301))
    aa = rng.choice(20, size=n, p=BACKGROUND)
    profile = rng.gamma(0.3, 1.0, (n, 20)) * BACKGROUND
    profile[np.arange(n), aa] += rng.uniform(0.5, 3.0, n) * profile.sum(1)
    profile /= profile.sum(1, keepdims=True)
    profile[profile < 0.005] = 0.0
    info = rng.uniform(0.2, 1.0, n)
    ca = _trace(rng, n)
    mask = np.ones(n, bool)
    mask[: int(rng.integers(0, 8))] = False
    mask[n - int(rng.integers(0, 8)) :] = False
    if rng.random() < 0.3:
        start = int(rng.integers(10, n - 10))
        mask[start : start + int(rng.integers(1, 6))] = False
    atoms = np.repeat(ca, 3, axis=0) + np.tile([[-1.2, 0.6, 0.3], [0, 0, 0], [1.1, -0.5, 0.4]], (n, 1))
    atoms[np.repeat(~mask, 3)] = 0.0
    return rid, "".join(AA[a] for a in aa), np.vstack([profile.T, info]), atoms.T * 100.0, mask


def text(rec) -> str:
    rid, seq, evo, tertiary, mask = rec

    def fmt(v: float) -> str:
        return "0" if v == 0 else repr(v)

    lines = ["[ID]", rid, "[PRIMARY]", seq, "[EVOLUTIONARY]"]
    lines += ["\t".join(map(fmt, row.tolist())) for row in evo]
    lines += ["[TERTIARY]"] + ["\t".join(f"{v:.1f}" for v in row.tolist()) for row in tertiary]
    lines += ["[MASK]", "".join("+" if m else "-" for m in mask)]
    return "\n".join(lines) + "\n\n"


def sequence_example(rec) -> bytes:
    import tensorflow as tf

    rid, seq, evo, tertiary, mask = rec

    def floats(v: list[float]):
        return tf.train.Feature(float_list=tf.train.FloatList(value=v))

    lists = {
        "primary": [tf.train.Feature(int64_list=tf.train.Int64List(value=[AA.index(a)])) for a in seq],
        "evolutionary": [floats(row) for row in evo[:20].T.tolist()],
        "tertiary": [floats(row) for row in tertiary.T.tolist()],
        "mask": [floats([float(m)]) for m in mask],
    }
    context = {"id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[rid.encode()]))}
    feature_lists = {k: tf.train.FeatureList(feature=v) for k, v in lists.items()}
    return tf.train.SequenceExample(
        context=tf.train.Features(feature=context),
        feature_lists=tf.train.FeatureLists(feature_list=feature_lists),
    ).SerializeToString()


class _Writer:
    """One output set (a text file, or TFRecord shards of ``shard`` records in a folder)."""

    def __init__(self, out: Path, name: str, fmt: str, shard: int):
        self.fmt, self.shard, self.count = fmt, shard, 0
        self.text_file: TextIO | None = None  # the text file, open from here to close()
        self.shard_writer: Any = None  # the current shard's tf.io.TFRecordWriter
        self.path = out / name if fmt == "text" else out / name.replace("training_", "training/")
        if fmt == "text":
            self.text_file = open(self.path, "w")  # noqa: SIM115 - held across write() calls, closed by close()
        else:
            self.path.mkdir(parents=True, exist_ok=True)

    def write(self, rec) -> None:
        if self.fmt == "text":
            if self.text_file is None:
                raise ValueError(f"{self.path}: written after close()")
            self.text_file.write(text(rec))
        else:
            import tensorflow as tf

            if self.count % self.shard == 0:
                self.close()
                self.shard_writer = tf.io.TFRecordWriter(str(self.path / str(self.count // self.shard + 1)))
            self.shard_writer.write(sequence_example(rec))
        self.count += 1

    def close(self) -> None:
        if self.text_file is not None:
            self.text_file.close()
            self.text_file = None
        if self.shard_writer is not None:
            self.shard_writer.close()
            self.shard_writer = None


def _pdb_code(i: int) -> str:
    chars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return "".join(chars[(i // 36**k) % 36] for k in (3, 2, 1, 0))


def write(
    out: Path,
    records: int,
    thinnings=(30,),
    fmt: str = "text",
    seed: int = 0,
    validation: int | None = None,
    testing: int | None = None,
    shard: int = 1000,
) -> dict:
    """Write the folder; → {set name: record count}. ``records`` is the size of the largest thinning."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    top = max(FRACTION[t] for t in thinnings)
    writers = {t: _Writer(out, f"training_{t}", fmt, shard) for t in sorted(thinnings)}
    for i in range(records):
        rec = record(rng, f"{_pdb_code(36**3 + i)}_1_A")
        u = 0.0 if i == 0 else rng.random()  # nested thinnings: record i is in thinning t when u < its share
        for t, w in writers.items():
            if u < FRACTION[t] / top:
                w.write(rec)
    sets = {f"training_{t}": w for t, w in writers.items()}
    sets["validation"] = _Writer(out, "validation", fmt, shard)
    for k in range(validation if validation is not None else max(14, records // 20)):
        sets["validation"].write(record(rng, f"{BINS[k % len(BINS)]}#{_pdb_code(36**4 - 1 - k)}_1_A"))
    sets["testing"] = _Writer(out, "testing", fmt, shard)
    for k in range(testing if testing is not None else max(10, records // 40)):
        sets["testing"].write(record(rng, f"{'TBM' if k % 2 == 0 else 'FM'}#T{k + 1:04d}"))
    for w in sets.values():
        w.close()
    return {name: w.count for name, w in sets.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m protstruct.data.synthetic_casp",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("out", type=Path, help="the casp folder to write (created)")
    p.add_argument("--records", type=int, required=True, help="training records of the largest thinning")
    p.add_argument("--thinning", type=int, nargs="+", default=[30], choices=sorted(FRACTION))
    p.add_argument("--format", choices=["text", "tfrecord"], default="text")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--validation", type=int, default=None, help="validation records (default records/20, >= 14)")
    p.add_argument("--testing", type=int, default=None, help="testing records (default records/40, >= 10)")
    p.add_argument("--shard-records", type=int, default=1000, help="records per TFRecord shard")
    args = p.parse_args(argv)
    if args.records < 1:
        p.error("--records must be at least 1")
    counts = write(
        args.out, args.records, args.thinning, args.format, args.seed, args.validation, args.testing, args.shard_records
    )
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"{args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + f" records; {size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
