"""``bench.md``'s item 8 (scale): the report over a large sweep, ProteinNet parsing, training on
generated folders, the input pipeline at crop 256 and the homology split, each as it ran."""

from __future__ import annotations


def scale_section(r: dict) -> list[str]:
    """Item 8: the report over a large sweep, then each scale measure that ran."""
    rep = r["report"]
    lines = [
        "",
        "## 8. Scale",
        "",
        (
            f"A report over a complete sweep of {rep['runs']} finished jobs ({rep['proteins']} test proteins "
            f"each, real artifacts, SQLite store): **{rep['report_seconds']} s** (filling the store took "
            f"{rep['store_fill_seconds']} s, not part of the measure)."
        ),
    ]
    if "parse" in r:
        lines += parse_throughput_lines(r["parse"])
    if "training" in r:
        lines += training_at_scale_table(r["training"])
    if "pipeline_256" in r:
        lines += pipeline_at_crop_256_lines(r["pipeline_256"])
    if "split" in r:
        lines += homology_split_table(r["split"])
    return lines


def parse_throughput_lines(p: dict) -> list[str]:
    return [
        "",
        (
            f"ProteinNet text parsing ({p['records']} records, {p['mb']} MB, generated): cold cache "
            f"{p['cold']['seconds']} s = **{p['cold']['mb_per_cpu_s']} MB/s per core** "
            f"({p['cold']['mb_per_s']} MB/s wall); warm cache {p['warm']['seconds']} s "
            f"({p['warm']['mb_per_cpu_s']} MB per CPU-second of input)."
        ),
    ]


def training_at_scale_table(t: dict) -> list[str]:
    lines = [
        "",
        (
            f"A training job (`features=pssm backbone=small_cnn trainer.steps_per_epoch={t['steps']}`, "
            "one epoch, validation capped by `data.val_sample`, full test set) on generated casp folders:"
        ),
        "",
        "| records | MB | cache | load | first step | job wall | peak RSS |",
        "|---|---|---|---|---|---|---|",
    ]
    for job in t["jobs"]:
        for mode in ("cold", "warm"):
            x = job[mode]
            lines.append(
                f"| {job['records']:,} | {job['mb']:,} | {mode} | {x['load_seconds']} s | "
                f"{x['first_step_seconds']} s | {x['wall_seconds']} s | {x['peak_rss_mib']:,} MiB |"
            )
    if "bytes_per_residue" in t:
        lines += [
            "",
            (
                f"Peak memory grows by **{t['bytes_per_residue']} bytes per residue** loaded (warm "
                "jobs, between the two largest folders)."
            ),
        ]
    return lines


def pipeline_at_crop_256_lines(x: dict) -> list[str]:
    e = x["end_to_end"]
    return [
        "",
        (
            f"Input pipeline alone at crop {x['crop']} (batch {x['batch']}, relative position, embedded "
            f"training set): **{x['pipeline_alone']['samples_per_s']:.0f} samples/s**. In the same run, the "
            f"P0 runner on it: {e['real_pipeline']['samples_per_s']:.2f} samples/s against "
            f"{e['in_memory']['samples_per_s']:.2f} on in-memory tensors (efficiency "
            f"{e['efficiency']['median']:.3f})."
        ),
    ]


def homology_split_table(rows: list[dict]) -> list[str]:
    lines = [
        "",
        "Homology split (MMseqs2) of mutated real families:",
        "",
        "| chains | wall | MMseqs2 CPU-s | components | largest | peak RSS (MMseqs2) |",
        "|---|---|---|---|---|---|",
    ]
    for x in rows:
        lines.append(
            f"| {x['chains']:,} | {x['seconds']} s | {x['mmseqs_cpu_seconds']} | {x['components']:,} | "
            f"{x['largest_component']} | {x['peak_rss_mib_mmseqs_max_so_far']} MiB |"
        )
    return lines
