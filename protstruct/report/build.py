"""Assemble a sweep's report: tables, paired comparisons, figures, HTML; log them on the sweep."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from protstruct.report import figures, html, paired, runs, tables

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per file clutters reports


def _variant(row, group_cols: dict[str, str]) -> str:
    return ",".join(f"{k}={row[c]}" for k, c in group_cols.items())


def collect(client, children: pd.DataFrame, group_cols: dict[str, str], workdir: Path):
    """Per-protein errors, val/rmse histories and one prediction sample per variant."""
    tables_, histories, samples = [], {}, {}
    done = children[children["status"] == "FINISHED"]
    for _, row in done.sort_values("params.seed").iterrows():
        run_id, variant = row["run_id"], _variant(row, group_cols)
        history = client.get_metric_history(run_id, "val/rmse")
        histories.setdefault(variant, []).append([m.value for m in sorted(history, key=lambda m: m.step)])
        target = workdir / run_id
        target.mkdir()
        try:
            csv = client.download_artifacts(run_id, "evaluation/test_per_protein.csv", str(target))
        except Exception:  # runs from before per-protein logging: no paired statistics for them
            continue
        t = pd.read_csv(csv)[["protein", "mse"]]
        t["variant"], t["seed"] = variant, row.get("params.seed", "0")
        tables_.append(t)
        if variant not in samples:
            try:
                npz = client.download_artifacts(run_id, "evaluation/test_predictions.npz", str(target))
                samples[variant] = dict(np.load(npz))
            except Exception:
                pass
    per_protein = pd.concat(tables_, ignore_index=True) if tables_ else pd.DataFrame()
    return per_protein, histories, samples


def paired_markdown(per_protein: pd.DataFrame, reference: str | None) -> tuple[str, pd.DataFrame]:
    if per_protein.empty or reference is None or reference not in set(per_protein["variant"]):
        return "Paired comparison: not available (no per-protein results for the reference variant).\n", pd.DataFrame()
    rows = [paired.compare(per_protein, v, reference) for v in sorted(set(per_protein["variant"])) if v != reference]
    lines = [f"### Paired comparison against {reference}", "",
             "Difference in per-protein test MSE (Å², variant − reference), averaged over seeds, on the "
             "same test windows; 95 % bootstrap interval over proteins; sign-flip permutation p-value.", "",
             "| variant | proteins | seeds | mean Δ MSE | 95 % interval | p | proteins better | Δ per seed | note |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["n_proteins"] == 0:
            lines.append(f"| {r['variant']} | 0 | 0 | — | — | — | — | — | {r['note']} |")
            continue
        lines.append(f"| {r['variant']} | {r['n_proteins']} | {r['n_seeds']} | {r['mean_diff_mse']:+.3g} | "
                     f"[{r['ci95_low']:+.3g}, {r['ci95_high']:+.3g}] | {r['p_sign_flip']:.3g} | "
                     f"{r['proteins_better']}/{r['n_proteins']} | "
                     f"{', '.join(f'{d:+.3g}' for d in r['seed_diffs_mse'])} | {r['note']} |")
    return "\n".join(lines) + "\n", pd.DataFrame(rows)


def make_report(uri: str, experiment: str, study: str | None, parent_run_id: str | None,
                keys: list[str], reference: dict[str, str] | None, out: Path | None) -> str:
    parent, children = runs.sweep_runs(uri, experiment, study, parent_run_id)
    group_cols = {k: runs.group_column(children, k) for k in keys}
    table = tables.summarize(children, group_cols, reference)
    crop = children.get("params.data.crop_size")
    crop_size = int(crop.dropna().iloc[0]) if crop is not None and crop.notna().any() else None
    settings = (f"sweep run {parent.info.run_id} ({parent.info.run_name}), experiment {experiment!r}, "
                f"{len(children)} jobs; overrides: {parent.data.tags.get('protstruct.overrides', '') or '—'}; "
                f"crop {crop_size}")
    text = tables.to_markdown(table, keys, settings, crop_size)
    ref_name = ",".join(f"{k}={reference[k]}" for k in keys if k in reference) if reference else None
    client = runs.mlflow_store.client_for(uri)
    with tempfile.TemporaryDirectory() as tmp:
        per_protein, histories, samples = collect(client, children, group_cols, Path(tmp))
        paired_text, paired_table = paired_markdown(per_protein, ref_name)
        text += "\n" + paired_text
        if out is None:
            return text
        out.mkdir(parents=True, exist_ok=True)
        images = [figures.metric_bars(table, keys, out / "test_rmse.png")]
        if histories:
            images.append(figures.loss_curves(histories, out / "loss_curves.png"))
        if samples:
            images.append(figures.heatmaps(samples, out / "heatmaps.png"))
    written = [*images, out / "report.md", out / "report.csv", out / "report.html"]
    (out / "report.md").write_text(text)
    table.to_csv(out / "report.csv", index=False)
    if not paired_table.empty:
        paired_table.to_csv(out / "paired.csv", index=False)
        written.append(out / "paired.csv")
    (out / "report.html").write_text(html.page(f"protstruct report — {experiment}", text, images))
    for path in written:
        client.log_artifact(parent.info.run_id, str(path), "report")
    return text
