"""ProteinRecord lists → tf.data pipelines of (features, target) crops.

Targets are ``(crop, crop, 2)``: channel 0 the C-alpha distances in Å, channel 1 the pair mask
(1 where both residues have coordinates and lie inside the chain). Training takes a fresh random
window per protein per epoch (seeded, stateless, so runs repeat exactly); evaluation takes the
deterministic *centred* window (start = (L - crop) // 2; shorter chains are padded), the same for
every variant, so comparisons are paired per protein.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from protstruct.data.records import ProteinRecord


def _ragged(records: list[ProteinRecord], needs=frozenset()) -> dict:
    """Per-residue arrays of all records as ragged tensors: ca, mask, and what features need."""
    if not records:
        raise ValueError("no proteins to build a dataset from (is a split empty? see data.limit)")
    arrays = {"ca": [r.ca for r in records], "mask": [r.mask for r in records]}
    if "aatype" in needs:
        arrays["aatype"] = [r.aatype() for r in records]
    if "pssm" in needs:
        lacking = [r.id for r in records if r.pssm is None]
        if lacking:
            raise ValueError(f"features: PSSM pair features need a source with PSSMs (data=proteinnet); "
                             f"{len(lacking)} record(s) have none, e.g. {lacking[0]}")
        arrays["pssm"] = [r.pssm for r in records]
    lengths = [r.length for r in records]
    return {k: tf.RaggedTensor.from_row_lengths(np.concatenate(v), lengths) for k, v in arrays.items()}


def _window(protein: dict, start, crop_size: int) -> dict:
    """Slice residues [start, start + crop) of every array and pad to crop_size."""
    length = tf.shape(protein["ca"])[0]
    stop = tf.minimum(start + crop_size, length)
    pad = crop_size - (stop - start)
    window = {"inside": tf.pad(tf.ones([stop - start], tf.bool), [[0, pad]])}
    for key, value in protein.items():
        padding = [[0, pad]] + [[0, 0]] * (len(value.shape) - 1)
        window[key] = tf.pad(value[start:stop], padding, constant_values=-1 if key == "aatype" else 0)
    return window


def _example(protein: dict, start, crop_size: int, features):
    window = _window(protein, start, crop_size)
    ca, observed = window["ca"], window["mask"]
    diff = ca[:, None, :] - ca[None, :, :]
    pair = observed[:, None] & observed[None, :]
    # the sqrt of 0 has an infinite gradient; targets carry no gradient but keep them finite anyway
    dist = tf.where(pair, tf.sqrt(tf.reduce_sum(diff * diff, -1) + 1e-12), 0.0)
    target = tf.stack([dist, tf.cast(pair, tf.float32)], -1)
    x = features(window)
    x.set_shape([crop_size, crop_size, features.channels])
    target.set_shape([crop_size, crop_size, 2])
    return x, target


def centred_start(length: int, crop_size: int) -> int:
    return max(length - crop_size, 0) // 2


def train_dataset(records, crop_size: int, batch_size: int, features, seed: int) -> tf.data.Dataset:
    data = tf.data.Dataset.from_tensor_slices(_ragged(records, features.needs))
    data = data.shuffle(len(records), seed=seed, reshuffle_each_iteration=True)
    crop_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    data = tf.data.Dataset.zip((data, crop_seeds))

    def random_crop(protein, crop_seed):
        max_start = tf.maximum(tf.shape(protein["ca"])[0] - crop_size, 0)
        start = tf.random.stateless_uniform([], crop_seed, 0, max_start + 1, dtype=tf.int32)
        return _example(protein, start, crop_size, features)

    data = data.map(random_crop, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def eval_dataset(records, crop_size: int, batch_size: int, features) -> tf.data.Dataset:
    starts = tf.constant([centred_start(r.length, crop_size) for r in records], tf.int32)
    data = tf.data.Dataset.from_tensor_slices((_ragged(records, features.needs), starts))
    data = data.map(lambda protein, s: _example(protein, s, crop_size, features),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return data.cache().batch(batch_size).prefetch(tf.data.AUTOTUNE)


def eval_targets(records, crop_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The evaluation windows' true distances and pair masks as numpy, (N, crop, crop) each."""
    dist = np.zeros((len(records), crop_size, crop_size), np.float32)
    pair = np.zeros_like(dist, dtype=bool)
    for i, r in enumerate(records):
        s = centred_start(r.length, crop_size)
        n = min(crop_size, r.length - s)
        dist[i, :n, :n] = r.distance_matrix()[s:s + n, s:s + n]
        pair[i, :n, :n] = r.pair_mask()[s:s + n, s:s + n]
    return dist, pair


def window_features(record: ProteinRecord, start: int, crop_size: int, features) -> np.ndarray:
    """The model input for one window of one record (prediction time), as numpy."""
    protein = {k: v[0] for k, v in _ragged([record], features.needs).items()}
    x, _ = _example(protein, tf.constant(start, tf.int32), crop_size, features)
    return x.numpy()
