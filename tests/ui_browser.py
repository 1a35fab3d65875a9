"""Pytest side of the MLflow UI checks: a real ``mlflow ui`` and headless Chromium (Playwright on
Debian's binary). The server helpers live in :mod:`protstruct.report.mlflow_ui`, the browser ones
in :mod:`protstruct.report.ui_screenshot` (the ``make ui-screenshot`` target uses them too); this
module adds the skip rule, fixtures and failure evidence (a screenshot under the test's tmp_path
and the page's visible text).

Skip rule: without Chromium or the ``playwright`` package the tests skip, unless
``PROTSTRUCT_REQUIRE_BROWSER`` is set (CI), when they fail instead.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from protstruct.report import mlflow_ui
from protstruct.report import ui_screenshot as ui

STEP_TIMEOUT_MS = 30_000


def browser_required() -> bool:
    return os.environ.get("PROTSTRUCT_REQUIRE_BROWSER", "") not in ("", "0")


def skip_without_browser():
    """A module mark: skip at collection (before the session's smoke sweep is paid for) when the
    browser is missing and not required; a no-op mark otherwise."""
    why = ui.why_no_browser()
    if why and not browser_required():
        return pytest.mark.skip(reason=f"{why} (CI sets PROTSTRUCT_REQUIRE_BROWSER to make this a failure)")
    return pytest.mark.skipif(False, reason="the browser is there")


def require_browser() -> None:
    why = ui.why_no_browser()
    if why is None:
        return
    if browser_required():
        pytest.fail(f"PROTSTRUCT_REQUIRE_BROWSER is set but {why}")
    pytest.skip(f"{why} (CI sets PROTSTRUCT_REQUIRE_BROWSER to make this a failure)")


def expect(locator_or_page):
    from playwright.sync_api import expect as pw_expect

    return pw_expect(locator_or_page)


@pytest.fixture(scope="module")
def browser():
    require_browser()
    with ui.chromium() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def mlflow_ui_for_smoke(smoke_sweep, tmp_path_factory) -> Iterator[mlflow_ui.MlflowUI]:
    """``mlflow ui`` on the smoke sweep's store (artifacts are file:// already), stopped by PID after."""
    require_browser()  # no server start when the browser part would skip anyway
    try:
        with mlflow_ui.mlflow_ui(smoke_sweep["uri"], tmp_path_factory.mktemp("mlflow_ui")) as server:
            yield server
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def page(browser):
    """A fresh browser context per test: empty localStorage, as on a first visit."""
    with ui.fresh_page(browser) as p:
        p.set_default_timeout(STEP_TIMEOUT_MS)
        yield p


@contextlib.contextmanager
def ui_step(page, tmp_path: Path, what: str, server: mlflow_ui.MlflowUI | None = None):
    """Run one UI step; on any failure: screenshot to tmp_path, and an AssertionError that carries the
    URL and the page's visible text (and the server log's tail)."""
    try:
        yield
    except Exception as exc:
        shot = tmp_path / (re.sub(r"[^a-z0-9]+", "_", what.lower()).strip("_")[:60] + ".png")
        with contextlib.suppress(Exception):
            page.screenshot(path=str(shot))
        log = f"\nmlflow ui log (tail):\n{server.log_tail(1200)}" if server else ""
        raise AssertionError(
            f"UI step failed: {what}\n{type(exc).__name__}: {str(exc)[:2000]}\n"
            f"URL: {page.url}\nscreenshot: {shot}\nvisible text:\n{ui.visible_text(page)}"
            f"{log}"
        ) from exc
