"""Headless Chromium for the web tests: Debian's `chromium` and `chromedriver` (installed by
`scripts/install-browser`), driven by Selenium, with the network and console logs turned on.

Not a test module and no fixture: a test module makes its own (module-scoped) driver

    driver = make_driver()
    try:
        driver.get(url)
        assert all(u.startswith(base) for u in requested_urls(driver))
        assert console_errors(driver) == []
    finally:
        screenshot(driver, "page")
        driver.quit()

Selenium Manager (which would download a browser and a driver) never runs: Selenium 4.51's
DriverFinder skips it whenever the Service has an executable path, and `make_driver` always
passes chromedriver's path (see selenium/webdriver/common/driver_finder.py, `_binary_paths`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

from tests.services import REPO

INSTALL_HINT = "run scripts/install-browser"
PAGE_LOAD_TIMEOUT_S = 30
# URLs that never leave the browser: not requests to any server.
_LOCAL_SCHEMES = ("data:", "blob:", "about:")

_ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",  # the tests run as root, where Chromium's sandbox refuses to start
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
    "--disable-gpu",
    # no first-run UI, extensions or background traffic: the only requests are the page's own
    "--no-first-run",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
)


def _find(name: str) -> str | None:
    path = shutil.which(name)
    if path is None and os.access(f"/usr/bin/{name}", os.X_OK):
        path = f"/usr/bin/{name}"
    return path


def make_driver() -> webdriver.Chrome:
    """A headless Chromium with the performance (network) and browser (console) logs on.

    Raises RuntimeError, naming scripts/install-browser, when chromium or chromedriver is missing.
    """
    browser, driver_path = _find("chromium"), _find("chromedriver")
    missing = [name for name, path in (("chromium", browser), ("chromedriver", driver_path))
               if path is None]
    if missing:
        raise RuntimeError(f"{' and '.join(missing)} not found; {INSTALL_HINT}")
    options = Options()
    options.binary_location = browser
    for argument in _ARGUMENTS:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT_S)
    return driver


def requested_urls(driver: webdriver.Chrome) -> list[str]:
    """Every URL the browser requested since the last call (in order, repeats kept), from the
    performance log's `Network.requestWillBeSent` events; data:, blob: and about: URLs are left
    out. Reading the log empties it, hence "since the last call"."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") != "Network.requestWillBeSent":
            continue
        url = message["params"]["request"]["url"]
        if not url.startswith(_LOCAL_SCHEMES):
            urls.append(url)
    return urls


def console_errors(driver: webdriver.Chrome) -> list[str]:
    """The SEVERE entries of the browser (console) log since the last call: console.error,
    uncaught exceptions, failed loads."""
    return [entry["message"] for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]


def artifacts_dir() -> Path:
    """$DOCSTREAM_ARTIFACTS, or test-artifacts/ in the repository (git-ignored)."""
    return Path(os.environ.get("DOCSTREAM_ARTIFACTS") or REPO / "test-artifacts")


def screenshot(driver: webdriver.Chrome, name: str) -> Path:
    """Save the viewport as `<artifacts>/screenshots/<name>.png` (name made file-safe) and
    return the path."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "screenshot"
    if not safe.endswith(".png"):
        safe += ".png"
    path = artifacts_dir() / "screenshots" / safe
    path.parent.mkdir(parents=True, exist_ok=True)
    if not driver.save_screenshot(str(path)):
        raise RuntimeError(f"could not save a screenshot to {path}")
    return path
