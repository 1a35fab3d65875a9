"""`python -m protstruct.report` on the smoke sweep's runs."""

from __future__ import annotations

import shutil
import subprocess

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from protstruct.report import html, paired, published, tables, variants
from protstruct.report.__main__ import main
from protstruct.report.ui_screenshot import CHROMIUM_ARGS


def test_report_tables_from_the_smoke_sweep(smoke_sweep, tmp_path, capsys):
    out = tmp_path / "report"
    rc = main(
        [
            "--tracking-uri",
            smoke_sweep["uri"],
            "--experiment",
            smoke_sweep["experiment"],
            "--group-by",
            "decoder,dropout",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(out / "report.csv")
    assert sorted(table["decoder"]) == ["transpose", "upsample"] and list(table["n"]) == [1, 1]
    ref = table[table["decoder"] == "transpose"].iloc[0]
    # the runs' own name for the original report's MSE (test/mse_seed before its rename)
    (change,) = [
        c for c in table.columns if c in ("test/mse_original change vs reference", "test/mse_seed change vs reference")
    ]
    assert ref[change] == 0.0
    assert "published numbers" not in printed  # the smoke sweep belongs to no study that has them
    assert "separation baseline" in printed
    md = (out / "report.md").read_text()
    assert md in printed and "Paired comparison against decoder=transpose,dropout=none" in md
    assert "only 4 paired proteins" in md  # the smoke sweep is too small to claim anything
    for png in ("test_rmse.png", "loss_curves.png", "heatmaps.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3
    # small_cnn's stride 8 leaves P0's last transposed convolution stride 2 ≥ kernel 3: every cell reached
    assert "each variant&#x27;s prediction (seed 0)." in page and "transposed convolution" not in page
    client = MlflowClient(smoke_sweep["uri"])
    exp = client.get_experiment_by_name(smoke_sweep["experiment"])
    (parent,) = [r for r in client.search_runs([exp.experiment_id]) if r.data.tags["protstruct.role"] == "sweep"]
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/report.html", "report/report.md", "report/heatmaps.png"} <= logged


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs Debian's chromium)")
def test_html_report_images_load_in_headless_chromium(smoke_sweep, tmp_path):
    out = tmp_path / "report"
    assert (
        main(
            [
                "--tracking-uri",
                smoke_sweep["uri"],
                "--experiment",
                smoke_sweep["experiment"],
                "--group-by",
                "decoder",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            *CHROMIUM_ARGS,  # the flags make ui-screenshot uses: nothing beyond loopback
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            (out / "report.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "images loaded: 3/3" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_report_names_a_missing_experiment(smoke_sweep, capsys):
    rc = main(["--tracking-uri", smoke_sweep["uri"], "--experiment", "no_such_experiment"])
    assert rc == 2
    assert "no MLflow experiment named 'no_such_experiment'" in capsys.readouterr().err


def test_report_names_an_unknown_group_key(smoke_sweep, capsys):
    rc = main(
        ["--tracking-uri", smoke_sweep["uri"], "--experiment", smoke_sweep["experiment"], "--group-by", "flavour"]
    )
    assert rc == 2 and "'flavour' is neither a config group nor a config key" in capsys.readouterr().err


def test_published_numbers_come_from_the_study_config_only():
    numbers = published.for_study("p0_vs_p1")
    assert [m["value"] for m in numbers.models] == [157_040_312_320.0, 39_560_581_120.0]
    text = "\n\n".join(published.markdown(numbers, "test/mse_original", 64))
    assert "| P0 (decoder=transpose, dropout=none) | 157,040,312,320 |" in text
    assert "| change P0 → P1 | -74.8% |" in text
    assert "summed over a 64×64 window" in text
    assert "window" not in "".join(published.markdown(numbers, "test/mse_original", 256))
    for study in ("beyond", None, "", "no_such_study", "../conf/study/p0_vs_p1", "_base"):
        assert published.for_study(study) is None, study


def _runs(decoder: str, stride: int, filters: str, status: str = "FINISHED") -> dict:
    return {
        "status": status,
        "tags.protstruct.decoder": decoder,
        "params.decoder._target_": f"protstruct.models.decoders.{decoder}",
        "params.decoder.filters": filters,
        "params.decoder.kernel_size": "3",
        "params.backbone.output_stride": str(stride),
    }


def test_heatmap_caption_follows_each_runs_decoder():
    group = {"decoder": "tags.protstruct.decoder"}
    resnet = pd.DataFrame([_runs("transpose", 32, "[128, 64, 32]"), _runs("upsample", 32, "[128, 64]")])
    facts = variants.last_transposed(resnet, group)
    assert facts == {"decoder=transpose": (3, 8)}
    caption = html.heatmap_caption({"decoder=transpose": "0", "decoder=upsample": "0"}, facts)
    assert "(seed 0)" in caption and "decoder=transpose (kernel 3, stride 8) reaches only 9 of every 64" in caption
    small = pd.DataFrame([_runs("transpose", 8, "[128, 64, 32]")])
    assert "transposed" not in html.heatmap_caption({"decoder=transpose": "1"}, variants.last_transposed(small, group))
    old = pd.DataFrame([{"status": "FINISHED", "tags.protstruct.decoder": "transpose"}])  # no config params
    assert variants.last_transposed(old, group) == {}
    mixed = pd.DataFrame([_runs("transpose", 32, "[128, 64, 32]"), _runs("transpose", 8, "[128, 64, 32]")])
    assert variants.last_transposed(mixed, group) == {}  # one variant, two decoders: no claim


def test_old_metric_names_are_read_and_shown_as_stored():
    def frame(**metrics):
        return pd.DataFrame(
            [
                {
                    "status": "FINISHED",
                    "tags.protstruct.decoder": "a",
                    "metrics.test/rmse": 1.0,
                    "metrics.test/mse": 1.0,
                    "metrics.baseline/test_rmse": 2.0,
                    **{f"metrics.{k}": v for k, v in metrics.items()},
                }
            ]
        )

    group = {"decoder": "tags.protstruct.decoder"}
    old = frame(**{"test/mse_seed": 5.0})
    assert tables.metric_names(old)[tables.MSE_ORIGINAL] == "test/mse_seed"
    assert tables.summarize(old, group, None)["test/mse_seed mean"].iloc[0] == 5.0
    both = pd.concat([old, frame(**{"test/mse_original": 7.0})], ignore_index=True)
    assert tables.metric_names(both)[tables.MSE_ORIGINAL] == "test/mse_original"
    assert tables.summarize(both, group, None)["test/mse_original mean"].iloc[0] == 6.0


def test_pairing_names_what_it_leaves_out():
    rows = [("ref", s, f"P{p}", 10.0 + p) for s in ("0", "1", "2") for p in range(12)]
    rows += [("new", "0", f"P{p}", 9.0 + p) for p in range(12)]
    rows += [("new", "1", f"P{p}", 9.0 + p if p != 2 else float("nan")) for p in range(2, 12)]
    out = paired.compare(pd.DataFrame(rows, columns=["variant", "seed", "protein", "mse"]), "new", "ref")
    assert out["left_out"] == [
        "seed 1: 3 of 12 proteins unpaired (absent or without an MSE on one side)",
        "seed 2: no results of this variant",
    ]
    assert out["note"].endswith("left out: " + "; ".join(out["left_out"]))
