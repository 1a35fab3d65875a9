"""ProteinRecord lists → tf.data pipelines of (features, target) crops.

Targets are ``(crop, crop, 2)``: channel 0 the C-alpha distances in Å, channel 1 the pair mask
(1 where both residues have coordinates and lie inside the chain). Training takes a fresh random
window per protein per epoch (stateless, seeded by (seed, epoch), so runs repeat exactly and a
resumed run continues the same stream); evaluation takes the
deterministic *centred* window (start = (L - crop) // 2; shorter chains are padded), the same for
every variant, so comparisons are paired per protein.

Crops are cut a whole batch at a time: per-residue arrays of all proteins are concatenated once
(``_Packed``) and a batch's windows are one gather, so the input pipeline costs a few large ops per
step instead of dozens of small ones per protein.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from protstruct.data.records import ProteinRecord, aatype_codes


class _Packed:
    """All records' per-residue arrays, concatenated, with each record's offset and length."""

    def __init__(self, records: list[ProteinRecord], needs=frozenset()):
        if not records:
            raise ValueError("no proteins to build a dataset from (is a split empty? see data.limit)")
        lengths = np.array([r.length for r in records], np.int32)
        self.lengths = tf.constant(lengths)
        self.offsets = tf.constant(np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int32))
        if "pssm" in needs:
            lacking = [r.id for r in records if r.pssm is None]
            if lacking:
                raise ValueError(
                    f"features: PSSM pair features need a source with PSSMs (data=proteinnet); "
                    f"{len(lacking)} record(s) have none, e.g. {lacking[0]}"
                )
        mask = np.concatenate([r.mask for r in records])
        build = {
            "ca": lambda: _concat([np.where(r.mask[:, None], r.ca, 0) for r in records], np.float32),
            "mask": lambda: mask,
        }  # unobserved coordinates zeroed: masked targets are exactly 0, never NaN
        if "aatype" in needs:
            build["aatype"] = lambda: aatype_codes("".join(r.sequence for r in records))
        if "pssm" in needs:
            build["pssm"] = lambda: _concat([r.pssm for r in records if r.pssm is not None], np.float32)
        self.arrays = {key: _host_array(make()) for key, make in build.items()}  # one array at a time
        self.count = len(records)

    def windows(self, index, start, crop_size: int) -> dict:
        """Residues [start, start + crop) of proteins ``index`` (both (B,)), padded: (B, crop, …)."""
        pos = start[:, None] + tf.range(crop_size)[None, :]
        inside = pos < tf.gather(self.lengths, index)[:, None]
        flat = tf.where(inside, tf.gather(self.offsets, index)[:, None] + pos, 0)
        window = {"inside": inside}
        for key, values in self.arrays.items():
            got = tf.gather(values.value(), flat)  # a dense read: a sparse one may copy the whole variable
            keep = tf.reshape(inside, tf.concat([tf.shape(inside), tf.ones([tf.rank(got) - 2], tf.int32)], 0))
            window[key] = tf.where(keep, got, tf.cast(-1 if key == "aatype" else 0, got.dtype))
        return window


_ALIGN = 64  # bytes: TensorFlow reads a buffer in place only when it is this aligned


def _concat(parts: list[np.ndarray], dtype) -> np.ndarray:
    """``np.concatenate(parts)`` as ``dtype``, written straight into a 64-byte-aligned buffer."""
    rows = sum(len(p) for p in parts)
    shape = (rows, *parts[0].shape[1:])
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.empty(size + _ALIGN, np.uint8)
    offset = -raw.ctypes.data % _ALIGN
    out = raw[offset : offset + size].view(dtype).reshape(shape)
    np.concatenate(parts, out=out, casting="same_kind")
    return out


def _host_array(values: np.ndarray) -> tf.Variable:
    """``values`` held once, in host memory, as a variable every pipeline reads in place. A
    ``tf.constant`` of 1.44 GB of PSSM rows kept 2.8 GB and a tf.data function capturing it copied
    it again; an aligned array handed over through DLPack becomes the variable's buffer itself."""
    with tf.device("/CPU:0"):
        if values.dtype != np.bool_ and values.ctypes.data % _ALIGN == 0 and values.flags.c_contiguous:
            return tf.Variable(tf.experimental.dlpack.from_dlpack(values.__dlpack__()), trainable=False)
        return tf.Variable(values, trainable=False)


def _examples(window: dict, crop_size: int, features):
    ca, observed = window["ca"], tf.cast(window["mask"] & window["inside"], tf.float32)
    pair = observed[..., :, None] * observed[..., None, :]
    # one (…, L, L) plane per axis: half the time of an (…, L, L, 3) difference tensor, same sums
    squared = 0.0
    for axis in range(3):
        coord = ca[..., axis]
        delta = coord[..., :, None] - coord[..., None, :]
        squared += delta * delta
    # the sqrt of 0 has an infinite gradient; targets carry no gradient but keep them finite anyway
    target = tf.stack([tf.sqrt(squared + 1e-12) * pair, pair], -1)
    x = features(window)
    x.set_shape([None, crop_size, crop_size, features.channels])
    target.set_shape([None, crop_size, crop_size, 2])
    return x, target


def dataset_options() -> tf.data.Options:
    """The tf.data options of every protstruct dataset. Autotuning stays off: its model thread
    sleeps with exponential backoff (10 ms, 20 ms, … 5.12 s) and an iterator's deletion waits for
    it to wake, so an epoch of 3.4 s came back from ``fit`` at 5.11 s, 10.23 s or 20.47 s (the
    cumulative sleeps; measured with ``make bench``, see experiments/bench/README.md)."""
    options = tf.data.Options()
    options.autotune.enabled = False
    if not tf.config.list_physical_devices("GPU"):
        options.threading.private_threadpool_size = 1
    return options


def _finish(data: tf.data.Dataset, fn) -> tf.data.Dataset:
    """Map ``fn`` over batches. On a CPU-only machine the (cheap, batched) crop work runs inline
    between steps: background tf.data threads compete with TensorFlow's own threads for the few
    cores and make steps straggle. With a GPU, crops are prepared in the background while the
    device computes."""
    if tf.config.list_physical_devices("GPU"):
        data = data.map(fn, num_parallel_calls=2, deterministic=True).prefetch(2)
    else:
        data = data.map(fn)
    return data.with_options(dataset_options())


def in_memory_dataset(x: np.ndarray, y: np.ndarray, batch_size: int) -> tf.data.Dataset:
    """Fixed (features, target) arrays as batches, with the same options as the crop pipelines."""
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size).with_options(dataset_options())


def centred_start(length: int, crop_size: int) -> int:
    return max(length - crop_size, 0) // 2


def train_dataset(
    records,
    crop_size: int,
    batch_size: int,
    features,
    seed: int,
    epochs: int = 1,
    first_epoch: int = 0,
    clusters=None,
    steps: int | None = None,
) -> tf.data.Dataset:
    """Epochs ``first_epoch`` … ``epochs - 1`` of random training crops, one after the other. Epoch
    e's draw, shuffle and windows depend only on (seed, e), so a job resumed at epoch e sees exactly
    what it would have seen.

    ``clusters`` (one integer label per record, e.g. from :mod:`protstruct.data.clusters`): each
    epoch draws one member of every cluster, so large families do not dominate; without it, every
    record once. ``steps`` caps the batches of an epoch (see :func:`epoch_steps`)."""
    packed = _Packed(records, features.needs)
    draw = None if clusters is None else _ClusterDraw(clusters, packed.count)
    steps = epoch_steps(len(records), batch_size, clusters, steps)
    base_seed = tf.constant([int(seed), 0], tf.int64)

    def one_epoch(epoch):
        epoch_seed = tf.random.experimental.stateless_fold_in(base_seed, epoch)
        chosen = tf.range(packed.count, dtype=tf.int32) if draw is None else draw(epoch_seed)
        order = tf.random.experimental.stateless_shuffle(chosen, epoch_seed)
        batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size).take(steps)
        return batches.enumerate().map(
            lambda step, index: (index, tf.random.experimental.stateless_fold_in(epoch_seed, step))
        )

    data = tf.data.Dataset.range(first_epoch, epochs).flat_map(one_epoch)

    def random_crops(index, crop_seed):
        room = tf.maximum(tf.gather(packed.lengths, index) - crop_size, 0) + 1
        u = tf.random.stateless_uniform(tf.shape(index), crop_seed)
        start = tf.minimum(tf.cast(u * tf.cast(room, tf.float32), tf.int32), room - 1)
        return _examples(packed.windows(index, start, crop_size), crop_size, features)

    return _finish(data, random_crops)


class _ClusterDraw:
    """One random member of every cluster, as record indices (a new draw per epoch seed)."""

    def __init__(self, clusters, count: int):
        labels = np.asarray(clusters)
        if labels.shape != (count,) or labels.dtype.kind not in "iu":
            raise ValueError(
                f"clusters: expected one integer label per training record ({count}), "
                f"got shape {labels.shape} and dtype {labels.dtype}"
            )
        by_cluster = np.argsort(labels, kind="stable")
        _, starts, sizes = np.unique(labels[by_cluster], return_index=True, return_counts=True)
        self.members = tf.constant(by_cluster.astype(np.int32))
        self.starts = tf.constant(starts.astype(np.int32))
        self.sizes = tf.constant(sizes.astype(np.int32))

    def __call__(self, epoch_seed):
        draw_seed = tf.random.experimental.stateless_fold_in(epoch_seed, -1)
        u = tf.random.stateless_uniform(tf.shape(self.sizes), draw_seed)
        offset = tf.minimum(tf.cast(u * tf.cast(self.sizes, tf.float32), tf.int32), self.sizes - 1)
        return tf.gather(self.members, self.starts + offset)


def steps_per_epoch(n_records: int, batch_size: int) -> int:
    return -(-n_records // batch_size)


def epoch_steps(n_records: int, batch_size: int, clusters=None, cap: int | None = None) -> int:
    """Batches per training epoch: one pass over the records (or one draw per cluster), at most ``cap``."""
    drawn = n_records if clusters is None else len(np.unique(np.asarray(clusters)))
    steps = steps_per_epoch(drawn, batch_size)
    if cap is not None:
        if int(cap) < 1:
            raise ValueError(f"trainer.steps_per_epoch: expected a positive number of batches or null, got {cap}")
        steps = min(steps, int(cap))
    return steps


EVAL_CACHE_BYTES = 512 * 2**20  # evaluation windows are kept in memory up to this size


def eval_dataset(
    records, crop_size: int, batch_size: int, features, cache_bytes: int = EVAL_CACHE_BYTES
) -> tf.data.Dataset:
    """The centred windows of ``records``, in order. They are computed once and kept in memory when
    they fit in ``cache_bytes`` (features + target, float32), else recomputed on every pass: 1,000
    chains at crop 256 with PSSM features would hold 22 GB."""
    packed = _Packed(records, features.needs)
    starts = tf.constant([centred_start(r.length, crop_size) for r in records], tf.int32)
    data = tf.data.Dataset.range(packed.count).batch(batch_size)

    def centred_crops(index):
        index = tf.cast(index, tf.int32)
        return _examples(packed.windows(index, tf.gather(starts, index), crop_size), crop_size, features)

    data = _finish(data, centred_crops)
    size = len(records) * crop_size * crop_size * (features.channels + 2) * 4
    return data.cache() if size <= cache_bytes else data


def eval_targets(records, crop_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The evaluation windows' true distances and pair masks as numpy, (N, crop, crop) each."""
    dist = np.zeros((len(records), crop_size, crop_size), np.float32)
    pair = np.zeros_like(dist, dtype=bool)
    for i, r in enumerate(records):
        s = centred_start(r.length, crop_size)
        n = min(crop_size, r.length - s)
        dist[i, :n, :n] = r.distance_matrix()[s : s + n, s : s + n]
        pair[i, :n, :n] = r.pair_mask()[s : s + n, s : s + n]
    return dist, pair


def window_features(record: ProteinRecord, start: int, crop_size: int, features) -> np.ndarray:
    """The model input for one window of one record (prediction time), as numpy."""
    packed = _Packed([record], features.needs)
    x, _ = _examples(packed.windows(tf.constant([0]), tf.constant([start]), crop_size), crop_size, features)
    return x.numpy()[0]
