"""``python -m protstruct.report.ui_screenshot``: a PNG of MLflow's *Compare* view of a sweep's job
runs, taken the way a person gets there: a real ``mlflow ui`` on loopback, driven by headless
Chromium (Playwright) through the experiments list, the runs table and the *Compare* button.

    python -m protstruct.report.ui_screenshot   # latest p0_vs_p1 sweep → experiments/p0_vs_p1/compare_view.png
    python -m protstruct.report.ui_screenshot --tracking-uri sqlite:////tmp/x/mlflow.db --experiment smoke \
        --out /tmp/x.png

Needs Chromium (Debian: ``apt-get install chromium``; or ``PROTSTRUCT_CHROMIUM=/path/to/chrome``)
and the ``playwright`` wheel (its browser downloads are never used). The browser helpers here are
shared with ``tests/test_mlflow_ui.py`` (through ``tests/ui_browser.py``).

MLflow 3.17's UI decides how an experiment opens from the sidebar's *GenAI / Model training*
switch (stored in the browser, GenAI by default), not from the ``mlflow.experimentKind`` tag:
:func:`choose_model_training` flips it, as a person has to once per browser.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

from protstruct.report.mlflow_ui import mlflow_ui

# Headless Chromium that never reaches beyond loopback (no sync, updates, QUIC or first-run calls).
# Playwright's launch() gives every browser a fresh temporary profile (--user-data-dir) itself.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-default-apps",
    "--disable-extensions",
]
VIEWPORT = {"width": 1600, "height": 1000}
TIMEOUT_MS = 30_000  # one UI step (a click and what it renders); the first page load compiles a lot of JS

DEFAULT_EXPERIMENT = "p0_vs_p1"
DEFAULT_PARAMS = "decoder.name|decoder._target_,dropout.rate,seed"  # a|b: the first the runs have
DEFAULT_METRICS = "val/rmse,test/rmse"


def find_chromium() -> str | None:
    """``$PROTSTRUCT_CHROMIUM``, else ``chromium`` / ``chromium-browser`` on PATH; None if none."""
    explicit = os.environ.get("PROTSTRUCT_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def why_no_browser() -> str | None:
    """Why a UI check cannot run here (no Chromium, no Playwright); None when it can."""
    missing = []
    if find_chromium() is None:
        missing.append("Chromium (apt-get install chromium, or PROTSTRUCT_CHROMIUM=/path)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install playwright; its browser downloads are not needed)")
    return " and ".join(missing) + " missing" if missing else None


# --- the browser ------------------------------------------------------------------------------------


@contextlib.contextmanager
def chromium(executable: str | None = None):
    """A headless Chromium (Playwright's sync API) on Debian's binary; yields the Browser."""
    from playwright.sync_api import sync_playwright

    executable = executable or find_chromium()
    if executable is None:
        raise RuntimeError(why_no_browser() or "no Chromium")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def fresh_page(browser, viewport: dict | None = None):
    """A page in a new browser context: empty localStorage, as a first visit."""
    context = browser.new_context(viewport=viewport or VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def visible_text(page, limit: int = 4000) -> str:
    try:
        return page.locator("body").inner_text(timeout=5000)[:limit]
    except Exception as exc:  # only for messages
        return f"(no page text: {exc})"


def close_assistant(page) -> None:
    """Close MLflow's *Assistant* side panel if it opened itself (it does on a first visit)."""
    close = page.locator('[data-component-id="mlflow.assistant.chat_panel.close"]')
    with contextlib.suppress(Exception):
        close.click(timeout=3000)


def choose_model_training(page) -> None:
    """Flip the sidebar's *GenAI / Model training* switch to *Model training* (kept in localStorage)."""
    page.get_by_text("Model training", exact=True).first.click()


def open_experiments_list(page, base_url: str) -> None:
    page.goto(f"{base_url}/#/experiments")
    page.get_by_role("columnheader", name="Name").first.wait_for()


def click_experiment(page, name: str) -> None:
    """Click the experiment's link in the experiments list (searching for it first)."""
    search = page.get_by_placeholder("Search experiments")
    if search.count():
        search.fill(name)
        search.press("Enter")
    page.get_by_role("link", name=name, exact=True).click()


def run_row(page, run_id: str):
    """The runs table's row of ``run_id`` (both halves: AG Grid splits pinned and scrolled columns)."""
    return page.locator(f'[role="row"][row-id="{run_id}"]')


def expand_run(page, run_id: str) -> None:
    """Click the expander (+) in a parent run's *Run Name* cell."""
    run_row(page, run_id).locator('[col-id*="Run Name"] button').first.click()


def select_run(page, run_id: str) -> None:
    run_row(page, run_id).get_by_role("checkbox").first.check()


def open_runs_table(page, base_url: str, experiment: str) -> None:
    """From a fresh browser: experiments list → *Model training* → the experiment → its runs table."""
    open_experiments_list(page, base_url)
    close_assistant(page)
    choose_model_training(page)
    click_experiment(page, experiment)
    page.wait_for_url("**/runs**")
    page.get_by_role("columnheader", name="Run Name").first.wait_for()


def _pick(page, select, names: str) -> bool:
    """Choose the first of ``a|b|...`` offered by one of the Compare view's multi-selects."""
    for name in names.split("|"):
        select.click()
        select.locator("input").fill(name)
        option = page.locator(f'[class*="select-item-option"][title="{name}"]')
        try:
            option.first.click(timeout=3000)
            return True
        except Exception:  # the runs do not have this key
            continue
        finally:
            page.keyboard.press("Escape")
    return False


def compare_screenshot(
    page,
    base_url: str,
    experiment: str,
    parents: list[str],
    children: list[str],
    out: Path,
    params: list[str],
    metrics: list[str],
) -> list[str]:
    """Runs table → expand ``parents`` → tick ``children`` → *Compare* → plot axes → PNG at ``out``.
    Returns notes (keys the runs do not have)."""
    notes = []
    open_runs_table(page, base_url, experiment)
    for parent in parents:
        run_row(page, parent).first.wait_for()
        expand_run(page, parent)
    for child in children:
        run_row(page, child).first.wait_for()
        select_run(page, child)
    page.get_by_role("button", name="Compare", exact=True).click()
    page.get_by_text(f"Comparing {len(children)} Runs").wait_for()
    if params or metrics:
        page.get_by_role("button", name="Clear All").click()
        selects = page.locator('[class*="-select-multiple"]')
        for i, keys in ((0, params), (1, metrics)):
            notes += [
                f"no {('param', 'metric')[i]} {key!r} in these runs"
                for key in keys
                if not _pick(page, selects.nth(i), key)
            ]
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.mouse.move(0, 0)  # no focus ring or hover tooltip in the picture
    page.wait_for_timeout(1500)  # the plot animates in
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out))
    return notes


# --- the sweep to show ------------------------------------------------------------------------------


def sweep_to_compare(tracking_uri: str, experiment: str, study: str | None, parent_run_id: str | None):
    """(parent run ids to expand, job run ids to select) of the chosen sweep (default: the latest)."""
    from protstruct.report.runs import find_sweep
    from protstruct.tracking import ledger, mlflow_store

    client = mlflow_store.client_for(tracking_uri)
    exp_id, parent = find_sweep(client, tracking_uri, experiment, study, parent_run_id)
    jobs = sorted(ledger.children(client, parent.info.run_id, exp_id), key=lambda r: r.info.start_time)
    if not jobs:
        raise LookupError(f"sweep {parent.info.run_id} in {experiment!r} has no job runs")
    # a job reused from an earlier sweep sits under that sweep's parent row
    parents = list(dict.fromkeys(r.data.tags.get(ledger.PARENT_TAG, parent.info.run_id) for r in jobs))
    return parents, [r.info.run_id for r in jobs]


def _local_store_missing(uri: str) -> str | None:
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///") :])
        if not path.is_file():
            return f"no MLflow store at {path} (run the study first: make study)"
    return None


def _arguments(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracking-uri", default=None, help="MLflow store (default: the project's SQLite store)")
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help="MLflow experiment name")
    parser.add_argument("--study", default=None, help="only sweeps tagged with this study name")
    parser.add_argument("--parent-run-id", default=None, help="a specific sweep instead of the latest")
    parser.add_argument(
        "--params",
        default=DEFAULT_PARAMS,
        help="params on the plot's axes; a|b: the first the runs have ('' for both: MLflow's pick)",
    )
    parser.add_argument("--metrics", default=DEFAULT_METRICS, help="metrics on the plot's axes")
    parser.add_argument(
        "--out", type=Path, default=None, help="PNG to write (default: experiments/<experiment>/compare_view.png)"
    )
    args = parser.parse_args(argv)
    if args.tracking_uri is None:
        from protstruct.tracking.default_store import default_uri

        args.tracking_uri = default_uri()
    if args.out is None:
        from protstruct.config import project_root

        args.out = project_root() / "experiments" / args.experiment / "compare_view.png"
    return args


def _screenshot(args: argparse.Namespace, parents: list[str], children: list[str]) -> list[str] | None:
    """Serve the store, drive Chromium to the Compare view, write the PNG; the notes, or None after
    saying on stderr why it failed."""
    from protstruct.tracking.redact import redact

    def split(text: str) -> list[str]:
        return [k.strip() for k in text.split(",") if k.strip()]

    with tempfile.TemporaryDirectory(prefix="protstruct-ui-") as tmp:
        try:
            with mlflow_ui(args.tracking_uri, Path(tmp)) as server, chromium() as browser, fresh_page(browser) as page:
                try:
                    return compare_screenshot(
                        page,
                        server.url,
                        args.experiment,
                        parents,
                        children,
                        args.out,
                        split(args.params),
                        split(args.metrics),
                    )
                except Exception as exc:
                    failed = Path(tmp).parent / "protstruct-ui-screenshot-failed.png"
                    with contextlib.suppress(Exception):
                        page.screenshot(path=str(failed))
                    print(
                        f"ui_screenshot: {type(exc).__name__}: {redact(str(exc))[:1500]}\n"
                        f"page ({failed}):\n{visible_text(page, 2000)}",
                        file=sys.stderr,
                    )
                    return None
        except RuntimeError as exc:
            print(f"ui_screenshot: {redact(str(exc))}", file=sys.stderr)
            return None


def main(argv=None) -> int:
    from protstruct.tracking.redact import redact

    args = _arguments(argv)
    problem = _local_store_missing(args.tracking_uri) or why_no_browser()
    if problem:
        print(f"ui_screenshot: {problem}", file=sys.stderr)
        return 2
    try:
        parents, children = sweep_to_compare(args.tracking_uri, args.experiment, args.study, args.parent_run_id)
    except (LookupError, ValueError) as exc:
        print(f"ui_screenshot: {redact(str(exc))}", file=sys.stderr)
        return 2
    notes = _screenshot(args, parents, children)
    if notes is None:
        return 1
    for note in notes:
        print(f"ui_screenshot: note: {note}", file=sys.stderr)
    print(f"wrote {args.out} (MLflow Compare view of {len(children)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
