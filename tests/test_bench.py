"""`make bench --quick` runs end to end (it keeps the benchmark code from rotting; it asserts
nothing about speed — speed is reported by `make bench`, never asserted in tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def test_quick_bench_writes_every_item(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "protstruct.bench", "--quick", "--offline", "--out", str(tmp_path)],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads((tmp_path / "bench.json").read_text())
    for item in (
        "1_runner_vs_original_loop",
        "2_pipeline_efficiency",
        "3_preprocessing",
        "4_tracking_overhead",
        "5_sweep_overhead",
        "6_scaling",
        "7_xla_vs_graph",
        "8_scale",
    ):
        assert item in results, item
    first = results["1_runner_vs_original_loop"][0]["first_step_loss"]
    assert first["runner_exact_arithmetic_rel_diff"] <= 1e-5  # same weights, same batch, same loss
    assert results["3_preprocessing"]["files"] == 6
    scale = results["8_scale"]
    assert scale["parse"]["cold"]["mb_per_cpu_s"] > 0 and scale["parse"]["records"] > 0
    (job,) = scale["training"]["jobs"]
    assert job["cold"]["chains"]["train"] == job["warm"]["chains"]["train"] > 0
    assert 0 < job["warm"]["load_seconds"] <= job["warm"]["first_step_seconds"]
    assert scale["pipeline_256"]["pipeline_alone"]["samples_per_s"] > 0 and scale["split"][0]["components"] > 0
    md = (tmp_path / "bench.md").read_text()
    assert "## 6. Step time vs crop" in md and "Noise floor" in md and "MB/s per core" in md


def _stub_results(settings, offline, items):
    return {
        "settings": dict(settings),
        "machine": {"cpus": 1, "platform": "p", "python": "3", "tensorflow": "t", "keras": "k", "device": "CPU"},
        "started": "now",
        "total_seconds": 0.0,
    }


def test_quick_bench_writes_outside_experiments_by_default(tmp_path, monkeypatch):
    from protstruct.bench import __main__ as bench

    committed = {p.name: p.read_bytes() for p in (ROOT / "experiments" / "bench").iterdir()}
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bench, "run", _stub_results)
    assert bench.main(["--quick"]) == 0
    assert (tmp_path / "outputs" / "bench-quick" / "bench.json").is_file()
    assert not (tmp_path / "experiments").exists()
    assert {p.name: p.read_bytes() for p in (ROOT / "experiments" / "bench").iterdir()} == committed


def test_only_a_full_bench_may_write_into_experiments_bench(tmp_path, monkeypatch, capsys):
    import protstruct.config
    from protstruct.bench import __main__ as bench

    committed = tmp_path / "experiments" / "bench"
    committed.mkdir(parents=True)
    (committed / "bench.json").write_text("{}")
    monkeypatch.setattr(protstruct.config, "project_root", lambda: tmp_path)
    monkeypatch.chdir(tmp_path)

    def refuse(*args):
        raise AssertionError("the bench ran")

    monkeypatch.setattr(bench, "run", refuse)
    for argv in (
        ["--quick", "--out", str(committed)],
        ["--quick", "--out", "experiments/bench"],
        ["--items", "1,2", "--out", str(committed)],
    ):
        assert bench.main(argv) == 2, argv
        assert "holds the committed full-run results" in capsys.readouterr().err
    assert [p.name for p in committed.iterdir()] == ["bench.json"] and (committed / "bench.json").read_text() == "{}"
    monkeypatch.setattr(bench, "run", _stub_results)
    assert bench.main([]) == 0 and (committed / "bench.md").is_file()  # a full run of every item may


def test_every_item_has_a_measure_and_an_unknown_item_is_refused(capsys):
    from protstruct.bench import __main__ as bench
    from protstruct.bench import items

    assert tuple(items.MEASURES) == bench.ITEMS
    assert bench.main(["--items", "1,9", "--out", "unused"]) == 2
    assert "--items: no item 9" in capsys.readouterr().err


@pytest.mark.parametrize("variant,params", [("P0", 26_033_409), ("P1", 26_015_233)])
def test_the_bench_models_are_the_projects_experiments(variant, params):
    """The bench builds P0 and P1 from conf/ (experiment=p0 / p1), as a training job does."""
    from protstruct.bench import step_rate

    model = step_rate.original_model(variant, 256)
    assert model.count_params() == params
    has_dropout = any(layer.__class__.__name__ == "Dropout" for layer in model.layers)
    assert has_dropout == (variant == "P1")
    small = step_rate.original_config(variant, 32, "small_cnn")
    assert (small.backbone.output_stride, small.data.crop_size) == (8, 32)
