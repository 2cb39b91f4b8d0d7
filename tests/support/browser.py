"""Debian's headless Chromium, driven through its chromedriver by Selenium.

Selenium is given both paths, so it never looks for a browser or a driver to download.
``make test`` installs the two packages when they are missing (``make browser``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

PACKAGES = "chromium chromium-driver"
NONE = "—"  # what the dashboard writes for a value it does not have


def shown(n: int | None) -> str:
    """A number as the page writes it."""
    return NONE if n is None else f"{n:,}"


def shown_time(ms: int | None) -> str:
    """An epoch-milliseconds time as the page writes it (JavaScript's toISOString)."""
    if ms is None:
        return NONE
    at = datetime.fromtimestamp(ms // 1000, UTC)
    return f"{at:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


# Read in one script call each: the page redraws its tables on every poll.
def text(browser: webdriver.Chrome, element_id: str) -> str:
    return str(
        browser.execute_script(f"return document.getElementById('{element_id}').textContent")
    )


def table(browser: webdriver.Chrome, element_id: str) -> list[dict[str, str]]:
    """A table's body rows, as {data-field: text} for the cells that name their field."""
    rows: list[dict[str, str]] = browser.execute_script(
        f"""return Array.from(document.querySelectorAll("#{element_id} tbody tr"), (row) =>
            Object.fromEntries(
                Array.from(row.cells, (cell) => [cell.dataset.field || "", cell.textContent])
            ))"""
    )
    return rows


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[webdriver.Chrome]:
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser is None or driver is None:
        # A test that needs a real part fails without it, in CI and out of it.
        pytest.fail(
            "Chromium or its driver is missing: run `make browser` (as root it runs "
            f"apt-get install {PACKAGES})"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",  # tests run as root in CI, where Chromium's sandbox refuses to start
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    session = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    try:
        yield session
    finally:
        session.quit()
