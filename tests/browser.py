"""A real browser for the site's tests: Debian's Chromium, driven by Selenium.

Nothing is downloaded: Selenium is given Debian's ``chromium`` and
``chromium-driver`` (``/usr/bin/chromium``, ``/usr/bin/chromedriver``), started
headless with an empty profile and no background networking. Where they are
missing the browser tests are skipped, with the reason, unless
``VOLCANO_REQUIRE_BROWSER=1`` (CI sets it), which makes that a failure.
"""

from __future__ import annotations

import functools
import http.server
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

REQUIRE_BROWSER = "VOLCANO_REQUIRE_BROWSER"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: Where the browser tests keep their screenshots (printed at the end of the run).
SCREENSHOTS = pytest.StashKey[Path]()
#: A phone's viewport, in CSS pixels (a common 6.1" phone).
PHONE = (390, 844)
DESKTOP = (1280, 900)
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)

T = TypeVar("T")


def skip_or_fail(reason: str) -> None:
    """Skip, or fail where VOLCANO_REQUIRE_BROWSER=1: CI never skips the browser tests."""
    if os.environ.get(REQUIRE_BROWSER) == "1":
        pytest.fail(f"{REQUIRE_BROWSER}=1 but {reason}")
    pytest.skip(reason)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def served(folder: Path) -> Iterator[str]:
    """``folder`` served over HTTP on localhost; yields its base URL."""
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium under Selenium, with an empty profile of its own."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        skip_or_fail(f"no {' and no '.join(missing)}: apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp(prefix="volcano-chromium-")
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def waited(check: Callable[[], T | None], timeout: float = 30, what: str = "") -> T:
    """``check()``'s first true answer, tried every 0.1 s for up to ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        answer = check()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.1)


def shadow_svgs(driver: Any) -> list[str]:
    """Every ``<svg>`` of the page as HTML, those in closed shadow roots too.

    Material for MkDocs draws each mermaid diagram into a closed shadow root,
    out of the page's scripts' reach; the DevTools protocol sees into it.
    """
    document = driver.execute_cdp_cmd("DOM.getDocument", {"depth": -1, "pierce": True})
    found: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        if node.get("nodeName") == "svg":
            html = driver.execute_cdp_cmd(
                "DOM.getOuterHTML", {"backendNodeId": node["backendNodeId"]}
            )
            found.append(html["outerHTML"])
        for child in [*node.get("children", []), *node.get("shadowRoots", [])]:
            walk(child)

    walk(document["root"])
    return found
