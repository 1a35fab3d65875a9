"""What a user sees: --help explains every config group, tab completion installs, and a job's
console has one line per epoch and the summary — no TensorFlow start-up noise."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import CONF, ROOT


def _run(*args):
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_help_explains_every_config_group_with_examples():
    proc = _run("--help")
    assert proc.returncode == 0, proc.stderr
    groups = [*sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name != "hydra"), "hydra/launcher"]
    lines = proc.stdout.splitlines()
    for group in groups:
        (line,) = [i for i, text in enumerate(lines) if text.strip().startswith(group + " ")]
        described = " ".join(lines[line : line + 2])
        assert "e.g." in described and described.count("|") >= 1, (group, described)
    assert 'eval "$(python run.py -sc install=bash)"' in proc.stdout


def test_shell_completion_installs_and_completes_groups():
    proc = _run("-sc", "install=bash")
    assert proc.returncode == 0 and "hydra_bash_completion" in proc.stdout and "complete -o nospace" in proc.stdout
    env = {"COMP_LINE": "python run.py decoder=", "COMP_POINT": "999"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "-sc", "query=bash"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.split() == ["decoder=bilinear", "decoder=subpixel", "decoder=transpose", "decoder=upsample"]


def test_a_jobs_console_has_no_start_up_noise(smoke_sweep):
    out = smoke_sweep["output"]
    for noise in ("I0000", "oneDNN", "cuInit", "cuda drivers", "absl::InitializeLog", "system metrics"):
        assert noise not in out, noise
    epoch_lines = [line for line in out.splitlines() if "val_rmse" in line]
    assert len(epoch_lines) == 2  # two smoke jobs, one epoch each: one line per epoch
    assert "sweep summary ({'ok': 2})" in out
