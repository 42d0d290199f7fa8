"""The web page's server side: the layout at every page URL, and the views under /ui on real
data (escaping, links between search, sessions and events, paging, errors as HTML, keys)."""

from __future__ import annotations

import html
import re
import uuid
from urllib.parse import parse_qs, quote, urlparse

import pytest
from fastapi.testclient import TestClient

from ctxsearch.http.app import create_app
from tests.conftest import event

TRACEBACK = "Traceback (most recent call last):\n" + "".join(
    f'  File "src/checkout/step_{i:03d}.py", line {i}, in compute_average_price\n    total / count\n' for i in range(60)
)
_LAST = "\nZeroDivisionError: division by zero"
TRACEBACK = (TRACEBACK + "x" * 5000)[: 5000 - len(_LAST)] + _LAST
HOSTILE = (
    '<script>window.pwned = 1</script><img src=x onerror="window.pwned=2"> checkout crash when total < 0 && count > 0'
)


def session_events(project: str) -> list[dict]:
    s = "crash-1"
    return [
        event(project, s, 0, "message", "Fix the checkout crash when the cart is empty"),
        event(project, s, 1, "tool_call", "pytest tests/test_checkout.py", tool="Bash"),
        event(
            project,
            s,
            2,
            "error",
            TRACEBACK,
            files=["src/checkout.py"],
            payload={"exit_code": 1, "argv": ["pytest", "-x"], "note": "</pre><b>bold?</b>"},
        ),
        event(project, s, 3, "note", HOSTILE),
        event(project, s, 4, "tool_call", "edit src/checkout.py", tool="Edit", files=["src/checkout.py"]),
        event(project, s, 5, "decision", "Return 0 for an empty cart instead of dividing by zero"),
        event(project, s, 6, "test_run", "3 passed", payload={"passed": 3, "failed": 0}),
    ]


@pytest.fixture(scope="module")
def data(client) -> dict:
    project = f"web-{uuid.uuid4().hex[:10]}"
    r = client.post("/v1/events", json={"events": session_events(project)})
    assert r.status_code == 202, r.text
    many = f"webmany-{uuid.uuid4().hex[:10]}"
    batch = [event(many, f"m{i:02d}", i, "note", f"flaky retry number {i} in the payment gateway") for i in range(23)]
    assert client.post("/v1/events", json={"events": batch}).status_code == 202
    import time

    deadline = time.monotonic() + 120
    for p in (project, many):
        while client.get(f"/v1/projects/{p}/stats").json()["pending"]:
            assert time.monotonic() < deadline, "not indexed in time"
            time.sleep(0.1)
    return {"project": project, "many": many}


def ui(client, path: str, **params):
    return client.get("/ui" + path, params=params)


def links(body: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(r'href="([^"]*)"', body)]


PAGES = ["/", "/search", "/status", "/projects/p1", "/projects/p1/sessions/s1", "/projects/p1/events/e%2F1"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_url_serves_the_layout_under_a_strict_policy(client, path):
    r = client.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe" not in csp
    body = r.text
    assert '<main id="main"' in body and '<nav aria-label="Main">' in body and 'lang="en"' in body
    # No inline script or style: every <script> has a src, no style attributes or blocks.
    assert all("src=" in tag for tag in re.findall(r"<script[^>]*>", body))
    assert "style=" not in body and "<style" not in body
    assert not re.search(r"\son[a-z]+=", body)


def test_static_files_are_the_packaged_ones(client):
    js = client.get("/static/app.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert "sessionStorage" in js.text and "Authorization" in js.text
    css = client.get("/static/app.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert client.get("/static/../routes.py").status_code == 404
    assert client.get("/static/nothing.js").status_code == 404


def test_projects_view_lists_projects_with_counts(client, data):
    body = ui(client, "/").text
    row = re.search(r"<tr>\s*<th scope=\"row\"><a href=\"/projects/" + data["project"] + r"\">.*?</tr>", body, re.S)
    assert row, body[:2000]
    assert [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', row.group(0))] == [1, 7]


def test_project_view_pages_sessions_by_cursor(client, data):
    first = ui(client, f"/projects/{data['many']}")
    assert first.status_code == 200
    assert first.text.count('class="card"') == 20
    (older,) = [h for h in links(first.text) if "cursor=" in h]
    second = client.get("/ui" + older)
    assert second.status_code == 200 and second.text.count('class="card"') == 3
    assert not [h for h in links(second.text) if "cursor=" in h]
    # The two pages together are the 23 sessions, each once.
    seen = re.findall(r"/sessions/(m\d\d)\"", first.text + second.text)
    assert sorted(seen) == [f"m{i:02d}" for i in range(23)]
    bad = ui(client, f"/projects/{data['many']}", cursor="not-a-cursor")
    assert bad.status_code == 400 and "first page" in bad.text and "Traceback" not in bad.text


def test_unknown_project_session_and_event_are_404_views(client, data):
    p = data["project"]
    for path in (
        "/projects/no-such-project-here",
        f"/projects/{p}/sessions/nope",
        f"/projects/{p}/events/nope",
        f"/projects/{p}/sessions/crash-1?around=nope",
    ):
        r = client.get("/ui" + path)
        assert r.status_code == 404, path
        assert r.headers["content-type"].startswith("text/html") and 'role="alert"' in r.text
        assert "nope" in r.text or "no-such-project-here" in r.text


def test_search_highlights_escapes_and_links_to_event_and_session(client, data):
    p = data["project"]
    r = ui(client, "/search", query="checkout crash", project_id=p, mode="text")
    assert r.status_code == 200
    body = r.text
    assert "<mark>" in body
    # The stored markup is shown as text: escaped, never as a tag.
    assert "<script>window.pwned" not in body and "<img src=x" not in body
    # (the search's own parser drops tags from snippets; what is left is escaped)
    assert "total &lt; 0 &amp;&amp;" in body
    assert "&lt;mark&gt;" not in body and "&lt;b&gt;" not in body
    hrefs = links(body)
    note = f"/projects/{p}/events/crash-1-3"
    assert note in hrefs
    assert f"/projects/{p}/sessions/crash-1?at=crash-1-3#hit" in hrefs


def test_search_filters_explain_and_session_grouping(client, data):
    p = data["project"]
    hits = ui(client, "/search", query="division by zero", project_id=p, types="error", explain="on")
    assert hits.status_code == 200
    assert f"/projects/{p}/events/crash-1-2" in links(hits.text)
    assert "crash-1-3" not in hits.text  # the note is filtered out by type
    assert "How this hit ranked" in hits.text and "Vector (meaning)" in hits.text and "BM25" in hits.text
    files = ui(client, "/search", query="checkout", project_id=p, files="src/checkout.py", mode="text")
    assert "/events/crash-1-3" not in files.text and "/events/crash-1-2" in files.text
    window = ui(client, "/search", query="checkout", project_id=p, since="2026-11-21", until="2026-11-22")
    assert window.status_code == 200 and "0 hits" in window.text
    grouped = ui(client, "/search", query="checkout crash", project_id=p, group="session")
    assert grouped.status_code == 200 and "1 session" in grouped.text
    assert re.search(rf'href="/projects/{p}/sessions/crash-1(\?at=[^"]*)?"', grouped.text)


def test_search_pages_by_cursor(client, data):
    q = {"query": "flaky retry payment gateway", "project_id": data["many"], "mode": "text"}
    first = ui(client, "/search", **q)
    assert first.status_code == 200 and "10 hits" in first.text
    (nxt,) = [h for h in links(first.text) if "cursor=" in h and h.startswith("/search")]
    params = parse_qs(urlparse(nxt).query)
    assert params["query"] == [q["query"]] and params["project_id"] == [q["project_id"]]
    second = client.get("/ui" + nxt)
    assert second.status_code == 200 and "(continued)" in second.text
    ids = lambda body: set(re.findall(r"/events/(m\d\d-\d+)\"", body))  # noqa: E731
    assert ids(first.text) and ids(second.text) and not ids(first.text) & ids(second.text)
    assert "First page" in second.text


def test_search_reports_bad_input_by_field_without_a_traceback(client, data):
    p = data["project"]
    r = ui(client, "/search", query="x", project_id=p, since="yesterday-ish")
    assert r.status_code == 422 and "since:" in r.text and 'role="alert"' in r.text
    r = ui(client, "/search", query="x", project_id=p, types="bogus")
    assert r.status_code == 422 and "types[0]:" in r.text
    r = ui(client, "/search", query="x", project_id=p, cursor="garbage")
    assert r.status_code == 400 and "cursor" in r.text
    empty = ui(client, "/search")
    assert empty.status_code == 200 and 'id="s-query"' in empty.text and "results-title" not in empty.text
    for body in (r.text, empty.text):
        assert "Traceback" not in body


def test_session_view_has_summary_metrics_chart_and_timeline_with_the_hit(client, data):
    p = data["project"]
    r = ui(client, f"/projects/{p}/sessions/crash-1", at="crash-1-2")
    assert r.status_code == 200
    body = r.text
    assert "Summary" in body and "Fix the checkout crash" in body
    assert re.search(r"<dt>Tool calls</dt><dd>2</dd>", body) and re.search(r"<dt>Errors</dt><dd>1 ", body)
    assert '<svg class="chart"' in body and 'role="img"' in body and body.count('class="bar-tools"') >= 1
    assert 'class="bar-errors"' in body and "The chart's numbers as a table" in body
    # The hit is in place, highlighted, among the others; each event links to its own page.
    hit = re.search(r'<li class="event hit" id="hit" aria-current="true">.*?</li>', body, re.S).group(0)
    assert "/events/crash-1-2" in hit and "Cut at 1000 of 5000 characters" in hit
    assert body.count('<li class="event') == 7
    for n in range(7):
        assert f"/projects/{p}/events/crash-1-{n}" in links(body)
    assert "&lt;script&gt;window.pwned" in body and "<script>" not in body and "<img" not in body
    assert "src/checkout.py" in body  # files touched


def test_timeline_links_to_earlier_and_later_events_when_long(client, project, wait_indexed):
    evs = [event(project, "long", i, "note", f"step {i}") for i in range(600)]
    assert client.post("/v1/events", json={"events": evs}).status_code == 202
    first = ui(client, f"/projects/{project}/sessions/long")
    assert first.status_code == 200 and first.text.count('<li class="event') == 501
    later = [h for h in links(first.text) if "around=" in h]
    assert later == [f"/projects/{project}/sessions/long?around=long-500"]
    second = client.get("/ui" + later[0])
    assert "events 251–600 of 600" in second.text and "Earlier events" in second.text
    assert "Later events" not in second.text


def test_event_view_shows_all_of_the_text_and_the_payload(client, data):
    p = data["project"]
    r = ui(client, f"/projects/{p}/events/crash-1-2")
    assert r.status_code == 200
    body = r.text
    assert len(TRACEBACK) == 5000
    full = re.search(r'<pre class="content full"[^>]*>(.*?)</pre>', body, re.S).group(1)
    assert html.unescape(full) == TRACEBACK
    payload = re.search(r'<pre class="payload"[^>]*>(.*?)</pre>', body, re.S).group(1)
    assert '"exit_code": 1' in html.unescape(payload) and "\n  " in payload
    assert "&lt;/pre&gt;&lt;b&gt;bold?" in payload
    assert f"/projects/{p}/sessions/crash-1?at=crash-1-2#hit" in links(body)


def test_event_ids_with_slashes_and_summaries_open(client, project, wait_indexed):
    odd = "tool/use#1?x"
    r = client.post("/v1/events", json={"events": [event(project, "s/1", 1, "note", "odd ids", id=odd)]})
    assert r.status_code == 202
    wait_indexed(project)
    page = ui(client, f"/projects/{project}/sessions/{quote('s/1', safe='')}")
    assert page.status_code == 200
    href = f"/projects/{project}/events/{quote(odd, safe='')}"
    assert href in links(page.text)
    got = client.get("/ui" + href)
    assert got.status_code == 200 and "odd ids" in got.text
    summary = client.get("/ui" + f"/projects/{project}/events/{quote('summary:s/1', safe='')}")
    assert summary.status_code == 200 and "session summary" not in summary.text and "odd ids" in summary.text


def test_status_view_shows_queue_freshness_and_warm_tier(client, data):
    r = ui(client, "/status")
    assert r.status_code == 200
    for text in ("Pending documents", "Freshness lag", "Last rebuild", "Generation", "Ready"):
        assert text in r.text


# --- With API keys -------------------------------------------------------------------------

KEY_A, KEY_ALL = "web-key-a-0123456789abcdef", "web-key-all-0123456789abcdef"


@pytest.fixture(scope="module")
def keyed(settings, service, data):
    keys = {KEY_A: [data["project"]], KEY_ALL: ["*"]}
    with TestClient(create_app(settings.model_copy(update={"api_keys": keys}), service=service)) as c:
        yield c


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_with_keys_the_layout_is_open_and_the_views_need_a_key(keyed, data):
    assert keyed.get("/").status_code == 200 and keyed.get("/static/app.js").status_code == 200
    for path in ("/ui/", "/ui/search", "/ui/status", f"/ui/projects/{data['project']}"):
        r = keyed.get(path)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", path
        assert keyed.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_a_key_sees_only_its_projects(keyed, data):
    mine = keyed.get("/ui/", headers=auth(KEY_A)).text
    assert f"/projects/{data['project']}" in links(mine) and f"/projects/{data['many']}" not in links(mine)
    everything = keyed.get("/ui/", headers=auth(KEY_ALL)).text
    assert f"/projects/{data['many']}" in links(everything)
    search_form = keyed.get("/ui/search", headers=auth(KEY_A)).text
    assert f'value="{data["project"]}"' in search_form and data["many"] not in search_form


@pytest.mark.parametrize(
    "path",
    [
        "/ui/projects/{many}",
        "/ui/projects/{many}/sessions/m01",
        "/ui/projects/{many}/events/m01-1",
        "/ui/search?query=flaky&project_id={many}",
    ],
)
def test_another_projects_views_are_403(keyed, data, path):
    r = keyed.get(path.format(many=data["many"]), headers=auth(KEY_A))
    assert r.status_code == 403, r.text
    assert r.headers["content-type"].startswith("text/html") and "may not use project" in r.text
    assert "flaky retry" not in r.text
    ok = keyed.get(path.format(many=data["many"]), headers=auth(KEY_ALL))
    assert ok.status_code == 200


def test_views_share_the_keys_rate_limit(settings, service, data):
    keys = {KEY_A: [data["project"]]}
    limited = settings.model_copy(update={"api_keys": keys, "rate_limit_per_s": 0.01, "rate_limit_burst": 2})
    with TestClient(create_app(limited, service=service)) as c:
        assert c.get("/ui/", headers=auth(KEY_A)).status_code == 200
        assert c.get("/v1/projects", headers=auth(KEY_A)).status_code == 200
        r = c.get("/ui/status", headers=auth(KEY_A))
        assert r.status_code == 429 and "rate limit exceeded" in r.json()["error"] and r.headers["retry-after"]
        assert c.get("/").status_code == 200  # the layout itself is not limited
