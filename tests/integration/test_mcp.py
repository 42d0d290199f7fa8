"""The MCP server through the SDK's own client: streamable HTTP at /mcp, and stdio with
`ctxsearch mcp` as a second process beside a live server on the same embedded data dir."""

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
TOOLS = {"search_context", "get_session", "record_events"}


async def _exercise(client: Client, project: str) -> dict:
    """List the tools, record held-out events, find them, read their session, and fail politely."""
    listed = {t.name: t for t in (await client.list_tools()).tools}
    assert set(listed) >= TOOLS
    for tool in TOOLS:
        assert len(listed[tool].description or "") > 80 and listed[tool].output_schema
    assert "max_tokens" in listed["search_context"].input_schema["properties"]

    events = [
        event(
            project,
            "mcp-1",
            1,
            "error",
            "Webhook signature check fails: the clock on the worker drifted 7 minutes",
            files=["hooks/verify.py"],
        ),
        event(project, "mcp-1", 2, "decision", "Run chrony on every worker and allow 5 minutes of skew"),
        event(project, "mcp-1", 3, "note", "Lunch order for the team offsite"),
    ]
    recorded = await client.call_tool("record_events", {"events": events})
    assert not recorded.is_error, recorded.content
    assert recorded.structured_content == {"accepted": 3, "duplicates": 0, "redactions": 0, "indexed": True}

    found = await client.call_tool(
        "search_context", {"query": "why are incoming webhook signatures rejected", "project_id": project, "limit": 2}
    )
    assert not found.is_error, found.content
    hits = found.structured_content["results"]
    assert hits[0]["id"] == "mcp-1-1" and hits[0]["session_id"] == "mcp-1"

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

    session = await client.call_tool("get_session", {"project_id": project, "session_id": "mcp-1"})
    assert session.structured_content["event_count"] == 3

    for name, args, words in [
        ("get_session", {"project_id": project, "session_id": "nope"}, "no session 'nope'"),
        ("search_context", {"query": " ", "project_id": project}, "query"),
        ("search_context", {"query": "x", "project_id": project, "cursor": "forged"}, "cursor"),
        ("record_events", {"events": [{**events[0], "type": "bogus"}]}, "type"),
    ]:
        bad = await client.call_tool(name, args)
        assert bad.is_error and words in bad.content[0].text, (name, bad.content)
    return found.structured_content


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # legacy: the initialize handshake of pre-2026 clients
def test_streamable_http_at_mcp(live_url, project, mode):
    async def run() -> None:
        async with Client(f"{live_url}/mcp", mode=mode) as client:
            await _exercise(client, project)

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
                found = await client.call_tool("search_context", {"query": "keyed note", "project_id": project})
                assert found.structured_content["results"][0]["id"] == "k-1"
                for name, args in [
                    ("search_context", {"query": "x", "project_id": "other-project"}),
                    ("get_session", {"project_id": "other-project", "session_id": "k"}),
                    ("record_events", {"events": [event("other-project", "k", 1, "note", "x")]}),
                ]:
                    refused = await client.call_tool(name, args)
                    assert refused.is_error and "may not use project 'other-project'" in refused.content[0].text
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
            await _exercise(client, project)
            # what the MCP process recorded, the HTTP server finds, and the other way round
            async with httpx.AsyncClient(base_url=live_url) as http:
                r = await http.post("/v1/search", json={"query": "chrony", "project_id": project, "limit": 1})
                assert r.json()["results"][0]["id"] == "mcp-1-2"
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
    assert httpx.get(f"{live_url}/v1/projects/{project}/stats").json()["events"] == 4
    assert os.path.exists(settings.data_dir / "pgdata" / "postmaster.pid")
    # and it released its handle on the embedded server: this process is the only user left
    assert json.loads((settings.data_dir / "pgdata" / ".handle_pids.json").read_text()) == [os.getpid()]
