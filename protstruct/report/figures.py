"""Report figures (PNG)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def metric_bars(table: pd.DataFrame, keys: list[str], path: Path, metric: str = "test/rmse") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
