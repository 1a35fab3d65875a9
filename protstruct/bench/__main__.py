"""``make bench`` / ``python -m protstruct.bench [--quick] [--out DIR]``.

Writes ``bench.json`` and ``bench.md`` to DIR. A full run of every item defaults to
``experiments/bench`` (the committed results); ``--quick`` and ``--items`` subsets default to
``outputs/bench-quick`` / ``outputs/bench-items`` under the current directory and may never write
into ``experiments/bench``, so a smoke run cannot replace the committed numbers. Fixed settings for
items 1, 2, 4: ResNet50 + the P0/P1 decoders, crop 64, batch 10, the embedded training set.
Full mode takes ~35 minutes on a 2-core CPU (its budget); ``--quick`` shrinks every item to a
smoke run (crop 32, batch 2, one repeat) that checks the code, not the speed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from protstruct import console
from protstruct.bench import render

console.set_log_levels()

ITEMS = ("1", "2", "3", "4", "5", "6", "7", "8")  # protstruct.bench.items.MEASURES says what each measures
FULL = {
    "crop": 64,
    "batch": 10,
    "steps": 14,
    "repeats": 5,
    "rounds": 9,
    "records": None,
    "scaling_crops": (64, 128, 256),
    "scaling_steps": 3,
    "files": None,
    "sweep_jobs": 3,
    "sweep_repeats": 5,
    "variants": ("P0", "P1"),
    "backbone": "resnet50",
    "report_runs": 1000,
    "parse_records": 5000,
    "scale_records": (25000, 100000),
    "split_sizes": (1000, 5000, 20000),
    "pipeline_batch": 10,
    "pipeline_samples": 1500,
    "pipeline_records": 60,
}
QUICK = {
    "crop": 32,
    "batch": 2,
    "steps": 2,
    "repeats": 1,
    "rounds": 1,
    "records": 6,
    "scaling_crops": (32,),
    "scaling_steps": 1,
    "files": 6,
    "sweep_jobs": 2,
    "sweep_repeats": 1,
    "variants": ("P0",),
    "backbone": "small_cnn",
    "report_runs": 8,
    "parse_records": 100,
    "scale_records": (200,),
    "split_sizes": (200,),
    "pipeline_batch": 2,
    "pipeline_samples": 8,
    "pipeline_records": 4,
}


def machine() -> dict:
    import keras
    import tensorflow as tf

    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "device": ", ".join(d.name for d in tf.config.list_physical_devices()) or "CPU",
    }


def run(settings: dict, offline: bool, items=ITEMS) -> dict:
    """Runs ``items`` under ``settings`` (FULL or QUICK); returns what bench.json holds."""
    # imports TensorFlow, so only here: after main()'s console.import_tensorflow()
    from protstruct.bench import items as measures
    from protstruct.data import embedded

    data = embedded.load()
    first = settings["records"]
    inputs = measures.Inputs(settings, data["train"][:first], data["val"][:first], offline)
    results: dict[str, Any] = {
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
        "machine": machine(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    t0 = time.perf_counter()
    for item in ITEMS:
        if item in items:
            key, measure = measures.MEASURES[item]
            print(f"bench: {key} … ({time.perf_counter() - t0:.0f} s so far)", file=sys.stderr, flush=True)
            results[key] = measure(inputs)
    results["total_seconds"] = time.perf_counter() - t0
    return results


def committed_dir() -> Path:
    """Where the committed full-run results live."""
    from protstruct import config

    return (config.project_root() / "experiments" / "bench").resolve()


def parse_items(text: str) -> tuple[str, ...]:
    """``--items 1,2,4`` as ``("1", "2", "4")``; raises ValueError for an item that does not exist."""
    items = tuple(i.strip() for i in text.split(","))
    unknown = [i for i in items if i not in ITEMS]
    if unknown:
        raise ValueError(f"--items: no item {', '.join(unknown)}; the items are {','.join(ITEMS)}")
    return items


def out_dir(out: Path | None, quick: bool, items: tuple[str, ...]) -> Path:
    """The folder to write to; raises ValueError for a smoke or partial run aimed at the committed
    results (before anything runs)."""
    full = not quick and set(ITEMS) <= set(items)
    if out is None:
        return committed_dir() if full else Path("outputs") / ("bench-quick" if quick else "bench-items")
    target = out.expanduser().resolve()
    if not full and (target == committed_dir() or target.is_relative_to(committed_dir())):
        what = "--quick" if quick else f"--items {','.join(items)}"
        raise ValueError(
            f"--out {out}: {committed_dir()} holds the committed full-run results; a {what} run "
            "may not replace them. Leave --out out (it writes to outputs/) or choose another folder"
        )
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CI-sized smoke run (asserts nothing about speed)")
    parser.add_argument("--offline", action="store_true", help="item 3 without downloading the real files")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: experiments/bench for a full run of every item, "
        "else outputs/bench-quick or outputs/bench-items)",
    )
    parser.add_argument("--items", default=",".join(ITEMS), help="comma-separated items to run (default all)")
    args = parser.parse_args(argv)
    console.import_tensorflow()
    try:
        items = parse_items(args.items)
        out = out_dir(args.out, args.quick, items)
    except ValueError as exc:
        print(f"protstruct.bench: {exc}", file=sys.stderr)
        return 2
    print(f"bench: results go to {out}", file=sys.stderr, flush=True)
    results = run(QUICK if args.quick else FULL, args.offline, items)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(results, indent=1))
    text = render.markdown(results)
    (out / "bench.md").write_text(text)
    print(text)
    print(f"bench: wrote {out / 'bench.json'} and {out / 'bench.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
