"""The web page in a real browser (headless Chromium, the system's, driven by Playwright)
against a real server with data ingested through the API: with a key, a person finds a past
error by searching, opens its session and reads the whole traceback; on a 360 px phone the
same views fit and nothing stored runs as script. The console stays clean (CSP included);
screenshots land in each test's tmp_path."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

import httpx
import pytest

from ctxsearch.http.app import create_app
from tests.conftest import event, serving

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the [test] extra)")
expect = playwright_api.expect

KEY = "web-browser-key-0123456789abcdef"
OTHER_KEY = "web-browser-other-0123456789abcdef"
_LAST = "\nZeroDivisionError: division by zero"
TRACEBACK = "Traceback (most recent call last):\n" + "".join(
    f'  File "/srv/shop/src/checkout/pricing_{i:03d}.py", line {10 + i}, in compute_average_price\n'
    f"    return total / count  # step {i} of the checkout pipeline\n"
    for i in range(80)
)
TRACEBACK = TRACEBACK[: 5000 - len(_LAST)] + _LAST
HOSTILE = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2"> checkout crash note'
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 360, "height": 740}


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CTXSEARCH_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@pytest.fixture(scope="module")
def browser():
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium here (apt-get install chromium, or set CTXSEARCH_CHROMIUM): browser tests skipped")
    with playwright_api.sync_playwright() as pw:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        b = pw.chromium.launch(executable_path=path, args=args, headless=True)
        yield b
        b.close()


def ingest(url: str, project: str, headers: dict | None = None) -> None:
    s = "crash-1"
    events = [
        event(project, s, 0, "message", "Fix the checkout crash when the cart is empty"),
        event(project, s, 1, "tool_call", "pytest tests/test_checkout.py -x", tool="Bash"),
        event(
            project,
            s,
            2,
            "error",
            TRACEBACK,
            files=["src/checkout/pricing.py"],
            payload={"exit_code": 1, "argv": ["pytest", "-x"], "env": {"CI": "1"}},
        ),
        event(project, s, 3, "note", HOSTILE),
        event(project, s, 4, "tool_call", "edit src/checkout/pricing.py", tool="Edit"),
        event(project, s, 5, "decision", "Return 0 for an empty cart instead of dividing by zero"),
        event(project, s, 6, "test_run", "12 passed in 0.4s", payload={"passed": 12, "failed": 0}),
        event(project, "other-1", 0, "message", "Unrelated work on the search index"),
    ]
    r = httpx.post(f"{url}/v1/events", json={"events": events}, headers=headers, timeout=30)
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 120
    while httpx.get(f"{url}/v1/projects/{project}/stats", headers=headers, timeout=30).json()["pending"]:
        assert time.monotonic() < deadline, "not indexed in time"
        time.sleep(0.1)


class Console:
    """Every console error and uncaught exception of a page (CSP violations are console errors).

    Chromium also logs each 4xx/5xx response as a console error ("Failed to load resource"):
    those are kept apart, with the responses themselves, so a test can check that each is one
    it asked for (a 401 before a key is given, a 403 for another project's page) and nothing else.
    """

    def __init__(self, page):
        self.errors: list[str] = []
        self.failed_loads: list[str] = []
        self.refused: list[tuple[int, str]] = []
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("response", lambda r: self.refused.append((r.status, r.url)) if r.status >= 400 else None)

    def _console(self, message) -> None:
        if message.type != "error":
            return
        if message.text.startswith("Failed to load resource: the server responded with a status of"):
            self.failed_loads.append(message.text)
        else:
            self.errors.append(f"console: {message.text}")

    def check(self, expected_refusals: list[tuple[int, str]]) -> None:
        assert self.errors == []
        assert self.refused == expected_refusals
        assert len(self.failed_loads) == len(expected_refusals), self.failed_loads


def no_horizontal_scroll(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), page.url


def every_control_is_labelled(page) -> None:
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
            .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                    && !el.getAttribute('aria-labelledby'))
            .map(el => el.outerHTML)"""
    )
    assert unlabelled == [], unlabelled


@pytest.fixture(scope="module")
def keyed_url(settings, service):
    project = f"webui-{uuid.uuid4().hex[:8]}"
    hidden = f"webui-hidden-{uuid.uuid4().hex[:8]}"
    keys = {KEY: [project], OTHER_KEY: [hidden]}
    with serving(create_app(settings.model_copy(update={"api_keys": keys}), service=service)) as url:
        ingest(url, project, {"Authorization": f"Bearer {KEY}"})
        ingest(url, hidden, {"Authorization": f"Bearer {OTHER_KEY}"})
        yield url, project, hidden


def test_with_a_key_find_an_error_open_its_session_and_read_the_traceback(browser, keyed_url, tmp_path):
    url, project, hidden = keyed_url
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    console = Console(page)

    page.goto(url + "/")
    key_input = page.get_by_label("API key")
    expect(key_input).to_be_visible()
    assert key_input.get_attribute("type") == "password"
    expect(key_input).to_be_focused()
    key_input.fill("not-the-key")
    key_input.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("That key was not accepted: unknown API key")
    page.get_by_label("API key").fill(KEY)
    page.get_by_role("button", name="Use this key").click()

    # Only the key's project is listed.
    expect(page.get_by_role("link", name=project, exact=True)).to_be_visible()
    expect(page.get_by_role("link", name=hidden)).to_have_count(0)
    expect(page.get_by_role("button", name="Forget key")).to_be_visible()
    page.screenshot(path=tmp_path / "desktop-projects.png", full_page=True)

    # Search for the error, from the projects page's search box, with the keyboard.
    box = page.get_by_label("Search", exact=True)
    box.fill("ZeroDivisionError in compute_average_price")
    box.press("Enter")
    expect(page).to_have_url(f"{url}/search?query=ZeroDivisionError+in+compute_average_price&project_id={project}")
    first = page.locator("article.hit").first
    expect(first).to_contain_text("error")
    expect(first.locator("mark").first).to_be_visible()
    every_control_is_labelled(page)
    page.screenshot(path=tmp_path / "desktop-search.png", full_page=True)

    # Its session, with the hit highlighted in place in the timeline.
    first.get_by_role("link", name="In its session").click()
    hit = page.locator("li.event.hit#hit")
    expect(hit).to_be_visible()
    expect(hit).to_contain_text("the search hit")
    expect(hit).to_be_focused()
    expect(page.locator("ol.timeline > li")).to_have_count(7)
    expect(page.locator("svg.chart rect.bar-tools").first).to_be_attached()
    expect(page.get_by_role("heading", name="Metrics")).to_be_visible()
    page.screenshot(path=tmp_path / "desktop-session.png", full_page=True)

    # The hit's full page: the whole traceback, wrapped, and the payload.
    hit.get_by_role("link", name="Full event").click()
    content = page.locator("pre.content.full")
    expect(content).to_be_visible()
    assert content.text_content() == TRACEBACK
    assert content.evaluate("el => el.scrollWidth <= el.clientWidth")
    assert page.locator("pre.payload").text_content().startswith('{\n  "exit_code": 1,')
    page.screenshot(path=tmp_path / "desktop-event.png", full_page=True)

    # Back goes back to the session (history), a reload keeps the key for the tab.
    page.go_back()
    expect(page.locator("li.event.hit#hit")).to_be_visible()
    page.reload()
    expect(page.locator("li.event.hit#hit")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('ctxsearch.apiKey')") == KEY

    # Another project by URL is refused, with a message.
    page.goto(f"{url}/projects/{hidden}")
    expect(page.get_by_role("alert")).to_contain_text("may not use project")

    page.get_by_role("button", name="Forget key").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('ctxsearch.apiKey')") is None
    console.check(
        [
            (401, f"{url}/ui/"),  # no key yet: the key form
            (401, f"{url}/ui/"),  # the wrong key
            (403, f"{url}/ui/projects/{hidden}"),
            (401, f"{url}/ui/projects/{hidden}"),  # after "Forget key"
        ]
    )
    context.close()


def test_on_a_phone_views_fit_and_stored_markup_stays_text(browser, live_url, tmp_path):
    project = f"webui-phone-{uuid.uuid4().hex[:8]}"
    ingest(live_url, project)
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    console = Console(page)

    page.goto(f"{live_url}/search?query=checkout+crash+note&project_id={project}&mode=text")
    expect(page.locator("article.hit").first).to_be_visible()
    no_horizontal_scroll(page)
    page.screenshot(path=tmp_path / "phone-search.png", full_page=True)

    # The keyboard reaches the skip link first, and it is shown when focused.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()

    page.locator("article.hit", has_text="checkout crash note").first.get_by_role("link", name="Full event").click()
    content = page.locator("pre.content.full")
    expect(content).to_contain_text("<script>window.pwned = 1</script>")
    assert page.evaluate("window.pwned") is None
    assert page.locator("main script, main img").count() == 0
    no_horizontal_scroll(page)
    page.screenshot(path=tmp_path / "phone-event.png", full_page=True)

    page.get_by_role("link", name="session crash-1").click()
    expect(page.get_by_role("heading", name="Timeline")).to_be_visible()
    no_horizontal_scroll(page)
    page.screenshot(path=tmp_path / "phone-session.png", full_page=True)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Status").click()
    expect(page.get_by_text("Pending documents")).to_be_visible()
    expect(page.get_by_text("Last rebuild")).to_be_visible()
    no_horizontal_scroll(page)
    page.screenshot(path=tmp_path / "phone-status.png", full_page=True)

    for name in ("phone-search.png", "phone-event.png", "phone-session.png", "phone-status.png"):
        assert (tmp_path / name).stat().st_size > 1000
    console.check([])
    context.close()
