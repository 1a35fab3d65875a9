"""One self-contained HTML page: tables, figures embedded as data URIs, and what they show."""
from __future__ import annotations

import base64
import html
from pathlib import Path

import markdown_it

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
    "heatmaps.png": "The same test windows: the truth, the separation baseline and each variant's "
                    "prediction (seed 0). P0's last transposed convolution (kernel 3, stride 8) reaches "
                    "only 9 of every 64 output cells, so most of P0's output cannot depend on its "
                    "input: the regular gap pattern of near-constant cells is its signature.",
}


def page(title: str, markdown_text: str, images: list[Path]) -> str:
    # raw HTML off: run names, tags and params in the text are shown, never interpreted
    md = markdown_it.MarkdownIt("commonmark", {"html": False}).enable("table")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;font-size:14px}td,th{border:1px solid #ccc;padding:3px 6px}"
             "img{max-width:100%;border:1px solid #eee}figcaption{color:#444;font-size:14px}</style>",
             "</head><body>", f"<h1>{html.escape(title)}</h1>", md.render(markdown_text)]
    for img in images:
        data = base64.b64encode(img.read_bytes()).decode()
        parts.append(f"<figure><img alt='{img.name}' src='data:image/png;base64,{data}'>"
                     f"<figcaption>{html.escape(EXPLAIN.get(img.name, img.name))}</figcaption></figure>")
    parts += ["<p id='image-check'>images not checked</p>", CHECK_IMAGES, "</body></html>"]
    return "\n".join(parts)
