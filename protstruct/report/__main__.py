"""``python -m protstruct.report``: rebuild a sweep's comparison table from MLflow.

    python -m protstruct.report --experiment p0_vs_p1 --study p0_vs_p1 --out experiments/p0_vs_p1/results
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omegaconf import OmegaConf

import protstruct.config  # noqa: F401  (resolvers for the default tracking URI)
from protstruct.config import project_root
from protstruct.report import figures, runs, tables


def default_uri() -> str:
    """The store ``conf/tracking/mlflow.yaml`` points jobs at, so the report reads what runs wrote."""
    cfg = OmegaConf.load(project_root() / "conf" / "tracking" / "mlflow.yaml")
    return OmegaConf.to_container(cfg, resolve=True)["uri"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracking-uri", default=None, help="MLflow store (default: the project's SQLite store)")
    parser.add_argument("--experiment", default="p0_vs_p1", help="MLflow experiment name")
    parser.add_argument("--study", default=None, help="only sweeps tagged with this study name")
    parser.add_argument("--parent-run-id", default=None, help="a specific sweep instead of the latest")
    parser.add_argument("--group-by", default="decoder,dropout", help="comma-separated config groups or keys")
    parser.add_argument("--reference", default="decoder=transpose,dropout=none",
                        help="the variant changes are measured against ('' for none)")
    parser.add_argument("--out", type=Path, default=None, help="folder for report.md / report.csv / figures")
    args = parser.parse_args(argv)

    uri = args.tracking_uri or default_uri()
    try:
        parent, children = runs.sweep_runs(uri, args.experiment, args.study, args.parent_run_id)
        keys = [k.strip() for k in args.group_by.split(",") if k.strip()]
        group_cols = {k: runs.group_column(children, k) for k in keys}
    except (LookupError, KeyError) as exc:
        print(f"protstruct.report: {exc.args[0]}", file=sys.stderr)
        return 2
    reference = dict(kv.split("=", 1) for kv in args.reference.split(",") if "=" in kv) or None
    table = tables.summarize(children, group_cols, reference)
    crop = children.get("params.data.crop_size")
    crop_size = int(crop.dropna().iloc[0]) if crop is not None and crop.notna().any() else None
    settings = (f"sweep run {parent.info.run_id} ({parent.info.run_name}), experiment {args.experiment!r}, "
                f"{len(children)} jobs; overrides: {parent.data.tags.get('protstruct.overrides', '') or '—'}; "
                f"crop {crop_size}")
    markdown = tables.to_markdown(table, keys, settings, crop_size)
    print(markdown)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "report.md").write_text(markdown)
        table.to_csv(args.out / "report.csv", index=False)
        figures.metric_bars(table, keys, args.out / "test_rmse.png")
        client = runs.mlflow_store.client_for(uri)
        for name in ("report.md", "report.csv", "test_rmse.png"):
            client.log_artifact(parent.info.run_id, str(args.out / name), "report")
        print(f"wrote {args.out}/report.md, report.csv, test_rmse.png (also on MLflow run {parent.info.run_id})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
