"""The review pages in a real browser (headless Chromium from Debian, driven by Selenium),
served by a real `docstream serve` over a store filled by a real `docstream run` (the bundled
sample posts plus two posts carrying markup).

Screenshots of every page go to test-artifacts/screenshots/ (tests/web/browser.py)."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

from .browser import console_errors, make_driver, requested_urls, screenshot

pytestmark = pytest.mark.slow

SCRIPT_TITLE = "Markup test <script>window.__xss = 'script';</script> headline"
IMG_TEXT = 'Quarterly results "><img src=x onerror="window.__xss = \'img\'"> beat forecasts.'
MARKUP_POSTS = [
    {"id": "xss-script", "source": "pentest", "kind": "news", "title": SCRIPT_TITLE,
     "text": "Shares <script>window.__xss = 'text';</script> rose after the earnings call."},
    {"id": "xss-img", "source": "pentest", "kind": "news", "title": "Earnings beat",
     "text": IMG_TEXT},
]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "docstream.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Site:
    def __init__(self, base: str, db: Path, token: str) -> None:
        self.base, self.db, self.token = base, db, token

    def url(self, path: str) -> str:
        return self.base + path

    def rows(self, sql: str, *params: object) -> list[tuple]:
        with sqlite3.connect(self.db) as conn:
            return conn.execute(sql, params).fetchall()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    work = tmp_path_factory.mktemp("pages")
    posts = work / "posts.jsonl"
    sample = (resources.files("docstream") / "samples" / "posts.jsonl").read_bytes()
    posts.write_bytes(sample + b"".join(json.dumps(p).encode() + b"\n" for p in MARKUP_POSTS))
    db = work / "store.db"
    url = f"sqlite:///{db}"
    # --store-text all: the markup posts must have their text stored whatever their score
    _cli("run", "--source", str(posts), "--sink", url, "--store-text", "all", "--explain-steps",
         "16", "--no-progress", cwd=work)
    token = _cli("reviewers", "--db", url, "add", "rita", cwd=work).stdout.splitlines()[0]
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "docstream.cli", "serve", "--db", url, "--port", str(port)],
        cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/api/health", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("docstream serve did not start: "
                                       + (server.stdout.read() if server.stdout else "")) from None
                time.sleep(0.2)
        yield Site(base, db, token)
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    driver = make_driver()
    try:
        yield driver
    finally:
        driver.quit()


def _only_this_server(site: Site, urls: list[str]) -> None:
    host = urllib.parse.urlsplit(site.base).netloc
    foreign = [u for u in urls if urllib.parse.urlsplit(u).netloc != host]
    assert urls and not foreign, f"requests to other hosts: {foreign}"


def click_and_wait(browser, element: WebElement) -> None:
    """Click something that navigates, and wait until the next page has replaced this one
    (a click returns before the navigation it starts has finished; a loaded machine shows)."""
    element.click()
    WebDriverWait(browser, 30).until(expected_conditions.staleness_of(element))
    WebDriverWait(browser, 30).until(
        lambda b: b.execute_script("return document.readyState") == "complete")


def _sign_in(site: Site, browser, token: str) -> None:
    browser.get(site.url("/login"))
    browser.find_element(By.ID, "token").send_keys(token)
    click_and_wait(browser, browser.find_element(By.ID, "sign-in"))
    signed = browser.find_elements(By.ID, "signed-in")
    assert signed, f"sign-in failed: {browser.find_element(By.TAG_NAME, 'main').text[:300]}"
    assert "rita" in signed[0].text


def test_every_page_renders_and_asks_only_this_server(site: Site, browser) -> None:
    requested_urls(browser)  # drop what came before
    flagged = site.rows("SELECT source, id FROM classifications WHERE needs_review "
                        "ORDER BY score LIMIT 1")[0]
    doc = "/documents?" + urllib.parse.urlencode({"source": flagged[0], "id": flagged[1]})
    pages = {"overview": "/", "queue": "/queue", "results": "/results",
             "dead_letters": "/dead-letters", "document": doc, "login": "/login"}
    for name, path in pages.items():
        browser.get(site.url(path))
        assert browser.find_element(By.TAG_NAME, "h1").text, name
        if name == "document":  # the flagged post's explanation, as highlighted words
            assert "integrated gradients" in browser.find_element(By.ID, "explanation-note").text
            marked = browser.find_elements(By.CSS_SELECTOR, "#doc-text span")
            assert len(marked) >= 3
            assert {m.get_attribute("class")[:3] for m in marked} <= {"pos", "neg"}
        if name == "overview":  # Chart.js drew every chart, from the vendored copy
            for canvas in ("chart-labels", "chart-runs", "chart-review", "chart-dead"):
                assert browser.execute_script(f"return !!Chart.getChart('{canvas}')"), canvas
            assert browser.find_element(By.ID, "n-results").text == str(
                site.rows("SELECT count(*) FROM classifications")[0][0])
        shot = screenshot(browser, f"page_{name}")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert console_errors(browser) == [], name
    urls = requested_urls(browser)
    _only_this_server(site, urls)
    assert any(u.endswith("/static/vendor/chartjs/chart.umd.min.js") for u in urls)
    # the queue lists the flagged posts, least sure first
    browser.get(site.url("/queue"))
    listed = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#results a.doc")]
    assert len(listed) == site.rows("SELECT count(*) FROM classifications "
                                    "WHERE needs_review")[0][0]


def test_a_reviewer_relabels_a_document_and_the_review_is_stored(site: Site, browser) -> None:
    _sign_in(site, browser, site.token)
    browser.get(site.url("/queue"))
    first = browser.find_element(By.CSS_SELECTOR, "#results a.doc")
    click_and_wait(browser, first)
    doc_id = browser.find_element(By.ID, "doc-id").text
    source, model_label, version = site.rows(
        "SELECT source, label, model_version FROM classifications WHERE id = ?", doc_id)[0]
    assert browser.find_element(By.ID, "model-label").text == model_label
    assert len(browser.find_elements(By.CSS_SELECTOR, "#top-scores tr")) == 3
    choice = Select(browser.find_element(By.ID, "relabel-choice"))
    new_label = next(o.text for o in choice.options if o.text != model_label)
    choice.select_by_visible_text(new_label)
    screenshot(browser, "page_document_signed_in")
    click_and_wait(browser, browser.find_element(By.ID, "relabel"))
    # moved on to the next flagged document (or the queue when none is left)
    assert browser.find_element(By.ID, "doc-id").text != doc_id \
        if "/documents" in browser.current_url else "/queue" in browser.current_url
    rows = site.rows("SELECT action, label, previous_label, reviewer, model_version FROM "
                     "reviews WHERE source = ? AND doc_id = ?", source, doc_id)
    assert rows == [("relabel", new_label, model_label, "rita", version)]
    # the document now shows both labels; the queue no longer lists it
    browser.get(site.url("/documents?" + urllib.parse.urlencode({"source": source,
                                                                   "id": doc_id})))
    assert browser.find_element(By.ID, "human-label").text == new_label
    assert browser.find_element(By.ID, "model-label").text == model_label
    screenshot(browser, "page_document_reviewed")
    browser.get(site.url("/queue"))
    assert doc_id not in browser.page_source


@pytest.mark.parametrize("doc_id", ["xss-script", "xss-img"])
def test_markup_in_a_post_renders_inert(site: Site, browser, doc_id: str) -> None:
    browser.get(site.url(f"/documents?source=pentest&id={doc_id}"))
    assert browser.execute_script("return typeof window.__xss") == "undefined"
    assert browser.find_elements(By.CSS_SELECTOR, "#doc-text img, #doc-text script, "
                                                  "h1 script, h1 img") == []
    text = browser.find_element(By.ID, "doc-text").text
    if doc_id == "xss-script":
        assert "<script>window.__xss = 'text';</script>" in text
        assert "<script>" in browser.find_element(By.ID, "doc-title").text
    else:
        assert '"><img src=x onerror=' in text
    screenshot(browser, f"page_markup_{doc_id}")
    assert console_errors(browser) == []


def test_a_forged_csrf_token_is_refused_in_the_browser(site: Site, browser) -> None:
    _sign_in(site, browser, site.token)
    target = site.rows("SELECT c.source, c.id FROM classifications c WHERE c.needs_review "
                       "AND NOT EXISTS (SELECT 1 FROM reviews r WHERE r.doc_id = c.id) "
                       "ORDER BY c.score LIMIT 1")[0]
    before = site.rows("SELECT count(*) FROM reviews")[0][0]
    browser.get(site.url("/documents?" + urllib.parse.urlencode({"source": target[0],
                                                                   "id": target[1]})))
    browser.execute_script("document.querySelector('#review-form input[name=csrf_token]')"
                           ".value = 'forged'")
    click_and_wait(browser, browser.find_element(By.ID, "accept"))
    assert "CSRF" in browser.find_element(By.ID, "message").text
    assert site.rows("SELECT count(*) FROM reviews")[0][0] == before


def _post(url: str, data: dict[str, str], headers: dict[str, str] | None = None) -> int:
    body = urllib.parse.urlencode(data).encode()
    req = urllib.request.Request(url, data=body, headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_review_writes_without_a_token_or_session_are_refused(site: Site) -> None:
    target = site.rows("SELECT source, id, label FROM classifications WHERE needs_review "
                       "ORDER BY score DESC LIMIT 1")[0]
    before = site.rows("SELECT count(*) FROM reviews")[0][0]
    decision = {"source": target[0], "doc_id": target[1], "action": "accept"}
    # the API without a token, and with a wrong one
    api = site.url("/api/reviews")
    for headers in ({}, {"Authorization": "Bearer dsr_not-a-token"}):
        req = urllib.request.Request(api, data=json.dumps(decision).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **headers})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        assert e.value.code == 401
    # the page form: no cookies at all (CSRF fails first), then a valid CSRF pair but no
    # session
    form = site.url("/documents/review")
    assert _post(form, {**decision, "csrf_token": "x"}) == 403
    with urllib.request.urlopen(site.url("/login"), timeout=10) as r:
        cookie = r.headers["set-cookie"].split(";")[0]
        page = r.read().decode()
    csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
    assert _post(form, {**decision, "csrf_token": csrf}, {"Cookie": cookie}) == 401
    assert site.rows("SELECT count(*) FROM reviews")[0][0] == before
