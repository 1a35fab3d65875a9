"""`make bench --quick` runs end to end (it keeps the benchmark code from rotting; it asserts
nothing about speed — speed is reported by `make bench`, never asserted in tests)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT


def test_quick_bench_writes_every_item(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "protstruct.bench", "--quick", "--offline", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads((tmp_path / "bench.json").read_text())
    for item in ("1_runner_vs_seed_loop", "2_pipeline_efficiency", "3_preprocessing", "4_tracking_overhead",
                 "5_sweep_overhead", "6_scaling", "7_xla_vs_graph"):
        assert item in results, item
    first = results["1_runner_vs_seed_loop"][0]["first_step_loss"]
    assert first["runner_exact_arithmetic_rel_diff"] <= 1e-5  # same weights, same batch, same loss
    assert results["3_preprocessing"]["files"] == 6
    md = (tmp_path / "bench.md").read_text()
    assert "## 6. Step time vs crop" in md and "Noise floor" in md
