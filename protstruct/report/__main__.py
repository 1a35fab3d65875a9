"""``python -m protstruct.report``: rebuild a sweep's comparison from MLflow.

    python -m protstruct.report --experiment p0_vs_p1 --study p0_vs_p1 --out experiments/p0_vs_p1/results
    python -m protstruct.report --experiment protstruct --group-by decoder,backbone
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omegaconf import OmegaConf

import protstruct.config  # noqa: F401  (resolvers for the default tracking URI)
from protstruct.config import project_root
from protstruct.report.build import make_report


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
    parser.add_argument("--out", type=Path, default=None, help="folder for report.md/.csv/.html and figures")
    args = parser.parse_args(argv)
    keys = [k.strip() for k in args.group_by.split(",") if k.strip()]
    reference = dict(kv.split("=", 1) for kv in args.reference.split(",") if "=" in kv) or None
    try:
        text = make_report(args.tracking_uri or default_uri(), args.experiment, args.study,
                           args.parent_run_id, keys, reference, args.out)
    except (LookupError, KeyError, ValueError) as exc:
        print(f"protstruct.report: {exc.args[0]}", file=sys.stderr)
        return 2
    print(text)
    if args.out:
        print(f"wrote {args.out}/report.md, report.csv, report.html and figures (also on the sweep's parent run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
