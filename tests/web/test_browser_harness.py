"""The headless-browser harness itself (tests/web/browser.py): a page served on 127.0.0.1 that
loads one same-origin script; the browser requests exactly those two URLs."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web.browser import console_errors, make_driver, requested_urls, screenshot

# `rel=icon href=data:,` keeps the browser from asking for /favicon.ico
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>harness</title><link rel="icon" href="data:,">
<script src="/app.js"></script></head>
<body><h1 id="title">static</h1></body></html>
"""
SCRIPT = 'document.addEventListener("DOMContentLoaded", () => {\n'\
         '  document.getElementById("title").textContent = "loaded";\n});\n'


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture()
def site(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "index.html").write_text(PAGE, encoding="utf-8")
    (tmp_path / "app.js").write_text(SCRIPT, encoding="utf-8")
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_requests_screenshot_and_console(site: str) -> None:
    driver = make_driver()
    try:
        driver.get(f"{site}/index.html")
        assert driver.find_element("id", "title").text == "loaded"  # the script ran
        assert sorted(requested_urls(driver)) == [f"{site}/app.js", f"{site}/index.html"]
        assert requested_urls(driver) == []  # reading the log empties it
        assert console_errors(driver) == []

        path = screenshot(driver, "browser harness")
        assert path.name == "browser_harness.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

        driver.execute_script('console.error("boom")')
        assert any("boom" in message for message in console_errors(driver))
    finally:
        driver.quit()
