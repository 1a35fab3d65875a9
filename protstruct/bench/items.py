"""The eight items of ``python -m protstruct.bench``: each measure's call under the run's settings,
and the key its result has in ``bench.json``."""

from __future__ import annotations

from dataclasses import dataclass

from protstruct.bench import (
    data_and_sweeps,
    loops,
    render,
    report_scale,
    scale,
    split_scale,
    step_rate,
)


@dataclass(frozen=True)
class Inputs:
    """What the items measure with: ``settings`` (FULL or QUICK), the embedded set's training and
    validation records (the first ``settings["records"]``), and whether item 3 may download."""

    settings: dict
    train: list
    val: list
    offline: bool


def runner_vs_original_loop(i: Inputs) -> list[dict]:
    s = i.settings
    return [
        loops.runner_vs_original(i.train, i.val, v, s["backbone"], s["crop"], s["batch"], s["steps"], s["repeats"])
        for v in s["variants"]
    ]


def pipeline_efficiency(i: Inputs) -> dict:
    s = i.settings
    return loops.pipeline_efficiency(i.train, "P0", s["backbone"], s["crop"], s["batch"], s["rounds"])


def preprocessing(i: Inputs) -> dict:
    return data_and_sweeps.preprocessing(i.settings["repeats"], i.settings["files"], i.offline)


def tracking_overhead(i: Inputs) -> dict:
    s = i.settings
    return loops.tracking_overhead(i.train, i.val, "P0", s["backbone"], s["crop"], s["batch"], s["rounds"])


def sweep_overhead(i: Inputs) -> dict:
    return data_and_sweeps.sweep_overhead(i.settings["sweep_jobs"], i.settings["sweep_repeats"])


def crop_scaling(i: Inputs) -> list[dict]:
    s = i.settings
    return [
        step_rate.measure(
            v, crop, "float32", s["batch"], s["scaling_steps"], s["repeats"], jit_compile=False, backbone=s["backbone"]
        )
        for crop in s["scaling_crops"]
        for v in s["variants"]
    ]


def xla_vs_graph(i: Inputs) -> list[dict]:
    s = i.settings
    return [
        loops.xla_vs_graph(i.train, v, s["backbone"], s["crop"], s["batch"], s["steps"], s["repeats"])
        for v in s["variants"]
    ]


def at_scale(i: Inputs) -> dict:
    s = i.settings
    return {
        "report": report_scale.report_scale(s["report_runs"]),
        "parse": scale.parse_throughput(scale.casp_folder(s["parse_records"]), s["repeats"]),
        "training": scale.training_at_scale(tuple(s["scale_records"])),
        "pipeline_256": scale.pipeline_vs_step(
            i.train[: s["pipeline_records"]], s["backbone"], s["pipeline_batch"], s["pipeline_samples"], s["repeats"]
        ),
        "split": split_scale.split_timings(tuple(s["split_sizes"])),
    }


# item → (its key in bench.json, its measure), in the order they run
MEASURES = {
    "1": (render.RUNNER_VS_ORIGINAL_LOOP, runner_vs_original_loop),
    "2": ("2_pipeline_efficiency", pipeline_efficiency),
    "3": ("3_preprocessing", preprocessing),
    "4": ("4_tracking_overhead", tracking_overhead),
    "5": ("5_sweep_overhead", sweep_overhead),
    "6": ("6_scaling", crop_scaling),
    "7": ("7_xla_vs_graph", xla_vs_graph),
    "8": ("8_scale", at_scale),
}
