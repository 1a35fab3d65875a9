"""Input features computed per crop inside the tf.data pipeline (the ``features=`` group).

A feature object declares the per-residue inputs it ``needs`` (beyond the chain window itself),
its number of ``channels``, and maps a window dict — ``inside`` (bool, residue within the chain),
``aatype`` (int, -1 in padding), ``pssm`` (float, L×20), each with any leading batch dimensions —
to an ``(…, L, L, channels)`` tensor.
"""
from __future__ import annotations

import tensorflow as tf


class RelativePosition:
    """The seed's input: the |i - j| relative-position matrix, zero outside the chain.

    Zeroing the padded region tells the model where the chain ends; nothing about the target
    distances is ever an input.
    """

    channels = 1
    needs: frozenset = frozenset()

    def __init__(self, scale: float = 1.0):
        self.scale = float(scale)

    def __call__(self, window) -> tf.Tensor:
        inside = window["inside"] if isinstance(window, dict) else window
        idx = tf.range(tf.shape(inside)[-1], dtype=tf.float32)
        rel = tf.abs(idx[:, None] - idx[None, :]) * self.scale
        both = tf.cast(inside[..., :, None] & inside[..., None, :], tf.float32)
        return (rel * both)[..., None]


def _outer_concat(per_residue: tf.Tensor) -> tf.Tensor:
    """(…, L, C) → (…, L, L, 2C): the row residue's features, then the column residue's."""
    dims = tf.shape(per_residue)
    shape = tf.concat([dims[:-1], dims[-2:-1], dims[-1:]], 0)
    rows = tf.broadcast_to(per_residue[..., :, None, :], shape)
    cols = tf.broadcast_to(per_residue[..., None, :, :], shape)
    return tf.concat([rows, cols], -1)


class SequencePairs:
    """One-hot residue types (20 + unknown) of both residues of each pair: 42 channels."""

    channels = 42
    needs = frozenset({"aatype"})

    def __call__(self, window) -> tf.Tensor:
        return _outer_concat(tf.one_hot(window["aatype"], 21))  # padding (-1) → all zeros


class PssmPairs:
    """The PSSM rows (20 values) of both residues of each pair: 40 channels."""

    channels = 40
    needs = frozenset({"pssm"})

    def __call__(self, window) -> tf.Tensor:
        return _outer_concat(window["pssm"])


class Combined:
    """Several feature sets concatenated along channels (the first is usually RelativePosition)."""

    def __init__(self, parts):
        if not parts:
            raise ValueError("features.parts: expected at least one feature set")
        self.parts = list(parts)
        self.channels = sum(p.channels for p in self.parts)
        self.needs = frozenset().union(*(p.needs for p in self.parts))

    def __call__(self, window) -> tf.Tensor:
        return tf.concat([p(window) for p in self.parts], -1)
