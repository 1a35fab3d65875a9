"""The smoke sweep as a person sees it in MLflow's UI: a real ``mlflow ui`` against the sweep's store,
headless Chromium, real clicks, assertions on what the page renders (never on REST answers).

Found with MLflow 3.17.2: how an experiment opens is decided by the sidebar's *GenAI / Model
training* switch (kept in the browser's localStorage, GenAI by default), not by the
``mlflow.experimentKind`` tag protstruct sets; a first visit lands on the GenAI overview until the
switch is flipped once (see the xfail test).
"""

from __future__ import annotations

import re

import pytest
from mlflow.tracking import MlflowClient

from protstruct.report import ui_screenshot as ui
from tests.ui_browser import expect, skip_without_browser, ui_step

pytestmark = [skip_without_browser()]

CHILDREN = ("decoder=transpose", "decoder=upsample")
TRAIN_DATASET = "embedded:proteins.json.gz/train"


@pytest.fixture(scope="module")
def smoke_ids(smoke_sweep):
    """Run and model ids to find rows by (the assertions are on the rendered text)."""
    client = MlflowClient(tracking_uri=smoke_sweep["uri"])
    exp = client.get_experiment_by_name(smoke_sweep["experiment"])
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("protstruct.role") == "sweep"]
    assert len(parents) == 1, [r.data.tags for r in runs]
    children = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id}
    assert sorted(children) == sorted(CHILDREN)
    models = client.search_logged_models(experiment_ids=[exp.experiment_id])
    return {
        "experiment_id": exp.experiment_id,
        "parent": parents[0],
        "children": {name: run.info.run_id for name, run in children.items()},
        "train_digest": next(
            d.dataset.digest
            for d in children[CHILDREN[0]].inputs.dataset_inputs
            if any(t.value == "train" for t in d.tags)
        ),
        "models": {m.model_id: m for m in models},
    }


@pytest.mark.xfail(
    strict=True,
    reason="MLflow 3.17 opens experiments per the sidebar's GenAI/Model training "
    "switch (default GenAI), ignoring the mlflow.experimentKind tag; strict: when a release honours "
    "the tag this passes, fails the suite, and the README's note on the switch must go",
)
def test_first_visit_opens_experiment_on_its_runs(mlflow_ui_for_smoke, page, tmp_path):
    server = mlflow_ui_for_smoke
    with ui_step(page, tmp_path, "experiments list, click smoke", server):
        ui.open_experiments_list(page, server.url)
        ui.close_assistant(page)
        ui.click_experiment(page, "smoke")
        page.wait_for_url(re.compile(r"#/experiments/\d+/(runs|overview|traces|models)"))
    assert "/runs" in page.url, (
        f"a first visit to experiment 'smoke' opened {page.url}, not its runs table; "
        f"visible text:\n{ui.visible_text(page, 1500)}"
    )


def test_experiment_opens_on_runs_table(mlflow_ui_for_smoke, page, tmp_path):
    server = mlflow_ui_for_smoke
    with ui_step(page, tmp_path, "switch to Model training, click smoke", server):
        ui.open_experiments_list(page, server.url)
        ui.close_assistant(page)
        ui.choose_model_training(page)
        ui.click_experiment(page, "smoke")
        page.wait_for_url(re.compile(r"#/experiments/\d+/runs"))
    with ui_step(page, tmp_path, "runs table rendered", server):
        for header in ("Run Name", "Created", "Dataset", "Source"):
            expect(page.get_by_role("columnheader", name=header).first).to_be_visible()
        expect(page.get_by_role("link", name="sweep multirun")).to_be_visible()
        expect(page.get_by_text("matching runs")).to_contain_text("3 matching runs")
        expect(page.get_by_text("Token Usage")).to_have_count(0)  # the GenAI overview's charts
        expect(page.get_by_text("No traces")).to_have_count(0)


def test_parent_run_expands_to_children_with_dataset_and_source(mlflow_ui_for_smoke, smoke_ids, page, tmp_path):
    server, parent = mlflow_ui_for_smoke, smoke_ids["parent"]
    with ui_step(page, tmp_path, "open the runs table", server):
        ui.open_runs_table(page, server.url, "smoke")
        parent_row = ui.run_row(page, parent.info.run_id)
        expect(parent_row.first).to_contain_text(parent.info.run_name)
        for name in CHILDREN:  # collapsed: the children are not rendered
            expect(page.get_by_role("link", name=name, exact=True)).to_have_count(0)
    with ui_step(page, tmp_path, "click the parent run's expander", server):
        ui.expand_run(page, parent.info.run_id)
        for name in CHILDREN:
            expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
        expect(page.get_by_text("matching runs")).to_contain_text("3 matching runs")
    with ui_step(page, tmp_path, "Dataset and Source cells of the child runs", server):
        expect(ui.run_row(page, parent.info.run_id).locator('[col-id*="Source"]')).to_have_text("run.py")
        for name, run_id in smoke_ids["children"].items():
            row = ui.run_row(page, run_id)
            expect(row.first).to_contain_text(name)
            dataset = row.locator('[col-id*="Dataset"]')
            expect(dataset).to_be_visible()
            expect(dataset).to_contain_text(TRAIN_DATASET)
            expect(dataset).to_contain_text(smoke_ids["train_digest"])
            expect(dataset).to_contain_text("+2")  # val and test behind the badge
            expect(dataset.get_by_text(TRAIN_DATASET, exact=False).first).to_be_visible()
            expect(row.locator('[col-id*="Source"]')).to_have_text("run.py")


def test_models_tab_lists_the_logged_models(mlflow_ui_for_smoke, smoke_ids, page, tmp_path):
    server = mlflow_ui_for_smoke
    with ui_step(page, tmp_path, "open the runs table, click Models", server):
        ui.open_runs_table(page, server.url, "smoke")
        page.get_by_role("link", name="Models", exact=True).click()
        page.wait_for_url(re.compile(r"#/experiments/\d+/models"))
        expect(page.get_by_role("columnheader", name="Source run").first).to_be_visible()
    with ui_step(page, tmp_path, "two logged models, one per child run", server):
        for name in CHILDREN:
            expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
        for model_id, model in smoke_ids["models"].items():
            row = ui.run_row(page, model_id)
            expect(row.first).to_contain_text(model.name)
            expect(row.filter(has_text="Ready")).to_have_count(1)
        shown = page.eval_on_selector_all(
            '[role="row"][row-id^="m-"]', "rows => [...new Set(rows.map(r => r.getAttribute('row-id')))]"
        )
        assert sorted(shown) == sorted(smoke_ids["models"]), shown


def test_compare_view_screenshot(mlflow_ui_for_smoke, smoke_sweep, page, tmp_path):
    """What `make ui-screenshot` does, on the smoke sweep: select its job runs, press Compare, save a PNG."""
    parents, children = ui.sweep_to_compare(smoke_sweep["uri"], "smoke", None, None)
    out = tmp_path / "compare_view.png"
    with ui_step(page, tmp_path, "runs table, select the sweep's runs, Compare", mlflow_ui_for_smoke):
        notes = ui.compare_screenshot(
            page,
            mlflow_ui_for_smoke.url,
            "smoke",
            parents,
            children,
            out,
            ["decoder._target_", "dropout.rate"],
            ["val/rmse", "test/rmse"],
        )
        expect(page.get_by_text("Comparing 2 Runs from 1 Experiment")).to_be_visible()
        for name in CHILDREN:
            expect(page.get_by_text(name, exact=True).first).to_be_visible()
    assert notes == []
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
