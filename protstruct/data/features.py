"""Input features computed per crop inside the tf.data pipeline (the ``features=`` group).

A feature object declares the per-residue inputs it ``needs`` (beyond the chain window itself),
its number of ``channels``, and maps a window dict — ``inside`` (bool, residue within the chain),
``aatype`` (int, -1 in padding), ``pssm`` (float, L×20), each with any leading batch dimensions —
to an ``(…, L, L, channels)`` tensor.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

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


# --- Building a feature object from data (a run's config/resolved.yaml) -----------------------
# A run's artifacts are data, never code: ``features_from_spec`` looks ``_target_`` up in this
# explicit table (no import, no Hydra ``instantiate``) and checks every parameter before calling
# one of protstruct's own constructors.

FEATURE_CLASSES: dict[str, type] = {
    "protstruct.data.features.RelativePosition": RelativePosition,
    "protstruct.data.features.SequencePairs": SequencePairs,
    "protstruct.data.features.PssmPairs": PssmPairs,
    "protstruct.data.features.Combined": Combined,
}
_MAX_DEPTH = 4  # Combined inside Combined…: deeper specs are not something protstruct writes


def _finite_number(value, key: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where}: {key} must be a finite number, got {value!r}")
    return float(value)


def _spec_parts(value, key: str, where: str, depth: int) -> list:
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{where}: {key} must be a non-empty list of feature specs, got {value!r}")
    return [_build(part, f"{key}[{i}]", where, depth + 1) for i, part in enumerate(value)]


# a parameter's checker: (value, key, where, depth) → the checked value, or a ValueError
_Check = Callable[[Any, str, str, int], Any]

# per class: its keyword parameters and the checker of each one's value
_PARAMS: dict[type, dict[str, _Check]] = {
    RelativePosition: {"scale": lambda v, key, where, depth: _finite_number(v, key, where)},
    SequencePairs: {},
    PssmPairs: {},
    Combined: {"parts": _spec_parts},
}
_REQUIRED: dict[type, tuple[str, ...]] = {Combined: ("parts",)}


def _build(spec, key: str, where: str, depth: int):
    if depth > _MAX_DEPTH:
        raise ValueError(f"{where}: {key}: feature specs nested deeper than {_MAX_DEPTH} levels")
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: {key} must be a mapping with a _target_, got {type(spec).__name__}")
    target = spec.get("_target_")
    cls = FEATURE_CLASSES.get(target) if isinstance(target, str) else None
    if cls is None:
        raise ValueError(
            f"{where}: {key}._target_ {target!r} is not one of protstruct's feature "
            f"classes ({', '.join(FEATURE_CLASSES)})"
        )
    allowed = _PARAMS[cls]
    unknown = sorted(str(k) for k in spec if k != "_target_" and k not in allowed)
    if unknown:
        raise ValueError(
            f"{where}: {key}: unknown parameter(s) {unknown} for {target} (expected {sorted(allowed) or 'none'})"
        )
    missing = [name for name in _REQUIRED.get(cls, ()) if name not in spec]
    if missing:
        raise ValueError(f"{where}: {key}: {target} needs {missing}")
    kwargs = {name: check(spec[name], f"{key}.{name}", where, depth) for name, check in allowed.items() if name in spec}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {key}: {exc}") from None


def features_from_spec(spec: object, where: str, key: str = "features"):
    """The feature object that the plain dict ``spec`` describes (``_target_`` + parameters, as in
    a resolved config's ``features`` section; ``parts`` nested for Combined), built WITHOUT
    importing or instantiating anything by name. Any unknown ``_target_``, unknown parameter or
    bad value is a ValueError whose message starts with ``where`` (e.g. the artifact it came from)
    and names ``key``."""
    return _build(spec, key, where, 0)
