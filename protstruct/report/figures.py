"""Report figures (PNG), and the heatmap ``python -m protstruct.predict`` writes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from protstruct.plotting import pyplot


def metric_bars(
    table: pd.DataFrame, keys: list[str], path: Path, metric: str = "test/rmse", note: str | None = None
) -> Path:
    plt = pyplot()
    labels = ["\n".join(f"{k}={r[k]}" for k in keys) for _, r in table.iterrows()]
    means = table[f"{metric} mean"].to_numpy(float)
    stds = np.nan_to_num(table[f"{metric} std"].to_numpy(float))
    fig, ax = plt.subplots(figsize=(1.8 * len(labels) + 2, 4))
    ax.bar(range(len(labels)), means, yerr=stds, capsize=6, color="tab:blue", label=f"{metric} (mean ± std)")
    base = table["baseline/test_rmse mean"].mean()
    ax.axhline(base, color="tab:red", ls="--", label=f"separation baseline ({base:.2f} Å)")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel("RMSE per pair (Å)")
    ax.legend()
    _mark(fig, note)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _mark(fig, note: str | None) -> None:
    """A partial report's figures say so, in red across the top."""
    if note:
        fig.suptitle(note, color="tab:red", fontsize=9, wrap=True)


def loss_curves(
    histories: dict[str, list[list[float]]], path: Path, metric: str = "val/rmse", note: str | None = None
) -> Path:
    """Every run's curve, one colour per variant."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for k, (variant, runs) in enumerate(sorted(histories.items())):
        for i, values in enumerate(runs):
            ax.plot(
                range(1, len(values) + 1),
                values,
                color=f"C{k}",
                alpha=0.8,
                marker=".",
                label=variant if i == 0 else None,
            )
    ax.set(xlabel="epoch", ylabel=f"{metric} (Å)", title=f"{metric} of every run, by variant")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _mark(fig, note)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def heatmaps(samples: dict[str, dict], path: Path, proteins: int = 2, note: str | None = None) -> Path:
    """Predicted vs true distance maps of the same test windows: one block of panels per variant
    (+ truth and the separation baseline), one panel per protein. Blocks wrap into several columns
    when there are many variants, so the page stays roughly as wide as it is tall."""
    plt = pyplot()
    first = next(iter(samples.values()))
    n = min(proteins, len(first["ids"]))
    rows = [("true distances", first["true"]), ("separation baseline", first["baseline"])]
    rows += [(variant, s["pred"]) for variant, s in sorted(samples.items())]
    blocks = next(b for b in range(1, len(rows) + 1) if math.ceil(len(rows) / b) * 3.0 <= 1.5 * b * n * 3.2)
    lines = math.ceil(len(rows) / blocks)
    fig, axes = plt.subplots(lines, blocks * n, figsize=(3.2 * n * blocks, 3.0 * lines), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    vmax = float(np.nanmax(np.where(first["mask"][:n], first["true"][:n], np.nan)))
    for i, (label, maps) in enumerate(rows):
        line, block = divmod(i, blocks)
        for c in range(n):
            ax = axes[line, block * n + c]
            ax.set_axis_on()
            im = ax.imshow(np.where(first["mask"][c], maps[c], np.nan), vmin=0, vmax=vmax, cmap="viridis_r")
            ax.set_xticks([])
            ax.set_yticks([])
            if line == 0:
                ax.set_title(str(first["ids"][c]), fontsize=9)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.colorbar(im, ax=axes, shrink=0.6, label="Å")
    _mark(fig, note)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def distance_maps(pred: np.ndarray, true: np.ndarray | None, mask: np.ndarray, path: Path, title: str) -> Path:
    """One protein's predicted distance matrix, with the true one (masked) beside it when known."""
    plt = pyplot()
    panels = [("predicted", pred)] + ([("true", np.where(mask, true, np.nan))] if true is not None else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4), squeeze=False)
    vmax = float(np.nanmax([np.nanmax(p) for _, p in panels]))
    for ax, (label, m) in zip(axes[0], panels):
        im = ax.imshow(m, vmin=0, vmax=vmax, cmap="viridis_r")
        ax.set_title(f"{title}: {label}")
    fig.colorbar(im, ax=axes, shrink=0.8, label="Å")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
