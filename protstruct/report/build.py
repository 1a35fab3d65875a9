"""Assemble a sweep's report: tables, paired comparisons, figures, HTML; log them on the sweep."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from protstruct.report import champion, evidence, figures, html, output, paired, published, runs, tables, variants
from protstruct.tracking.redact import redact


def paired_markdown(per_protein: pd.DataFrame, reference: str | None) -> tuple[str, pd.DataFrame]:
    if per_protein.empty or reference is None or reference not in set(per_protein["variant"]):
        return "Paired comparison: not available (no per-protein results for the reference variant).\n", pd.DataFrame()
    others = sorted(set(per_protein["variant"]) - {reference})
    if not others:
        return "Paired comparison: not available (no per-protein results for any other variant).\n", pd.DataFrame()
    rows = [paired.compare(per_protein, v, reference) for v in others]
    lines = [
        f"### Paired comparison against {reference}",
        "",
        "Difference in per-protein test MSE (Å², variant − reference), averaged over seeds, on the "
        "same test windows; 95 % bootstrap interval over proteins; sign-flip permutation p-value.",
        "",
        "| variant | proteins | seeds | mean Δ MSE | 95 % interval | p | proteins better | Δ per seed | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["n_proteins"] == 0:
            lines.append(f"| {r['variant']} | 0 | 0 | — | — | — | — | — | {r['note']} |")
            continue
        lines.append(
            f"| {r['variant']} | {r['n_proteins']} | {r['n_seeds']} | {r['mean_diff_mse']:+.3g} | "
            f"[{r['ci95_low']:+.3g}, {r['ci95_high']:+.3g}] | {r['p_sign_flip']:.3g} | "
            f"{r['proteins_better']}/{r['n_proteins']} | "
            f"{', '.join(f'{d:+.3g}' for d in r['seed_diffs_mse'])} | {r['note']} |"
        )
    return "\n".join(lines) + "\n", pd.DataFrame(rows)


@dataclass
class Report:
    """A report's content, before it is written anywhere."""

    text: str
    table: pd.DataFrame
    paired_table: pd.DataFrame
    found: evidence.Evidence
    captions: dict[str, str]
    partial: str | None


def _crop_size(children: pd.DataFrame) -> int | None:
    crop = children.get("params.data.crop_size")
    return int(crop.dropna().iloc[0]) if crop is not None and crop.notna().any() else None


def _summary_text(
    sweep: runs.Sweep,
    experiment: str,
    study_name: str | None,
    keys: list[str],
    table: pd.DataFrame,
    names: dict[str, str],
) -> str:
    """The table, the study's published numbers (when its config has them) and the baseline's note."""
    parent, crop_size = sweep.parent, _crop_size(sweep.children)
    overrides = redact(parent.data.tags.get("protstruct.overrides", "")) or "—"
    settings = (
        f"sweep run {parent.info.run_id} ({redact(parent.info.run_name or '')}), experiment {experiment!r}, "
        f"{len(sweep.children)} jobs; overrides: {overrides}; crop {crop_size}"
    )
    blocks = [tables.table_markdown(table, keys, settings, names)]
    numbers = published.for_study(study_name or parent.data.tags.get("protstruct.study"))
    if numbers is not None:
        blocks += published.markdown(numbers, names.get(numbers.same_as, numbers.same_as), crop_size)
    blocks.append(tables.baseline_markdown(table, keys))
    return "\n\n".join(blocks) + "\n"


def assemble(
    client,
    sweep: runs.Sweep,
    experiment: str,
    study_name: str | None,
    keys: list[str],
    reference: dict[str, str] | None,
) -> Report:
    """Read the sweep's metrics and evaluation artifacts into the report's text and tables."""
    group_cols = {k: runs.group_column(sweep.children, k) for k in keys}
    names = tables.metric_names(sweep.children)
    table = tables.summarize(sweep.children, group_cols, reference, names)
    partial = None if sweep.complete else sweep.partial_line()
    text = _summary_text(sweep, experiment, study_name, keys, table, names)
    if partial:
        text = f"{partial}\n\n{text}"
    note = sweep.legacy_note()
    if note:
        text += "\n" + note + "\n"
    with tempfile.TemporaryDirectory() as tmp:  # the artifacts are read into memory
        found = evidence.collect(client, sweep.children, group_cols, Path(tmp))
    ref_name = ",".join(f"{k}={reference[k]}" for k in keys if k in reference) if reference else None
    paired_text, paired_table = paired_markdown(found.per_protein, ref_name)
    gaps = found.markdown()
    text += ("\n" + gaps if gaps else "") + "\n" + paired_text
    caption = html.heatmap_caption(found.sample_seeds, variants.last_transposed(sweep.children, group_cols))
    return Report(redact(text), table, paired_table, found, {"heatmaps.png": caption}, partial)


def write(folder: Path, experiment: str, report: Report, keys: list[str]) -> list[Path]:
    """Every output file into ``folder`` (a fresh one); returns their paths."""
    partial = report.partial
    note = partial and partial.split(";")[0] + " (see report.md)"
    images = [figures.metric_bars(report.table, keys, folder / "test_rmse.png", note=note)]
    if report.found.histories:
        images.append(figures.loss_curves(report.found.histories, folder / "loss_curves.png", note=note))
    if report.found.samples:
        images.append(figures.heatmaps(report.found.samples, folder / "heatmaps.png", note=note))
    written = [*images, folder / "report.md", folder / "report.csv", folder / "report.html"]
    (folder / "report.md").write_text(report.text)
    report.table.assign(partial=partial is not None).to_csv(folder / "report.csv", index=False)
    if not report.paired_table.empty:
        report.paired_table.assign(partial=partial is not None).to_csv(folder / "paired.csv", index=False)
        written.append(folder / "paired.csv")
    title = f"{'PARTIAL — ' if partial else ''}protstruct report — {experiment}"
    (folder / "report.html").write_text(html.page(title, report.text, images, report.captions))
    return written


def make_report(
    uri: str,
    experiment: str,
    study: str | None,
    parent_run_id: str | None,
    keys: list[str],
    reference: dict[str, str] | None,
    out: Path | None,
    allow_partial: bool = False,
    register: str | None = None,
) -> str:
    """The report's Markdown text; with ``out``, also its files there (swapped in whole) and on the
    sweep's parent run. Raises :class:`runs.Refused` when it cannot be made honestly."""
    output.check_destination(out, study, allow_partial)
    if register and (allow_partial or out is None):
        raise runs.Refused("--register needs a complete sweep and --out (the version links to its report)")
    client = runs.open_store(uri)
    sweep = runs.sweep_runs(client, uri, experiment, study, parent_run_id, allow_partial)
    output.check_overrides(sweep.parent, out, study)
    report = assemble(client, sweep, experiment, study, keys, reference)
    if out is None:
        return report.text
    with output.staged(out) as folder:
        names = [p.name for p in write(folder, experiment, report, keys)]
    for name in names:  # a partial report never poses as the sweep's report
        client.log_artifact(
            sweep.parent.info.run_id, str(Path(out) / name), "report_partial" if report.partial else "report"
        )
    text = report.text
    if register:
        group_cols = {k: runs.group_column(sweep.children, k) for k in keys}
        text += (
            "\n"
            + champion.register_champion(
                client, register, sweep.parent, sweep.children, group_cols, "report/report.html"
            )
            + "\n"
        )
    return text
