"""What a report knows about each variant (one combination of the grouping keys): its name, and
the decoder facts its heatmap caption rests on, read from the runs' logged config (params)."""

from __future__ import annotations

import json

import pandas as pd

from protstruct.models import geometry

DECODERS_MODULE = "protstruct.models.decoders."


def variant_of(row, group_cols: dict[str, str]) -> str:
    """``key=value,…`` of one run (a row of the runs frame)."""
    return ",".join(f"{k}={row[c]}" for k, c in group_cols.items())


def _last_transposed(row) -> tuple[int, int] | None:
    """(kernel, stride) of one run's last transposed convolution, from its flattened config; None
    when it has none or its config does not say (a run from before these params were logged)."""
    target = str(row.get("params.decoder._target_", ""))
    if not target.startswith(DECODERS_MODULE):
        return None
    try:
        layers = len(json.loads(str(row["params.decoder.filters"])))
        kernel, stride = int(row["params.decoder.kernel_size"]), int(row["params.backbone.output_stride"])
        return geometry.last_transposed(target[len(DECODERS_MODULE) :], stride, layers, kernel)
    except (KeyError, TypeError, ValueError):
        return None


def last_transposed(children: pd.DataFrame, group_cols: dict[str, str]) -> dict[str, tuple[int, int]]:
    """Variant → (kernel, stride) of its decoder's last transposed convolution, for the variants
    whose FINISHED runs all agree on one (a grouping that mixes decoders has none)."""
    found: dict[str, set] = {}
    for _, row in children[children["status"] == "FINISHED"].iterrows():
        found.setdefault(variant_of(row, group_cols), set()).add(_last_transposed(row))
    return {variant: facts.pop() for variant, facts in found.items() if len(facts) == 1 and None not in facts}
