"""Decoder geometry in plain Python (no Keras): how a decoder splits the backbone's output stride
into per-layer upsampling factors, and which output cells a transposed convolution reaches. The
decoders build from these rules; the report reads them to describe a run's decoder."""

from __future__ import annotations

TRANSPOSED = ("transpose",)  # decoders whose upsampling layers are transposed convolutions


def final_factor(output_stride: int, doublings: int, what: str) -> int:
    """The last layer's upsampling factor when ``doublings`` layers each double the resolution."""
    factor, rest = divmod(output_stride, 2**doublings)
    if rest or factor < 1:
        raise ValueError(
            f"decoder.filters: {what} doubles {doublings} times, which does not divide the "
            f"backbone's output stride {output_stride}"
        )
    return factor


def layer_factors(output_stride: int, layers: int, what: str) -> list[int]:
    """Upsampling factor of each of ``layers`` layers that together undo the output stride: 2, 2,
    …, whatever remains (P0's transposed convolutions, the sub-pixel decoder's blocks)."""
    return [2] * (layers - 1) + [final_factor(output_stride, layers - 1, what)]


def last_transposed(decoder: str, output_stride: int, layers: int, kernel_size: int) -> tuple[int, int] | None:
    """(kernel, stride) of the last transposed convolution of decoder function ``decoder`` (its
    name, e.g. ``transpose``), None when it has none."""
    if decoder not in TRANSPOSED or layers < 1:
        return None
    return kernel_size, layer_factors(output_stride, layers, f"the {decoder} decoder")[-1]


def reached_cells(kernel: int, stride: int) -> int:
    """Of every stride×stride block of a transposed convolution's output, how many cells receive
    any input (the rest hold only the bias): all when the kernel is at least the stride."""
    return min(kernel, stride) ** 2
