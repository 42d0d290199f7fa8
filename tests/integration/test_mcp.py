"""The MCP server through the SDK's own client: streamable HTTP at /mcp, and stdio with
`ctxsearch mcp` as a second process beside a live server on the same embedded data dir.

The client knows only the server's address: it lists the projects, records events without
a time or a session, searches (the compact index), reads a timeline around a hit and the
chosen events in full; every bad argument comes back as `field: reason`."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import httpx
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from ctxsearch.http.app import create_app
from tests.conftest import event, serving

REPO = Path(__file__).resolve().parents[2]
TOOLS = {"list_projects", "search_context", "get_timeline", "get_events", "get_session", "record_events"}
INDEX_KEYS = {"id", "session_id", "timestamp", "type", "title", "snippet", "confidence"}
PAYLOAD = {"exit_code": 1, "stderr": "SignatureExpired: timestamp outside the tolerance"}

# (tool, arguments, the whole error): one of each kind of bad argument.
BAD = [
    ("search_context", {"query": "x", "project_id": "{p}", "explian": True}, "explian: Extra inputs are not permitted"),
    ("get_events", {"project_id": "{p}", "ids": ["w-1"], "full": True}, "full: Extra inputs are not permitted"),
    ("list_projects", {"project_id": "{p}"}, "project_id: Extra inputs are not permitted"),
    (
        "search_context",
        {"query": "x", "project_id": "{p}", "limit": "ten"},
        "limit: Input should be a valid integer, unable to parse string as an integer",
    ),
    (
        "search_context",
        {"query": "x", "project_id": "{p}", "limit": 0},
        "limit: Input should be greater than or equal to 1",
    ),
    (
        "get_timeline",
        {"project_id": "{p}", "around": "w-1", "before": 51},
        "before: Input should be less than or equal to 50",
    ),
    (
        "get_events",
        {"project_id": "{p}", "ids": [f"e{i}" for i in range(21)]},
        "ids: List should have at most 20 items after validation, not 21",
    ),
    ("search_context", {"project_id": "{p}"}, "query: Field required"),
    ("get_session", {"session_id": "s"}, "project_id: Field required"),
    (
        "search_context",
        {"query": "x", "project_id": "{p}", "mode": "fuzzy"},
        "mode: Input should be 'hybrid', 'vector' or 'text'",
    ),
    (
        "search_context",
        {"query": "x", "project_id": "{p}", "since": "yesterday"},
        "since: Input should be a valid datetime or date, input is too short",
    ),
    (
        "record_events",
        {"project_id": "{p}", "events": [{"type": "note", "content": "x", "timestamp": 1700000000}]},
        "events[0].timestamp: must be an RFC 3339 string, e.g. 2026-11-22T10:00:00Z",
    ),
    (
        "record_events",
        {"project_id": "{p}", "events": [{"type": "note", "content": "x"}, {"type": "bogus"}]},
        "events[1].type: Input should be 'message', 'tool_call', 'file_edit', 'decision', 'error', "
        "'test_run', 'commit' or 'note'",
    ),
    (
        "record_events",
        {"project_id": "{p}", "events": [{"type": "note", "content": "x", "tokens": "many", "colour": "red"}]},
        "events[0].tokens: Input should be a valid integer; events[0].colour: Extra inputs are not permitted",
    ),
    (
        "record_events",
        {"events": [{"type": "note", "content": "x"}]},
        "events[0].project_id: Field required (here or as the call's project_id)",
    ),
    ("get_timeline", {"project_id": "{p}"}, "session_id: Field required (or give `around`, an event id)"),
    ("search_context", {"query": " ", "project_id": "{p}"}, "query: must not be blank"),
]


def _fill(args: dict, project: str) -> dict:
    return json.loads(json.dumps(args).replace("{p}", project))


async def _exercise(client: Client, project: str, *, one_session: bool = True) -> str:
    """Discover, record without time or session, search, read around a hit and in full,
    and fail politely; returns the session the server gave the events."""
    listed = {t.name: t for t in (await client.list_tools()).tools}
    assert set(listed) >= TOOLS
    for tool in TOOLS:
        assert len(listed[tool].description or "") > 80 and listed[tool].output_schema, tool
        assert "tokens" in listed[tool].description, tool  # each says what it costs
        assert listed[tool].input_schema.get("additionalProperties") is False, tool
    assert "max_tokens" in listed["search_context"].input_schema["properties"]
    # Time, session and project are the server's to fill in.
    assert listed["record_events"].input_schema["$defs"]["RecordedEvent"]["required"] == ["type"]

    projects = (await client.call_tool("list_projects", {})).structured_content["projects"]
    assert project not in {p["project_id"] for p in projects}

    recorded = await client.call_tool(
        "record_events",
        {
            "project_id": project,
            "events": [
                {
                    "id": "w-1",
                    "type": "error",
                    "content": "Webhook signature check fails: the clock on the worker drifted 7 minutes",
                    "files": ["hooks/verify.py"],
                    "payload": PAYLOAD,
                },
                {"id": "w-2", "type": "decision", "content": "Run chrony on every worker and allow 5 minutes of skew"},
                {"id": "w-3", "type": "note", "content": "Lunch order for the team offsite"},
            ],
        },
    )
    assert not recorded.is_error, recorded.content
    got = recorded.structured_content
    session = got.pop("session_id")
    assert session.startswith("mcp-") and got == {"accepted": 3, "duplicates": 0, "redactions": 0, "indexed": True}
    assert json.loads(recorded.content[0].text)["session_id"] == session  # compact JSON text too

    again = await client.call_tool(
        "record_events",
        {"project_id": project, "events": [{"id": "w-4", "type": "test_run", "content": "pytest: 212 passed"}]},
    )
    assert again.structured_content["accepted"] == 1
    assert (again.structured_content["session_id"] == session) is one_session

    projects = (await client.call_tool("list_projects", {})).structured_content["projects"]
    mine = next(p for p in projects if p["project_id"] == project)
    assert mine["events"] == 4 and mine["sessions"] == (1 if one_session else 2)

    found = await client.call_tool(
        "search_context", {"query": "why are incoming webhook signatures rejected", "project_id": project, "limit": 2}
    )
    assert not found.is_error, found.content
    index = found.structured_content
    assert set(index) == {"results", "truncated", "next_cursor"}
    hits = index["results"]
    assert hits[0]["id"] == "w-1" and hits[0]["session_id"] == session and set(hits[0]) == INDEX_KEYS
    assert len(hits[0]["snippet"]) <= 210
    explained = await client.call_tool(
        "search_context", {"query": "webhook signature", "project_id": project, "limit": 1, "explain": True}
    )
    assert {"files", "score", "ranks", "scores"} <= set(explained.structured_content["results"][0])

    budget = await client.call_tool("search_context", {"query": "clock skew", "project_id": project, "max_tokens": 120})
    assert budget.structured_content["truncated"] is True and budget.structured_content["next_cursor"]
    more = await client.call_tool(
        "search_context",
        {
            "query": "clock skew",
            "project_id": project,
            "max_tokens": 120,
            "cursor": budget.structured_content["next_cursor"],
        },
    )
    assert not more.is_error and more.structured_content["results"]
    first_ids = {h["id"] for h in budget.structured_content["results"]}
    assert not first_ids & {h["id"] for h in more.structured_content["results"]}

    # Step two: around the hit, its session found from the event itself.
    timeline = await client.call_tool(
        "get_timeline", {"project_id": project, "around": "w-2", "before": 1, "after": 1, "max_chars": 20}
    )
    assert not timeline.is_error, timeline.content
    shown = timeline.structured_content
    assert [e["id"] for e in shown["events"]] == ["w-1", "w-2", "w-3"] and shown["session_id"] == session
    assert shown["events"][0]["truncated"] and len(shown["events"][0]["content"]) == 20
    assert shown["more_after"] is one_session and shown["more_before"] is False

    # Step three: in full, payload included; unknown ids listed, not fatal.
    full = await client.call_tool("get_events", {"project_id": project, "ids": ["w-1", "nope"]})
    assert not full.is_error, full.content
    read = full.structured_content
    assert read["missing"] == ["nope"] and read["events"][0]["payload"] == PAYLOAD
    assert read["events"][0]["content"].endswith("drifted 7 minutes") and read["events"][0]["truncated"] is False
    cut = (
        await client.call_tool("get_events", {"project_id": project, "ids": ["w-1"], "max_chars": 10})
    ).structured_content
    assert (
        cut["events"][0]["content"] == "Webhook si"
        and cut["events"][0]["truncated"]
        and cut["events"][0]["payload"] is None
    )

    got_session = await client.call_tool("get_session", {"project_id": project, "session_id": session})
    assert got_session.structured_content["event_count"] == (4 if one_session else 3)

    # A project in the wrong case is named, not answered with nothing.
    wrong = project.upper()
    for name, args in [
        ("search_context", {"query": "webhook", "project_id": wrong}),
        ("get_timeline", {"project_id": wrong, "session_id": session}),
        ("get_events", {"project_id": wrong, "ids": ["w-1"]}),
        ("get_session", {"project_id": wrong, "session_id": session}),
    ]:
        refused = await client.call_tool(name, args)
        assert refused.is_error, (name, refused.content)
        assert refused.content[0].text == f"no project {wrong!r} is stored; did you mean {project!r}?", name

    for name, args, words in [
        ("get_session", {"project_id": project, "session_id": "nope"}, f"no session 'nope' in project {project!r}"),
        ("get_timeline", {"project_id": project, "around": "nope"}, f"no event 'nope' in project {project!r}"),
        ("search_context", {"query": "x", "project_id": project, "cursor": "forged"}, "cursor"),
    ]:
        bad = await client.call_tool(name, args)
        assert bad.is_error and words in bad.content[0].text, (name, bad.content)
    for name, args, message in BAD:
        bad = await client.call_tool(name, _fill(args, project))
        assert bad.is_error and bad.content[0].text == message, (name, args, bad.content)
    return session


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # legacy: the initialize handshake of pre-2026 clients
def test_streamable_http_at_mcp(live_url, project, mode):
    async def run() -> None:
        async with Client(f"{live_url}/mcp", mode=mode) as client:
            # A stateless (2026) exchange has no connection beyond the call: each call that
            # leaves the session out starts one.
            await _exercise(client, project, one_session=mode == "legacy")

    asyncio.run(run())


def test_record_without_waiting_says_what_is_not_indexed_yet(live_url, project):
    async def run() -> None:
        async with Client(f"{live_url}/mcp", mode="legacy") as client:
            events = [
                {"id": f"n-{i}", "type": "note", "content": f"note {i} about the deploy queue"} for i in range(40)
            ]
            r = await client.call_tool("record_events", {"project_id": project, "events": events, "wait": False})
            assert not r.is_error, r.content
            assert r.structured_content["accepted"] == 40 and r.structured_content["indexed"] is False
            async with httpx.AsyncClient(base_url=live_url) as http:
                while (await http.get(f"/v1/projects/{project}/stats")).json()["pending"]:
                    await asyncio.sleep(0.1)
            r = await client.call_tool("record_events", {"project_id": project, "events": events[:1], "wait": False})
            assert r.structured_content["duplicates"] == 1 and r.structured_content["indexed"] is True

    asyncio.run(run())


def test_api_keys_limit_the_projects_tools_may_use(settings, service, project):
    """With CTXSEARCH_API_KEYS set, /mcp needs a key, and each tool only reaches the key's projects."""
    import httpx2

    key = "mcp-key-0123456789abcdef"
    keyed = settings.model_copy(update={"api_keys": {key: [project]}})

    async def run(url: str) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
            async with Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client:
                ok = await client.call_tool("record_events", {"events": [event(project, "k", 1, "note", "keyed note")]})
                assert not ok.is_error, ok.content
                listed = await client.call_tool("list_projects", {})
                assert [p["project_id"] for p in listed.structured_content["projects"]] == [project]
                found = await client.call_tool("search_context", {"query": "keyed note", "project_id": project})
                assert found.structured_content["results"][0]["id"] == "k-1"
                for name, args in [
                    ("search_context", {"query": "x", "project_id": "other-project"}),
                    ("get_session", {"project_id": "other-project", "session_id": "k"}),
                    ("get_timeline", {"project_id": "other-project", "session_id": "k"}),
                    ("get_events", {"project_id": "other-project", "ids": ["k-1"]}),
                    ("record_events", {"events": [event("other-project", "k", 1, "note", "x")]}),
                    ("record_events", {"project_id": "other-project", "events": [{"type": "note", "content": "x"}]}),
                ]:
                    refused = await client.call_tool(name, args)
                    assert (
                        refused.is_error
                        and refused.content[0].text == "this API key may not use project 'other-project'"
                    )
                # The closest projects it names are the key's own.
                unknown = await client.call_tool("search_context", {"query": "x", "project_id": project.upper()})
                assert unknown.is_error and "forbidden" not in unknown.content[0].text
        r = httpx.post(
            f"{url}/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Accept": "application/json, text/event-stream"},
        )
        assert r.status_code == 401

    with serving(create_app(keyed, service=service)) as url:
        asyncio.run(run(url))


def test_stdio_beside_a_running_server(settings, live_url, project):
    """`ctxsearch mcp` in its own process on the data dir this test session's server uses:
    both share one embedded PostgreSQL and run their embed workers side by side."""
    if settings.database_url:
        pytest.skip("the shared data dir only matters for the embedded server")
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "ctxsearch", "mcp", "--data-dir", str(settings.data_dir)],
        cwd=str(REPO),
        env={
            "HF_HUB_OFFLINE": "1",
            "CTXSEARCH_LOG_LEVEL": "WARNING",
            "CTXSEARCH_REFRESH_INTERVAL_S": "3600",
            "PYTHONPATH": str(REPO),
        },
    )

    async def run() -> None:
        async with Client(params) as client:
            session = await _exercise(client, project)
            # what the MCP process recorded, the HTTP server finds, and the other way round
            async with httpx.AsyncClient(base_url=live_url) as http:
                r = await http.post("/v1/search", json={"query": "chrony", "project_id": project, "limit": 1})
                assert r.json()["results"][0]["id"] == "w-2" and r.json()["results"][0]["session_id"] == session
                r = await http.post(
                    "/v1/events",
                    json={
                        "events": [
                            event(
                                project,
                                "http-1",
                                1,
                                "commit",
                                "Pin the payments SDK to 4.2 after the refund regression",
                            )
                        ]
                    },
                )
                assert r.status_code == 202
                while (await http.get(f"/v1/projects/{project}/stats")).json()["pending"]:
                    await asyncio.sleep(0.1)
            found = await client.call_tool(
                "search_context", {"query": "refund regression", "project_id": project, "limit": 1}
            )
            assert found.structured_content["results"][0]["id"] == "http-1-1"

    asyncio.run(run())
    # the MCP process is gone; the server it shared the database with still answers
    assert httpx.get(f"{live_url}/healthz").status_code == 200
    assert httpx.get(f"{live_url}/v1/projects/{project}/stats").json()["events"] == 5
    assert os.path.exists(settings.data_dir / "pgdata" / "postmaster.pid")
    # and it released its handle on the embedded server: this process is the only user left
    assert json.loads((settings.data_dir / "pgdata" / ".handle_pids.json").read_text()) == [os.getpid()]
