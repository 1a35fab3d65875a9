"""``python -m protstruct.report``: rebuild a sweep's comparison from MLflow.

    python -m protstruct.report --experiment p0_vs_p1 --study p0_vs_p1 --out experiments/p0_vs_p1/results
    python -m protstruct.report --experiment protstruct --group-by decoder,backbone

A sweep is reported only when all its jobs are FINISHED (or reused); otherwise the report names
the missing jobs and exits 2, unless --allow-partial (every output then says PARTIAL). Only a sweep
run as exactly `study=S` may write into experiments/ (with --study S), and never a partial one.
A study whose config has a `report.original` block (conf/study/p0_vs_p1.yaml) also gets the
original report's published numbers beside its own.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from protstruct.report.build import make_report
from protstruct.report.runs import Refused
from protstruct.tracking.default_store import default_uri
from protstruct.tracking.redact import redact


def _arguments(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracking-uri", default=None, help="MLflow store (default: the project's SQLite store)")
    parser.add_argument("--experiment", default="p0_vs_p1", help="MLflow experiment name")
    parser.add_argument(
        "--study",
        default=None,
        help="only sweeps tagged with this study name (default: any; the study's "
        "published numbers follow the sweep's study tag)",
    )
    parser.add_argument("--parent-run-id", default=None, help="a specific sweep instead of the latest")
    parser.add_argument("--group-by", default="decoder,dropout", help="comma-separated config groups or keys")
    parser.add_argument(
        "--reference",
        default="decoder=transpose,dropout=none",
        help="the variant changes are measured against ('' for none)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for report.md/.csv/.html and figures (replaced whole)"
    )
    parser.add_argument(
        "--allow-partial",
        action="store_true",
        help="report on an incomplete sweep, every output marked PARTIAL (never into experiments/)",
    )
    parser.add_argument(
        "--register",
        default=None,
        metavar="NAME",
        help="register the champion's model (lowest mean best val/rmse variant, its best run) "
        "as a new version of NAME with alias 'champion'",
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = _arguments(argv)
    keys = [k.strip() for k in args.group_by.split(",") if k.strip()]
    reference = dict(kv.split("=", 1) for kv in args.reference.split(",") if "=" in kv) or None
    try:
        text = make_report(
            args.tracking_uri or default_uri(),
            args.experiment,
            args.study,
            args.parent_run_id,
            keys,
            reference,
            args.out,
            args.allow_partial,
            args.register,
        )
    except (Refused, LookupError, KeyError, ValueError) as exc:
        print(f"protstruct.report: {redact(str(exc.args[0] if exc.args else exc))}", file=sys.stderr)
        return 2
    print(text)
    if text.startswith("PARTIAL"):
        print(f"protstruct.report: {text.splitlines()[0]}", file=sys.stderr)
    if args.out:
        where = "report_partial/" if text.startswith("PARTIAL") else "report/"
        print(
            f"wrote {args.out}/report.md, report.csv, report.html and figures (also under {where} on the "
            "sweep's parent run)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
