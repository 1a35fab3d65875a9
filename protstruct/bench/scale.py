"""Scale: ProteinNet parsing (MB/s per core, cold and warm cache), a training job on generated casp
folders of up to 10⁵ records (load time, time to first step, peak memory and how it grows with
residues), and the input pipeline alone at crop 256 beside the end-to-end training step.

Generated folders (:mod:`protstruct.data.synthetic_casp`: one thinning, validation, testing, L
60–300, with PSSMs) are written once under ``outputs/bench-data/`` and reused: writing 10⁵ records
(~7 GB) takes ~10 minutes and is not part of any measure.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from protstruct import config

DATA_ROOT = Path("outputs") / "bench-data"


def casp_folder(records: int, root: Path = DATA_ROOT, seed: int = 0) -> Path:
    """A generated casp folder of ``records`` training records, written on first use."""
    from protstruct.data import synthetic_casp

    folder = root / f"casp-{records}-seed{seed}"
    stamp = folder / ".complete.json"  # written last: a half-written folder is written again
    if not stamp.is_file():
        started = time.perf_counter()
        counts = synthetic_casp.write(folder, records, seed=seed)
        stamp.write_text(json.dumps({"counts": counts, "seconds": round(time.perf_counter() - started, 1)}))
    return folder


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")) / 1e6


def parse_throughput(folder: Path, repeats: int) -> dict:
    """``folder.load`` of a casp folder with an empty cache (parse) and a filled one (cache hit), in
    wall seconds and MB of input per CPU-second (the parse runs on one core)."""
    from protstruct.data import folder as data_folder

    mb = _folder_mb(folder)
    out: dict = {"mb": round(mb, 1)}
    with tempfile.TemporaryDirectory() as tmp:
        data_folder.load(folder, "proteinnet", cache_dir=Path(tmp) / "warm", thinning=30)  # fills the warm cache
        for mode in ("cold", "warm"):
            walls, cpus = [], []
            for r in range(repeats):
                cache = Path(tmp) / (f"cold{r}" if mode == "cold" else "warm")
                wall, cpu = time.perf_counter(), _cpu_seconds()
                records, _, _ = data_folder.load(folder, "proteinnet", cache_dir=cache, thinning=30)
                walls.append(time.perf_counter() - wall)
                cpus.append(_cpu_seconds() - cpu)
                out["records"] = len(records)
                del records
            best = min(range(repeats), key=lambda i: walls[i])
            out[mode] = {
                "seconds": round(walls[best], 2),
                "cpu_seconds": round(cpus[best], 2),
                "mb_per_s": round(mb / walls[best], 1),
                "mb_per_cpu_s": round(mb / cpus[best], 1),
                "seconds_all": [round(w, 2) for w in walls],
            }
    return out


def training_job(folder: Path, cache_dir: Path, workdir: Path, steps: int) -> dict:
    """One real ``python run.py`` job on ``folder``: wall seconds and what the job measured itself."""
    from protstruct.tracking import mlflow_store

    uri = f"sqlite:///{workdir}/mlflow.db"
    args = [
        sys.executable,
        str(config.project_root() / "run.py"),
        "data=proteinnet",
        f"data.path={folder}",
        "data.thinning=30",
        f"data.cache_dir={cache_dir}",
        "features=pssm",
        "backbone=small_cnn",
        "trainer.epochs=1",
        f"trainer.steps_per_epoch={steps}",
        "tracking.experiment=scale",
        f"tracking.uri={uri}",
        f"tracking.artifact_root={workdir}/artifacts",
        "tracking.log_model=false",
        "rerun=true",
        f"hydra.run.dir={workdir}/run",
    ]
    started = time.perf_counter()
    proc = subprocess.run(args, check=False, cwd=workdir, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"scale job on {folder} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    client = mlflow_store.client_for(uri)
    experiment = client.get_experiment_by_name("scale")
    if experiment is None:
        raise RuntimeError(f"scale job on {folder} logged no MLflow experiment 'scale'")
    run = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)[0]
    m = run.data.metrics
    inputs = run.inputs.dataset_inputs if run.inputs else []
    residues = sum(json.loads(i.dataset.profile or "{}").get("residues", 0) for i in inputs)
    return {
        "wall_seconds": round(wall, 1),
        "load_seconds": round(m["time/data_load_seconds"], 1),
        "first_step_seconds": round(m["time/to_first_step_seconds"], 1),
        "peak_rss_mib": round(m["memory/peak_rss_mb"]),
        "residues": residues,
        "chains": {s: int(m[f"data/{s}_proteins"]) for s in ("train", "val", "test")},
    }


def training_at_scale(sizes: tuple[int, ...], steps: int = 10) -> dict:
    """A job on each generated folder, first with an empty cache (parse) then a filled one (what
    every later job of a sweep pays); memory growth per residue between the two largest sizes."""
    jobs = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            folder = casp_folder(n)
            row: dict = {"records": n, "mb": round(_folder_mb(folder), 1)}
            for mode in ("cold", "warm"):
                work = Path(tmp) / f"{n}-{mode}"
                work.mkdir()
                row[mode] = training_job(folder.resolve(), Path(tmp) / f"cache-{n}", work, steps)
            jobs.append(row)
    out: dict = {"steps": steps, "jobs": jobs}
    if len(jobs) >= 2:
        small, large = jobs[-2]["warm"], jobs[-1]["warm"]
        out["bytes_per_residue"] = round(
            (large["peak_rss_mib"] - small["peak_rss_mib"]) * 2**20 / max(1, large["residues"] - small["residues"])
        )
    return out


def pipeline_vs_step(records, backbone: str, batch: int, samples: int, rounds: int, crop: int = 256) -> dict:
    """The input pipeline alone (crops, pair features, targets; relative position) in samples/s, and
    the P0 runner (on ``backbone``) on it against the same compiled step on in-memory tensors, at
    ``crop``."""
    from protstruct.bench import loops, timing
    from protstruct.data import pipeline
    from protstruct.data.features import RelativePosition

    # one endless stream, built and traced once; each repeat times the next ``samples`` of it
    stream = iter(pipeline.train_dataset(records, crop, batch, RelativePosition(), seed=0, epochs=10**6))

    def pipeline_alone():
        seen = 0
        while seen < samples:
            seen += int(next(stream)[0].shape[0])
        return seen

    alone = timing.repeat(pipeline_alone, rounds)
    end_to_end = loops.pipeline_efficiency(records, "P0", backbone, crop, batch, rounds)
    return {"crop": crop, "batch": batch, "pipeline_alone": alone, "end_to_end": end_to_end}
