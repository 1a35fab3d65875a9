"""Files a job writes and logs: per-protein table, loss curve, Hydra's config folder and log."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def skips_table(skips) -> pd.DataFrame:
    return pd.DataFrame(
        [{"where": s.where, "reason": s.reason, "detail": s.detail} for s in skips],
        columns=["where", "reason", "detail"],
    )


def loss_curve(history: list[dict[str, float]], path: Path, title: str = "") -> Path:
    from protstruct.plotting import pyplot

    plt = pyplot()

    epochs = np.arange(1, len(history) + 1)
    fig, (ax_loss, ax_rmse) = plt.subplots(1, 2, figsize=(9, 3.5))
    for key, ax in (("train/loss", ax_loss), ("val/loss", ax_loss), ("train/rmse", ax_rmse), ("val/rmse", ax_rmse)):
        values = [h.get(key, np.nan) for h in history]
        ax.plot(epochs, values, marker="o", label=key)
    ax_loss.set(xlabel="epoch", ylabel="loss", yscale="log")
    ax_rmse.set(xlabel="epoch", ylabel="RMSE (Å)")
    for ax in (ax_loss, ax_rmse):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def log_hydra_files(run_logger, output_dir: Path, log_file: Path) -> None:
    """Hydra's saved configs and the job's log, as text with their secrets masked."""
    hydra_dir = output_dir / ".hydra"
    files = [(p, f"hydra/{p.name}") for p in sorted(hydra_dir.glob("*.yaml"))] if hydra_dir.is_dir() else []
    if log_file.is_file():
        files.append((log_file, f"logs/{log_file.name}"))
    for path, artifact_file in files:
        run_logger.log_text(path.read_text(errors="replace"), artifact_file)
