"""One self-contained HTML page: tables, figures embedded as data URIs, and what they show."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import markdown_it

from protstruct.models import geometry

CHECK_IMAGES = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  document.getElementById('image-check').textContent = `images loaded: ${ok}/${imgs.length}`;
});
</script>"""

EXPLAIN = {
    "test_rmse.png": "Test RMSE per pair (Å), mean ± std over seeds; the dashed line is the separation "
    "baseline (mean training distance at each |i−j|).",
    "loss_curves.png": "Validation RMSE of every run by epoch, one colour per variant.",
}


def heatmap_caption(sample_seeds: dict[str, str], last_transposed: dict[str, tuple[int, int]]) -> str:
    """What the heatmaps show: each variant's sample (and its seed), and — for the variants whose
    decoder ends in a transposed convolution with a kernel smaller than its stride — which output
    cells that convolution can reach at all (the rest hold only its bias)."""
    seeds = set(sample_seeds.values())
    which = f"seed {seeds.pop()}" if len(seeds) == 1 else "each variant's lowest seed with predictions"
    text = f"The same test windows: the truth, the separation baseline and each variant's prediction ({which})."
    by_layer: dict[tuple[int, int], list[str]] = {}
    for variant in sorted(sample_seeds):
        if variant in last_transposed:
            by_layer.setdefault(last_transposed[variant], []).append(variant)
    for (kernel, stride), variants in sorted(by_layer.items()):
        reached = geometry.reached_cells(kernel, stride)
        if reached == stride * stride:
            continue
        names = variants[0] if len(variants) == 1 else f"{', '.join(variants[:-1])} and {variants[-1]}"
        its = "its" if len(variants) == 1 else "their"
        text += (
            f" The last transposed convolution of {names} (kernel {kernel}, stride {stride}) reaches only "
            f"{reached} of every {stride * stride} output cells, so most of {its} output cannot depend on "
            f"{its} input: the regular gap pattern of near-constant cells is its signature."
        )
    return text


def page(title: str, markdown_text: str, images: list[Path], captions: dict[str, str] | None = None) -> str:
    """The page; each image captioned by ``captions`` (by file name), else :data:`EXPLAIN`."""
    captions = {**EXPLAIN, **(captions or {})}
    # raw HTML off: run names, tags and params in the text are shown, never interpreted
    md = markdown_it.MarkdownIt("commonmark", {"html": False}).enable("table")
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;font-size:14px}td,th{border:1px solid #ccc;padding:3px 6px}"
        "img{max-width:100%;border:1px solid #eee}figcaption{color:#444;font-size:14px}</style>",
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        md.render(markdown_text),
    ]
    for img in images:
        data = base64.b64encode(img.read_bytes()).decode()
        parts.append(
            f"<figure><img alt='{img.name}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{html.escape(captions.get(img.name, img.name))}</figcaption></figure>"
        )
    parts += ["<p id='image-check'>images not checked</p>", CHECK_IMAGES, "</body></html>"]
    return "\n".join(parts)
