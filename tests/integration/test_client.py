"""The Python client against a live server (uvicorn on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import UTC, datetime

import pytest

from ctxsearch.client import AsyncClient, BadRequest, Client, ConnectionFailed, NotFound
from ctxsearch.schemas import EventIn, IngestResponse, SearchHit, SearchResponse, SessionPublic
from tests.conftest import event


def _wait(cs: Client, project: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while cs.stats(project).pending:
        assert time.monotonic() < deadline, "still pending"
        time.sleep(0.1)


def test_every_endpoint_with_typed_results(live_url, project):
    with Client(live_url) as cs:
        assert cs.healthy() is True
        typed = EventIn.model_validate(
            event(project, "s1", 1, "error", "KeyError: 'currency' in render_invoice", files=["billing/invoice.py"])
        )
        plain = event(project, "s1", 2, "decision", "Default the currency to the account's own one")
        got = cs.record([typed, plain])
        assert got == IngestResponse(accepted=2, duplicates=0)
        assert cs.record([plain]).duplicates == 1
        _wait(cs, project)

        page = cs.search(
            "invoice fails on a missing currency",
            project_id=project,
            limit=1,
            since=datetime(2026, 1, 1, tzinfo=UTC),
            types=["error", "decision"],
        )
        assert isinstance(page, SearchResponse) and isinstance(page.results[0], SearchHit)
        assert page.results[0].id == "s1-1" and page.next_cursor
        every = list(cs.search_all("currency", project_id=project, limit=1))
        assert [h.id for h in every].count("s1-1") == 1 and len(every) == 3  # two events and the summary

        session = cs.session(project, "s1")
        assert isinstance(session, SessionPublic) and session.event_count == 2
        assert cs.put_summary(project, "s1", "Fixed invoices without a currency.").summary_source == "agent"
        assert cs.stats(project).events == 2


def test_errors_carry_status_and_the_servers_message(live_url, project):
    with Client(live_url) as cs:
        with pytest.raises(BadRequest) as bad:
            cs.record([event(project, "s1", 1, "bogus")])
        assert bad.value.status_code == 422 and "events[0].type" in bad.value.message
        with pytest.raises(BadRequest, match="limit"):
            cs.search("x", project_id=project, limit=1000)
        with pytest.raises(BadRequest, match="cursor"):
            cs.search("x", project_id=project, cursor="forged.cursor")
        with pytest.raises(NotFound) as missing:
            cs.session(project, "no-such-session")
        assert missing.value.status_code == 404 and "no-such-session" in str(missing.value)


def test_unreachable_server():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Client(f"http://127.0.0.1:{port}", timeout=2) as cs:
        with pytest.raises(ConnectionFailed):
            cs.stats("p")


def test_async_client(live_url, project):
    async def run() -> tuple[int, list[str], int]:
        async with AsyncClient(live_url) as cs:
            assert await cs.healthy()
            await cs.record([event(project, "a", n, "note", f"async note {n} about retries") for n in range(3)])
            while (await cs.stats(project)).pending:
                await asyncio.sleep(0.1)
            ids = [h.id async for h in cs.search_all("retries", project_id=project, limit=2, kinds=["event"])]
            try:
                await cs.session(project, "missing")
            except NotFound as exc:
                status = exc.status_code
            return (await cs.session(project, "a")).event_count, ids, status

    count, ids, status = asyncio.run(run())
    assert count == 3 and sorted(ids) == ["a-0", "a-1", "a-2"] and status == 404
