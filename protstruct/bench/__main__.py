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

from protstruct import console
from protstruct.bench.scale import markdown as scale_lines

console.set_log_levels()

FULL = dict(crop=64, batch=10, steps=14, repeats=5, rounds=9, records=None, scaling_crops=(64, 128, 256),
            scaling_steps=3, files=None, sweep_jobs=3, sweep_repeats=5, variants=("P0", "P1"), backbone="resnet50",
            report_runs=1000, parse_records=5000, scale_records=(25000, 100000), split_sizes=(1000, 5000, 20000),
            pipeline_batch=10, pipeline_samples=1500, pipeline_records=60)
QUICK = dict(crop=32, batch=2, steps=2, repeats=1, rounds=1, records=6, scaling_crops=(32,), scaling_steps=1,
             files=6, sweep_jobs=2, sweep_repeats=1, variants=("P0",), backbone="small_cnn", report_runs=8,
             parse_records=100, scale_records=(200,), split_sizes=(200,), pipeline_batch=2, pipeline_samples=8,
             pipeline_records=4)


def machine() -> dict:
    import keras
    import tensorflow as tf

    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "tensorflow": tf.__version__, "keras": keras.__version__,
            "device": ", ".join(d.name for d in tf.config.list_physical_devices()) or "CPU"}


ITEMS = ("1", "2", "3", "4", "5", "6", "7", "8")


def run(settings: dict, offline: bool, items=ITEMS) -> dict:
    from protstruct.bench import data_and_sweeps, loops, step_rate
    from protstruct.data import embedded

    data = embedded.load()
    train, val = data["train"][: settings["records"]], data["val"][: settings["records"]]
    s = settings
    loops.BACKBONE = s["backbone"]
    results = {"settings": {k: list(v) if isinstance(v, tuple) else v for k, v in s.items()},
               "machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    measures = {
        "1": ("1_runner_vs_seed_loop", lambda: [loops.runner_vs_seed(train, val, v, s["crop"], s["batch"], s["steps"],
                                                                    s["repeats"]) for v in s["variants"]]),
        "2": ("2_pipeline_efficiency", lambda: loops.pipeline_efficiency(train, "P0", s["crop"], s["batch"],
                                                                         s["rounds"])),
        "3": ("3_preprocessing", lambda: data_and_sweeps.preprocessing(s["repeats"], s["files"], offline)),
        "4": ("4_tracking_overhead", lambda: loops.tracking_overhead(train, val, "P0", s["crop"], s["batch"],
                                                                     s["rounds"])),
        "5": ("5_sweep_overhead", lambda: data_and_sweeps.sweep_overhead(s["sweep_jobs"], s["sweep_repeats"])),
        "6": ("6_scaling", lambda: [step_rate.measure(v, c, "float32", s["batch"], s["scaling_steps"], s["repeats"],
                                                      jit_compile=False, backbone=s["backbone"])
                                    for c in s["scaling_crops"] for v in s["variants"]]),
        "7": ("7_xla_vs_graph", lambda: [loops.xla_vs_graph(train, v, s["crop"], s["batch"], s["steps"], s["repeats"])
                                         for v in s["variants"]]),
        "8": ("8_scale", lambda: _scale(s, train)),
    }
    t0 = time.perf_counter()
    for item in ITEMS:
        if item in items:
            key, measure = measures[item]
            print(f"bench: {key} … ({time.perf_counter() - t0:.0f} s so far)", file=sys.stderr, flush=True)
            results[key] = measure()
    results["total_seconds"] = time.perf_counter() - t0
    return results


def _scale(s: dict, train) -> dict:
    from protstruct.bench import report_scale, scale, split_scale

    return {"report": report_scale.report_scale(s["report_runs"]),
            "parse": scale.parse_throughput(scale.casp_folder(s["parse_records"]), s["repeats"]),
            "training": scale.training_at_scale(tuple(s["scale_records"])),
            "pipeline_256": scale.pipeline_vs_step(train[: s["pipeline_records"]], s["pipeline_batch"],
                                                   s["pipeline_samples"], s["repeats"]),
            "split": split_scale.split_timings(tuple(s["split_sizes"]))}


def _t(x: dict) -> str:
    return f"{x['median_s']:.3g} s (min {x['min_s']:.3g}, max {x['max_s']:.3g}, n={x['repeats']})"


def _rate(x: dict) -> str:
    return f"{x['samples_per_s']:.2f}/s ({x['samples'] / x['max_s']:.2f}–{x['samples'] / x['min_s']:.2f})"


def _ratio(x: dict, unit: str = "") -> str:
    return f"{x['median']:.3g}{unit} ({x['min']:.3g}–{x['max']:.3g})"


def markdown(r: dict) -> str:
    s, m = r["settings"], r["machine"]
    lines = [f"# make bench — {r['started']}", "",
             f"Machine: {m['cpus']} CPUs, {m['platform']}, Python {m['python']}, TensorFlow {m['tensorflow']}, "
             f"Keras {m['keras']}; devices: {m['device']}. Total {r['total_seconds']:.0f} s.", "",
             f"Fixed for items 1, 2, 4: {s['backbone']} + decoder, crop {s['crop']}, batch {s['batch']}, "
             f"{s['steps']} steps per timed block (item 1), median of {s['repeats']} repeats after a warm-up."]
    if "1_runner_vs_seed_loop" in r:
        lines += ["", "## 1. Runner vs the seed's loop", "",
                  f"Samples/s over one epoch of the same {s['steps']} batches from the same weights, in "
                  f"{s['repeats']} interleaved rounds (median, min–max). Ratios are the median (min–max) of the "
                  "per-round ratios. Target: runner ≥ 4.5× the seed loop and ≥ 0.95 of the bare compiled step.", "",
                  "| model | seed loop + per-batch validation | seed loop | bare compiled step | protstruct runner | "
                  "runner ÷ seed loop | runner ÷ seed loop with validation | runner ÷ bare step |",
                  "|---|---|---|---|---|---|---|---|"]
        for x in r["1_runner_vs_seed_loop"]:
            cells = [_rate(x[k]) for k in ("seed_loop_with_per_batch_validation", "seed_loop", "bare_compiled_step",
                                             "runner")]
            lines.append(f"| {x['variant']} | " + " | ".join(cells) + f" | {_ratio(x['runner_vs_seed_loop'], '×')} | "
                         f"{_ratio(x['runner_vs_seed_loop_with_validation'], '×')} | "
                         f"{_ratio(x['runner_vs_bare_compiled_step'])} |")
        lines += ["", "First-step loss, same weights and batch, dropout off. With Grappler's arithmetic optimizer off "
                  "the compiled step does the seed loop's exact arithmetic; with it on (as in training) float32 sums "
                  "are reordered.", "", "| model | seed loop | runner, exact arithmetic | diff | runner, as trained | "
                  "relative diff |", "|---|---|---|---|---|---|"]
        for x in r["1_runner_vs_seed_loop"]:
            f = x["first_step_loss"]
            lines.append(f"| {x['variant']} | {f['seed_loop']:.6f} | {f['runner_exact_arithmetic']:.6f} | "
                         f"{f['runner_exact_arithmetic_abs_diff']:.1e} | {f['runner']:.6f} | {f['runner_rel_diff']:.1e} |")
    if "2_pipeline_efficiency" in r:
        p = r["2_pipeline_efficiency"]
        lines += ["", "## 2. Input pipeline efficiency", "",
                  f"One epoch of the runner on the real pipeline (fresh random crops each epoch) against the same "
                  f"compiled step on in-memory tensors of the same shape, {p['in_memory']['repeats']} interleaved "
                  "rounds. Target ≥ 0.95.", "", "| input | epoch time | samples/s |", "|---|---|---|",
                  f"| real pipeline | {_t(p['real_pipeline'])} | {p['real_pipeline']['samples_per_s']:.2f} |",
                  f"| in-memory tensors | {_t(p['in_memory'])} | {p['in_memory']['samples_per_s']:.2f} |", "",
                  f"**Efficiency {_ratio(p['efficiency'])}** (per-round in-memory ÷ real-pipeline epoch time)."]
    if "3_preprocessing" in r:
        pre = r["3_preprocessing"]
        lines += ["", "## 3. Preprocessing throughput", "", f"{pre['files']} files, {pre['megabytes']} MB: {pre['what']}.",
                  "", "| step | time | files/s |", "|---|---|---|"]
        for k, v in pre.items():
            if isinstance(v, dict):
                lines.append(f"| {k} | {_t(v)} | {pre['files'] / v['median_s']:.1f} |")
    if "4_tracking_overhead" in r:
        t = r["4_tracking_overhead"]
        lines += ["", "## 4. Tracking overhead (one epoch incl. validation, interleaved)", "",
                  f"Wall-clock overhead is the median per-round ratio to 'off' minus 1. Noise floor (the median "
                  f"per-round |off again ÷ off − 1|): {t['noise_floor']:.1%}. 'Inside callbacks' is the share of the "
                  "epoch spent in the logging calls themselves: what synchronous logging adds to the hot path, "
                  "free of the machine's drift. Target ≤ 2 % or below the noise floor.", "",
                  "| logging | epoch time | wall-clock overhead | inside callbacks |", "|---|---|---|---|",
                  f"| off | {_t(t['off'])} | — | — |"]
        for mode, ov in t["overhead"].items():
            inside = t["inside_callbacks"].get(mode)
            lines.append(f"| {mode} | {_t(t[mode])} | {ov:+.1%} | {'—' if inside is None else f'{inside:.2%}'} |")
    if "5_sweep_overhead" in r:
        sw = r["5_sweep_overhead"]
        lines += ["", f"## 5. Sweep overhead ({sw['jobs']}-job `debug=smoke` multirun)", "",
                  "| launcher | wall | Σ job training | overhead |", "|---|---|---|---|"]
        for mode in ("basic launcher", "joblib, 2 workers"):
            x = sw[mode]
            lines.append(f"| {mode} | {_t(x['wall'])} | {_t(x['sum_of_job_training'])} | "
                         f"{_t(x['overhead (wall - sum of training)'])} |")
    if "6_scaling" in r:
        lines += ["", "## 6. Step time vs crop (float32, CPU)", "", "| model | crop | step | samples/s |",
                  "|---|---|---|---|"]
        for x in r["6_scaling"]:
            lines.append(f"| {x['variant']} | {x['crop']} | {x['step_s_median']:.3g} s (min {x['step_s_min']:.3g}, "
                         f"max {x['step_s_max']:.3g}) | {x['samples_per_s']:.2f} |")
    if "7_xla_vs_graph" in r:
        lines += ["", "## 7. XLA vs TensorFlow graph (CPU)", "",
                  f"One runner epoch ({s['steps']} batches) with `trainer.jit_compile=false` (the default) and `true`, "
                  f"{s['repeats']} interleaved rounds after a warm-up (which holds the XLA compilation).", "",
                  "| model | graph | XLA | XLA speed-up |", "|---|---|---|---|"]
        for x in r["7_xla_vs_graph"]:
            lines.append(f"| {x['variant']} | {_t(x['graph'])} | {_t(x['xla'])} | {_ratio(x['xla_speedup'], '×')} |")
    if "8_scale" in r:
        rep = r["8_scale"]["report"]
        lines += ["", "## 8. Scale", "",
                  f"A report over a complete sweep of {rep['runs']} finished jobs ({rep['proteins']} test proteins "
                  f"each, real artifacts, SQLite store): **{rep['report_seconds']} s** (filling the store took "
                  f"{rep['store_fill_seconds']} s, not part of the measure).", *scale_lines(r["8_scale"])]
    return "\n".join(lines) + "\n"


def committed_dir() -> Path:
    """Where the committed full-run results live."""
    from protstruct import config

    return (config.project_root() / "experiments" / "bench").resolve()


def out_dir(out: Path | None, quick: bool, items: tuple[str, ...]) -> Path:
    """The folder to write to; raises ValueError for a smoke or partial run aimed at the committed
    results (before anything runs)."""
    full = not quick and set(ITEMS) <= set(items)
    if out is None:
        return committed_dir() if full else Path("outputs") / ("bench-quick" if quick else "bench-items")
    target = out.expanduser().resolve()
    if not full and (target == committed_dir() or target.is_relative_to(committed_dir())):
        what = "--quick" if quick else f"--items {','.join(items)}"
        raise ValueError(f"--out {out}: {committed_dir()} holds the committed full-run results; a {what} run "
                         "may not replace them. Leave --out out (it writes to outputs/) or choose another folder")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CI-sized smoke run (asserts nothing about speed)")
    parser.add_argument("--offline", action="store_true", help="item 3 without downloading the real files")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: experiments/bench for a full run of every item, "
                             "else outputs/bench-quick or outputs/bench-items)")
    parser.add_argument("--items", default=",".join(ITEMS), help="comma-separated items to run (default all)")
    args = parser.parse_args(argv)
    console.import_tensorflow()
    items = tuple(i.strip() for i in args.items.split(","))
    try:
        out = out_dir(args.out, args.quick, items)
    except ValueError as exc:
        print(f"protstruct.bench: {exc}", file=sys.stderr)
        return 2
    print(f"bench: results go to {out}", file=sys.stderr, flush=True)
    results = run(QUICK if args.quick else FULL, args.offline, items)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(results, indent=1))
    text = markdown(results)
    (out / "bench.md").write_text(text)
    print(text)
    print(f"bench: wrote {out / 'bench.json'} and {out / 'bench.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
