"""``bench.md``: the results of ``python -m protstruct.bench`` (``bench.json``) as Markdown, one
section per item that ran."""

from __future__ import annotations

from protstruct.bench.render_scale import scale_section

RUNNER_VS_ORIGINAL_LOOP = "1_runner_vs_original_loop"


def markdown(r: dict) -> str:
    """The whole of ``bench.md`` for the results ``r``."""
    s = r["settings"]
    lines = header(r)
    if RUNNER_VS_ORIGINAL_LOOP in r:
        lines += runner_vs_original_loop_section(r[RUNNER_VS_ORIGINAL_LOOP], s)
        lines += first_step_loss_table(r[RUNNER_VS_ORIGINAL_LOOP])
    if "2_pipeline_efficiency" in r:
        lines += pipeline_efficiency_section(r["2_pipeline_efficiency"])
    if "3_preprocessing" in r:
        lines += preprocessing_section(r["3_preprocessing"])
    if "4_tracking_overhead" in r:
        lines += tracking_overhead_section(r["4_tracking_overhead"])
    if "5_sweep_overhead" in r:
        lines += sweep_overhead_section(r["5_sweep_overhead"])
    if "6_scaling" in r:
        lines += crop_scaling_section(r["6_scaling"])
    if "7_xla_vs_graph" in r:
        lines += xla_vs_graph_section(r["7_xla_vs_graph"], s)
    if "8_scale" in r:
        lines += scale_section(r["8_scale"])
    return "\n".join(lines) + "\n"


def _seconds(x: dict) -> str:
    """A timing summary: median seconds (min, max, repeats)."""
    return f"{x['median_s']:.3g} s (min {x['min_s']:.3g}, max {x['max_s']:.3g}, n={x['repeats']})"


def _samples_per_s(x: dict) -> str:
    """A timing summary as samples/s: at the median (at the slowest–fastest repeat)."""
    return f"{x['samples_per_s']:.2f}/s ({x['samples'] / x['max_s']:.2f}–{x['samples'] / x['min_s']:.2f})"


def _ratio(x: dict, unit: str = "") -> str:
    """A paired ratio: median (min–max) over rounds."""
    return f"{x['median']:.3g}{unit} ({x['min']:.3g}–{x['max']:.3g})"


def header(r: dict) -> list[str]:
    s, m = r["settings"], r["machine"]
    return [
        f"# make bench — {r['started']}",
        "",
        (
            f"Machine: {m['cpus']} CPUs, {m['platform']}, Python {m['python']}, TensorFlow {m['tensorflow']}, "
            f"Keras {m['keras']}; devices: {m['device']}. Total {r['total_seconds']:.0f} s."
        ),
        "",
        (
            f"Fixed for items 1, 2, 4: {s['backbone']} + decoder, crop {s['crop']}, batch {s['batch']}, "
            f"{s['steps']} steps per timed block (item 1), median of {s['repeats']} repeats after a warm-up."
        ),
    ]


def runner_vs_original_loop_section(rows: list[dict], s: dict) -> list[str]:
    """Item 1: samples/s of the original loop, the bare compiled step and the runner, and their ratios."""
    lines = [
        "",
        "## 1. Runner vs the original report's loop",
        "",
        (
            f"Samples/s over one epoch of the same {s['steps']} batches from the same weights, in "
            f"{s['repeats']} interleaved rounds (median, min–max). Ratios are the median (min–max) of the "
            "per-round ratios. Target: runner ≥ 4.5× the original loop and ≥ 0.95 of the bare compiled step."
        ),
        "",
        (
            "| model | original loop + per-batch validation | original loop | bare compiled step | "
            "protstruct runner | runner ÷ original loop | runner ÷ original loop with validation | "
            "runner ÷ bare step |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for x in rows:
        rates = [
            _samples_per_s(x[k])
            for k in ("original_loop_with_per_batch_validation", "original_loop", "bare_compiled_step", "runner")
        ]
        ratios = [
            _ratio(x["runner_vs_original_loop"], "×"),
            _ratio(x["runner_vs_original_loop_with_validation"], "×"),
            _ratio(x["runner_vs_bare_compiled_step"]),
        ]
        lines.append(f"| {x['variant']} | " + " | ".join(rates + ratios) + " |")
    return lines


def first_step_loss_table(rows: list[dict]) -> list[str]:
    """Item 1: the first step's loss in the original loop and in the runner, from the same weights."""
    lines = [
        "",
        (
            "First-step loss, same weights and batch, dropout off. With Grappler's arithmetic optimizer off "
            "the compiled step does the original loop's exact arithmetic; with it on (as in training) float32 "
            "sums are reordered."
        ),
        "",
        "| model | original loop | runner, exact arithmetic | diff | runner, as trained | relative diff |",
        "|---|---|---|---|---|---|",
    ]
    for x in rows:
        f = x["first_step_loss"]
        lines.append(
            f"| {x['variant']} | {f['original_loop']:.6f} | {f['runner_exact_arithmetic']:.6f} | "
            f"{f['runner_exact_arithmetic_abs_diff']:.1e} | {f['runner']:.6f} | {f['runner_rel_diff']:.1e} |"
        )
    return lines


def pipeline_efficiency_section(p: dict) -> list[str]:
    """Item 2: the runner's epoch on the real pipeline against in-memory tensors."""
    return [
        "",
        "## 2. Input pipeline efficiency",
        "",
        (
            f"One epoch of the runner on the real pipeline (fresh random crops each epoch) against the same "
            f"compiled step on in-memory tensors of the same shape, {p['in_memory']['repeats']} interleaved "
            "rounds. Target ≥ 0.95."
        ),
        "",
        "| input | epoch time | samples/s |",
        "|---|---|---|",
        f"| real pipeline | {_seconds(p['real_pipeline'])} | {p['real_pipeline']['samples_per_s']:.2f} |",
        f"| in-memory tensors | {_seconds(p['in_memory'])} | {p['in_memory']['samples_per_s']:.2f} |",
        "",
        f"**Efficiency {_ratio(p['efficiency'])}** (per-round in-memory ÷ real-pipeline epoch time).",
    ]


def preprocessing_section(pre: dict) -> list[str]:
    """Item 3: seconds and files/s of each preprocessing step."""
    lines = [
        "",
        "## 3. Preprocessing throughput",
        "",
        f"{pre['files']} files, {pre['megabytes']} MB: {pre['what']}.",
        "",
        "| step | time | files/s |",
        "|---|---|---|",
    ]
    for step, timed in pre.items():
        if isinstance(timed, dict):
            lines.append(f"| {step} | {_seconds(timed)} | {pre['files'] / timed['median_s']:.1f} |")
    return lines


def tracking_overhead_section(t: dict) -> list[str]:
    """Item 4: epoch time with each MLflow logging mode, against logging off."""
    lines = [
        "",
        "## 4. Tracking overhead (one epoch incl. validation, interleaved)",
        "",
        (
            f"Wall-clock overhead is the median per-round ratio to 'off' minus 1. Noise floor (the median "
            f"per-round |off again ÷ off − 1|): {t['noise_floor']:.1%}. 'Inside callbacks' is the share of the "
            "epoch spent in the logging calls themselves: what synchronous logging adds to the hot path, "
            "free of the machine's drift. Target ≤ 2 % or below the noise floor."
        ),
        "",
        "| logging | epoch time | wall-clock overhead | inside callbacks |",
        "|---|---|---|---|",
        f"| off | {_seconds(t['off'])} | — | — |",
    ]
    for mode, overhead in t["overhead"].items():
        inside = t["inside_callbacks"].get(mode)
        lines.append(
            f"| {mode} | {_seconds(t[mode])} | {overhead:+.1%} | {'—' if inside is None else f'{inside:.2%}'} |"
        )
    return lines


def sweep_overhead_section(sw: dict) -> list[str]:
    """Item 5: a multirun's wall time against its jobs' training time, per launcher."""
    lines = [
        "",
        f"## 5. Sweep overhead ({sw['jobs']}-job `debug=smoke` multirun)",
        "",
        "| launcher | wall | Σ job training | overhead |",
        "|---|---|---|---|",
    ]
    for mode in ("basic launcher", "joblib, 2 workers"):
        x = sw[mode]
        lines.append(
            f"| {mode} | {_seconds(x['wall'])} | {_seconds(x['sum_of_job_training'])} | "
            f"{_seconds(x['overhead (wall - sum of training)'])} |"
        )
    return lines


def crop_scaling_section(rows: list[dict]) -> list[str]:
    """Item 6: seconds per train step and samples/s against crop size."""
    lines = [
        "",
        "## 6. Step time vs crop (float32, CPU)",
        "",
        "| model | crop | step | samples/s |",
        "|---|---|---|---|",
    ]
    for x in rows:
        lines.append(
            f"| {x['variant']} | {x['crop']} | {x['step_s_median']:.3g} s (min {x['step_s_min']:.3g}, "
            f"max {x['step_s_max']:.3g}) | {x['samples_per_s']:.2f} |"
        )
    return lines


def xla_vs_graph_section(rows: list[dict], s: dict) -> list[str]:
    """Item 7: the runner's epoch as a TensorFlow graph and XLA-compiled."""
    lines = [
        "",
        "## 7. XLA vs TensorFlow graph (CPU)",
        "",
        (
            f"One runner epoch ({s['steps']} batches) with `trainer.jit_compile=false` (the default) and "
            f"`true`, {s['repeats']} interleaved rounds after a warm-up (which holds the XLA compilation)."
        ),
        "",
        "| model | graph | XLA | XLA speed-up |",
        "|---|---|---|---|",
    ]
    for x in rows:
        lines.append(
            f"| {x['variant']} | {_seconds(x['graph'])} | {_seconds(x['xla'])} | {_ratio(x['xla_speedup'], '×')} |"
        )
    return lines
