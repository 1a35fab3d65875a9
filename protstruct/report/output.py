"""Where a report may be written, and writing it whole.

- ``experiments/`` holds curated results: a report goes there only for ``--study S`` from a sweep
  whose overrides are exactly ``study=S`` (no ``debug=smoke``, no ``trainer.*`` …), and never a
  partial one. The checks run before anything is written.
- A report is built in a fresh folder next to ``--out`` and swapped in (the old folder renamed
  aside, the new one renamed into place, the old one deleted), so an output folder never mixes
  files of two sweeps. A folder holding anything but report files is never replaced.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path

from protstruct import config
from protstruct.report.runs import Refused
from protstruct.tracking.redact import redact

# what a report writes: the only files a folder it replaces may hold (anything else is refused,
# so that --out pointing at a folder of other files never deletes them)
REPORT_FILES = frozenset(
    {"report.md", "report.csv", "report.html", "paired.csv", "test_rmse.png", "loss_curves.png", "heatmaps.png"}
)


def experiments_dir() -> Path:
    return (config.project_root() / "experiments").resolve()


def inside_experiments(out: Path) -> bool:
    return Path(out).expanduser().resolve().is_relative_to(experiments_dir())


def check_destination(out: Path | None, study: str | None, allow_partial: bool) -> None:
    """Refuse, before reading or writing anything, what can never go into ``out``."""
    if out is None:
        return
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise Refused(f"--out {out} exists and is not a folder")
    foreign = sorted(p.name for p in out.iterdir() if p.name not in REPORT_FILES) if out.is_dir() else []
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise Refused(
            f"--out {out} holds files a report does not write ({redact(shown)}); the report replaces "
            "its folder whole, so choose a new folder or one holding only an earlier report"
        )
    if not inside_experiments(out):
        return
    if allow_partial:
        raise Refused(
            f"--out {out} is inside {experiments_dir()}, which holds curated results; a report made "
            "with --allow-partial may never go there: write it elsewhere (e.g. --out outputs/report)"
        )
    if not study:
        raise Refused(
            f"--out {out} is inside {experiments_dir()}: name the study the results are for with "
            "--study (the sweep must have been run as exactly `python run.py -m study=STUDY`), "
            "or write elsewhere"
        )


def check_overrides(parent, out: Path | None, study: str | None) -> None:
    """A sweep goes into ``experiments/`` only when it ran exactly the study's definition."""
    if out is None or not inside_experiments(out):
        return
    tags = parent.data.tags
    overrides = tags.get("protstruct.overrides", "").split()
    extra = [o for o in overrides if o != f"study={study}"]
    problems = []
    if extra:
        problems.append(f"overrides beyond the study's definition: {redact(' '.join(extra))}")
    if f"study={study}" not in overrides:
        problems.append(f"it was not run with study={study}")
    if tags.get("protstruct.study", "") != study:
        problems.append(f"its study tag is {redact(tags.get('protstruct.study', ''))!r}")
    if problems:
        raise Refused(
            f"sweep {parent.info.run_id} differs from study {study!r}'s definition ("
            f"{'; '.join(problems)}); its report may not go into {experiments_dir()} (--out {out}): "
            "write it elsewhere, e.g. --out outputs/report"
        )


@contextlib.contextmanager
def staged(out: Path):
    """Yield a fresh folder next to ``out``; when the block succeeds it replaces ``out`` whole,
    when it fails it is deleted and ``out`` is left as it was."""
    out = Path(out).expanduser().absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    new = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    new.chmod(0o777 & ~umask)  # mkdtemp's 0700 would make the results private
    try:
        yield new
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
    had_old = out.exists() or out.is_symlink()
    if had_old:
        os.rename(out, old)
    try:
        os.rename(new, out)
    except BaseException:
        if had_old:
            os.rename(old, out)
        shutil.rmtree(new, ignore_errors=True)
        raise
    if had_old:
        if old.is_symlink() or not old.is_dir():
            old.unlink()
        else:
            shutil.rmtree(old)
