"""Cursor paging and token budgets on POST /v1/search, and the GET form."""

from __future__ import annotations

import base64
import json

import pytest

from ctxsearch.schemas import SearchHit
from ctxsearch.service.paging import MIN_SNIPPET_TOKENS, hit_tokens
from tests.conftest import event

TOPICS = [
    "connection pool exhausted under load; raised pool size and added a timeout",
    "flaky test in the payment retry logic fixed by freezing the clock",
    "decided to cache query embeddings in an LRU keyed by content hash",
    "migration 0007 failed because the index already existed",
    "rewrote the CSV export to stream rows instead of building a list",
]


def _events(project: str, session: str, start: int, n: int) -> list[dict]:
    return [
        event(
            project,
            session,
            i,
            "note",
            f"{TOPICS[i % len(TOPICS)]} (note {i} in {session})",
            files=[f"src/mod{i % 4}.py"],
        )
        for i in range(start, start + n)
    ]


@pytest.fixture
def paged_project(client, project, wait_indexed) -> str:
    evs = _events(project, "s1", 0, 12) + _events(project, "s2", 12, 12)
    assert client.post("/v1/events", json={"events": evs}).status_code == 202
    wait_indexed(project)
    return project


def _all_pages(client, body: dict, max_pages: int = 50) -> tuple[list[dict], list[dict]]:
    """Follow next_cursor to the end; returns the hits and the raw pages."""
    hits, pages, cursor = [], [], None
    for _ in range(max_pages):
        r = client.post("/v1/search", json={**body, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        page = r.json()
        pages.append(page)
        hits += page["results"]
        cursor = page["next_cursor"]
        if cursor is None:
            return hits, pages
    raise AssertionError("paging did not end")


def test_pages_cover_the_list_once(client, paged_project):
    body = {"query": "database connection problems", "project_id": paged_project}
    everything = client.post("/v1/search", json={**body, "limit": 100}).json()
    assert everything["next_cursor"] is None
    hits, pages = _all_pages(client, {**body, "limit": 4})
    ids = [h["id"] for h in hits]
    assert len(ids) == len(set(ids)), "a hit came back twice"
    assert set(ids) == {h["id"] for h in everything["results"]}, "paging skipped or invented hits"
    assert len(ids) == 24 + 2  # every event and both session summaries
    assert all(len(p["results"]) == 4 for p in pages[:-1])
    assert ids[:4] == [h["id"] for h in everything["results"][:4]]


def test_paging_is_stable_while_events_arrive(client, paged_project, wait_indexed):
    body = {"query": "connection pool timeout", "project_id": paged_project, "limit": 5}
    before = {h["id"] for h in client.post("/v1/search", json={**body, "limit": 100}).json()["results"]}
    first = client.post("/v1/search", json=body).json()
    # New events that match the query well: in a known session (its summary is rewritten)
    # and in a new one. Neither may appear in later pages, and nothing may be skipped.
    fresh = [
        event(paged_project, "s1", 100 + i, "error", f"connection pool timeout again, attempt {i}") for i in range(3)
    ]
    fresh += [
        event(paged_project, "s3", 200 + i, "error", f"connection pool timeout in a new session {i}") for i in range(3)
    ]
    assert client.post("/v1/events", json={"events": fresh}).status_code == 202
    wait_indexed(paged_project)
    rest, _ = _all_pages(client, {**body, "cursor": first["next_cursor"]})
    ids = [h["id"] for h in first["results"]] + [h["id"] for h in rest]
    assert len(ids) == len(set(ids)), "a hit came back twice"
    assert set(ids) == before, (set(ids) - before, before - set(ids))
    # and a new search sees the new events
    now = {h["id"] for h in client.post("/v1/search", json={**body, "limit": 100}).json()["results"]}
    assert {e["id"] for e in fresh} <= now


@pytest.mark.parametrize("change", ["tamper", "garbage", "other_query", "other_filter"])
def test_a_foreign_cursor_is_refused(client, paged_project, change):
    body = {"query": "csv export", "project_id": paged_project, "limit": 3}
    cursor = client.post("/v1/search", json=body).json()["next_cursor"]
    payload, signature = cursor.split(".")
    if change == "tamper":
        body["cursor"] = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + signature
    elif change == "garbage":
        body["cursor"] = "not-a-cursor"
    elif change == "other_query":
        body.update(query="flaky test", cursor=cursor)
    else:
        body.update(types=["error"], cursor=cursor)
    r = client.post("/v1/search", json=body)
    assert r.status_code == 400
    assert r.json()["error"].startswith("cursor:")


def test_limit_and_budget_may_change_between_pages(client, paged_project):
    body = {"query": "csv export", "project_id": paged_project}
    first = client.post("/v1/search", json={**body, "limit": 3}).json()
    second = client.post(
        "/v1/search", json={**body, "limit": 7, "max_tokens": 2000, "cursor": first["next_cursor"]}
    ).json()
    assert len(first["results"]) == 3 and second["results"]
    assert not {h["id"] for h in first["results"]} & {h["id"] for h in second["results"]}


def _cost(service, hits: list[dict]) -> int:
    return sum(hit_tokens(SearchHit.model_validate(h), service.token_counter) for h in hits)


# Budgets placed from this corpus's own costs: `whole` hits, then either no useful room for
# the next hit's snippet (it is left for the next page) or room for a cut of it.
@pytest.mark.parametrize("whole, ends_cut", [(1, False), (1, True), (3, True)])
def test_budget_trims_and_drops_to_fit(client, service, paged_project, whole, ends_cut):
    body = {"query": "connection pool exhausted", "project_id": paged_project, "limit": 20}
    full = client.post("/v1/search", json=body).json()
    hits = [SearchHit.model_validate(h) for h in full["results"]]
    nxt = hits[whole]
    bare = hit_tokens(nxt.model_copy(update={"snippet": ""}), service.token_counter)
    assert hit_tokens(nxt, service.token_counter) > bare + MIN_SNIPPET_TOKENS + 16, (
        "the next snippet is too short to cut"
    )
    max_tokens = _cost(service, full["results"][:whole]) + bare + (MIN_SNIPPET_TOKENS + 8 if ends_cut else 2)
    assert _cost(service, full["results"]) > max_tokens
    page = client.post("/v1/search", json={**body, "max_tokens": max_tokens}).json()
    assert len(page["results"]) == whole + ends_cut
    assert page["truncated"] is True and page["next_cursor"]
    assert 1 <= len(page["results"]) < len(full["results"])
    assert _cost(service, page["results"]) <= max_tokens
    # rank order is kept: the page is a prefix of the unbudgeted list
    assert [h["id"] for h in page["results"]] == [h["id"] for h in full["results"][: len(page["results"])]]
    # Only the last hit kept may be cut, and a cut snippet ends with an ellipsis and closes its tags.
    cut = [
        got for got, want in zip(page["results"], full["results"], strict=False) if got["snippet"] != want["snippet"]
    ]
    assert [h["id"] for h in cut] == ([page["results"][-1]["id"]] if ends_cut else []), cut
    for hit in cut:
        assert hit["snippet"].endswith("…") and hit["snippet"].count("<b>") == hit["snippet"].count("</b>")


def test_a_budget_below_one_hit_still_returns_one(client, paged_project):
    # Paging must make progress: the best hit comes back, its snippet cut to nothing.
    body = {"query": "connection pool exhausted", "project_id": paged_project, "max_tokens": 10}
    page = client.post("/v1/search", json=body).json()
    assert len(page["results"]) == 1 and page["truncated"] and page["next_cursor"]
    assert page["results"][0]["snippet"] == ""


def test_budgeted_pages_still_cover_everything(client, paged_project):
    body = {"query": "streaming rows", "project_id": paged_project, "limit": 10}
    everything = {h["id"] for h in client.post("/v1/search", json={**body, "limit": 100}).json()["results"]}
    hits, pages = _all_pages(client, {**body, "max_tokens": 300})
    ids = [h["id"] for h in hits]
    assert len(ids) == len(set(ids)) and set(ids) == everything
    assert any(p["truncated"] for p in pages)


def test_a_budget_that_fits_everything_changes_nothing(client, paged_project):
    body = {"query": "migration index", "project_id": paged_project, "limit": 3}
    plain = client.post("/v1/search", json=body).json()
    roomy = client.post("/v1/search", json={**body, "max_tokens": 100_000}).json()
    assert roomy["truncated"] is False
    assert roomy["results"] == plain["results"]


def test_get_search_for_editor_plugins(client, paged_project):
    r = client.get(
        "/v1/search",
        params={
            "q": "flaky payment test",
            "project_id": paged_project,
            "limit": 2,
            "types": ["note"],
            "files": ["src/"],
        },
    )
    assert r.status_code == 200, r.text
    page = r.json()
    assert len(page["results"]) == 2 and page["next_cursor"]
    nxt = client.get(
        "/v1/search",
        params={
            "q": "flaky payment test",
            "project_id": paged_project,
            "limit": 2,
            "types": ["note"],
            "files": ["src/"],
            "cursor": page["next_cursor"],
        },
    )
    assert nxt.status_code == 200
    assert not {h["id"] for h in page["results"]} & {h["id"] for h in nxt.json()["results"]}


@pytest.mark.parametrize(
    "params, field",
    [
        ({"project_id": "p"}, "q"),
        ({"q": " ", "project_id": "p"}, "q"),
        ({"q": "x"}, "project_id"),
        ({"q": "x", "project_id": "p", "limit": 0}, "limit"),
        ({"q": "x", "project_id": "p", "max_tokens": 0}, "max_tokens"),
        ({"q": "x", "project_id": "p", "types": ["bogus"]}, "types[0]"),
        ({"q": "x", "project_id": "p", "mode": "fuzzy"}, "mode"),
        ({"q": "x", "project_id": "p", "since": "yesterday"}, "since"),
        ({"q": "x", "project_id": "p", "since": "2026-11-21T00:00:00Z", "until": "2026-11-20T00:00:00Z"}, "since"),
    ],
)
def test_get_search_names_the_bad_parameter(client, params, field):
    r = client.get("/v1/search", params=params)
    assert r.status_code == 422
    assert r.json()["error"].startswith(f"{field}:"), r.json()


def test_post_search_validates_budget_and_cursor(client, project):
    r = client.post("/v1/search", json={"query": "x", "project_id": project, "max_tokens": -5})
    assert r.status_code == 422 and r.json()["error"].startswith("max_tokens:")
    r = client.post("/v1/search", json={"query": "x", "project_id": project, "cursor": "x" * 20_000})
    assert r.status_code == 422 and r.json()["error"].startswith("cursor:")


def test_cli_search_pages_with_a_budget(settings, service, paged_project):
    from click.testing import CliRunner

    from ctxsearch.cli.main import main

    runner = CliRunner()
    env = {"CTXSEARCH_DATA_DIR": str(settings.data_dir)}
    args = [
        "search",
        "flaky payment test",
        "--project",
        paged_project,
        "--limit",
        "3",
        "--max-tokens",
        "2000",
        "--json",
    ]
    first = runner.invoke(main, args, env=env)
    assert first.exit_code == 0, first.output
    *hits, end = first.stdout.splitlines()
    # --json: one object per hit on stdout, then one with the cursor; nothing else.
    assert len(hits) == 3 and all("snippet" in json.loads(h) for h in hits), first.stdout
    end = json.loads(end)
    assert end["truncated"] is False and end["mode"] == "hybrid" and not first.stderr
    cursor = end["next_cursor"]
    second = runner.invoke(main, [*args, "--cursor", cursor], env=env)
    assert second.exit_code == 0
    more = second.stdout.splitlines()[:-1]
    assert more and not set(hits) & set(more)
    bad = runner.invoke(main, [*args, "--cursor", cursor[:-3]], env=env)
    assert bad.exit_code == 2 and "cursor:" in bad.output


def _signed(service, doc: dict | bytes) -> str:
    """A cursor signed with the server's secret, as anyone who knows it could write one."""
    import base64
    import json
    import zlib

    from ctxsearch.service.paging import _sign

    raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    body = zlib.compress(raw, 9)
    return base64.urlsafe_b64encode(body).decode().rstrip("=") + "." + _sign(service.cursor_secret, body)


@pytest.mark.parametrize(
    "change",
    [
        {"m": "drop table"},
        {"m": [1]},
        {"m": -5},
        {"i": "123"},
        {"i": [1.5]},
        {"i": [True]},
        {"i": [2**62, 2**62]},  # adds up beyond a bigint
        {"i": list(range(5000))},
        {"s": [7]},
        {"ss": [{"a": 1}], "g": "session"},
        {"n": "x", "g": "session"},
        {"v": None},
    ],
    ids=lambda c: ",".join(c),
)
def test_a_signed_cursor_of_odd_types_is_a_400_not_a_500(client, service, paged_project, change):
    from ctxsearch.schemas import SearchRequest
    from ctxsearch.service.paging import fingerprint

    body = {"query": "csv export", "project_id": paged_project, "limit": 3}
    group = change.get("g", "event")
    req = SearchRequest(**body, group=group)
    doc = {"v": 1, "q": fingerprint(req), "m": 10, "i": [1, 2], "s": [], **change}
    r = client.post("/v1/search", json={**body, "group": group, "cursor": _signed(service, doc)})
    assert r.status_code == 400 and r.json()["error"].startswith("cursor:"), r.text


def test_a_cursor_that_inflates_without_end_is_refused_quickly(client, service, paged_project):
    import time

    body = {"query": "csv export", "project_id": paged_project, "limit": 3}
    bomb = b'{"v":1,"i":[' + b"0," * 3_000_000 + b'0],"s":[],"m":1,"q":"x"}'
    cursor = _signed(service, bomb)
    assert len(cursor) < 16_000  # it passes the length check
    t0 = time.perf_counter()
    r = client.post("/v1/search", json={**body, "cursor": cursor})
    assert r.status_code == 400 and r.json()["error"].startswith("cursor:")
    assert time.perf_counter() - t0 < 2.0


def test_cursors_are_signed_with_the_installations_own_secret(client, service, paged_project):
    from ctxsearch.service.paging import _sign

    secret = service.cursor_secret
    assert len(secret) == 64 and secret != "ctxsearch-cursor" and int(secret, 16)
    with service.db.connection() as conn:
        assert conn.execute("SELECT value FROM service_secrets WHERE name = 'cursor'").fetchone()[0] == secret
    body = {"query": "csv export", "project_id": paged_project, "limit": 3}
    cursor = client.post("/v1/search", json=body).json()["next_cursor"]
    payload = cursor.split(".")[0]
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    assert cursor.split(".")[1] == _sign(secret, raw)
    # The same cursor signed with the secret every installation used to share is refused.
    forged = f"{payload}.{_sign('ctxsearch-cursor', raw)}"
    r = client.post("/v1/search", json={**body, "cursor": forged})
    assert r.status_code == 400 and "signature" in r.json()["error"]
