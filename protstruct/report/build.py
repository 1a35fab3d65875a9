"""Assemble a sweep's report: tables, paired comparisons, figures, HTML; log them on the sweep."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

from protstruct.report import champion, evidence, figures, html, output, paired, runs, tables
from protstruct.tracking.redact import redact

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per file clutters reports


def paired_markdown(per_protein: pd.DataFrame, reference: str | None) -> tuple[str, pd.DataFrame]:
    if per_protein.empty or reference is None or reference not in set(per_protein["variant"]):
        return "Paired comparison: not available (no per-protein results for the reference variant).\n", pd.DataFrame()
    others = sorted(set(per_protein["variant"]) - {reference})
    if not others:
        return "Paired comparison: not available (no per-protein results for any other variant).\n", pd.DataFrame()
    rows = [paired.compare(per_protein, v, reference) for v in others]
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


def _write(folder: Path, experiment: str, text: str, table: pd.DataFrame, paired_table: pd.DataFrame,
           found: evidence.Evidence, keys: list[str], partial: str | None) -> list[Path]:
    """Every output file into ``folder`` (a fresh one); returns their paths."""
    note = partial and partial.split(";")[0] + " (see report.md)"
    images = [figures.metric_bars(table, keys, folder / "test_rmse.png", note=note)]
    if found.histories:
        images.append(figures.loss_curves(found.histories, folder / "loss_curves.png", note=note))
    if found.samples:
        images.append(figures.heatmaps(found.samples, folder / "heatmaps.png", note=note))
    written = [*images, folder / "report.md", folder / "report.csv", folder / "report.html"]
    (folder / "report.md").write_text(text)
    table.assign(partial=partial is not None).to_csv(folder / "report.csv", index=False)
    if not paired_table.empty:
        paired_table.assign(partial=partial is not None).to_csv(folder / "paired.csv", index=False)
        written.append(folder / "paired.csv")
    title = f"{'PARTIAL — ' if partial else ''}protstruct report — {experiment}"
    (folder / "report.html").write_text(html.page(title, text, images))
    return written


def make_report(uri: str, experiment: str, study: str | None, parent_run_id: str | None,
                keys: list[str], reference: dict[str, str] | None, out: Path | None,
                allow_partial: bool = False, register: str | None = None) -> str:
    """The report's Markdown text; with ``out``, also its files there (swapped in whole) and on the
    sweep's parent run. Raises :class:`runs.Refused` when it cannot be made honestly."""
    output.check_destination(out, study, allow_partial)
    if register and (allow_partial or out is None):
        raise runs.Refused("--register needs a complete sweep and --out (the version links to its report)")
    client = runs.open_store(uri)
    sweep = runs.sweep_runs(client, uri, experiment, study, parent_run_id, allow_partial)
    output.check_overrides(sweep.parent, out, study)
    partial = None if sweep.complete else sweep.partial_line()
    children, parent = sweep.children, sweep.parent
    group_cols = {k: runs.group_column(children, k) for k in keys}
    table = tables.summarize(children, group_cols, reference)
    crop = children.get("params.data.crop_size")
    crop_size = int(crop.dropna().iloc[0]) if crop is not None and crop.notna().any() else None
    settings = (f"sweep run {parent.info.run_id} ({redact(parent.info.run_name or '')}), experiment {experiment!r}, "
                f"{len(children)} jobs; overrides: {redact(parent.data.tags.get('protstruct.overrides', '')) or '—'}; "
                f"crop {crop_size}")
    text = tables.to_markdown(table, keys, settings, crop_size)
    if partial:
        text = f"{partial}\n\n{text}"
    if sweep.legacy_note():
        text += "\n" + sweep.legacy_note() + "\n"
    ref_name = ",".join(f"{k}={reference[k]}" for k in keys if k in reference) if reference else None
    with tempfile.TemporaryDirectory() as tmp:
        found = evidence.collect(client, children, group_cols, Path(tmp))
        paired_text, paired_table = paired_markdown(found.per_protein, ref_name)
        gaps = found.markdown()
        text += ("\n" + gaps if gaps else "") + "\n" + paired_text
        text = redact(text)
        if out is None:
            return text
        with output.staged(out) as folder:
            names = [p.name for p in _write(folder, experiment, text, table, paired_table, found, keys, partial)]
    for name in names:  # a partial report never poses as the sweep's report
        client.log_artifact(parent.info.run_id, str(Path(out) / name), "report_partial" if partial else "report")
    if register:
        text += "\n" + champion.register_champion(client, register, parent, children, group_cols,
                                                  "report/report.html") + "\n"
    return text
