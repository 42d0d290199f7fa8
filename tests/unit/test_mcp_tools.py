"""The MCP tools against a stand-in Service, in process: what record_events fills in, how
`indexed` is decided, how a hit is made compact, and that a crash stays the server's."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from mcp import Client

from ctxsearch.mcp.server import SNIPPET_CHARS, _cut, build_server
from ctxsearch.schemas import EventIn, IngestResponse, SearchHit, SearchRequest, SearchResponse


class Stand:
    """Keeps what it is given; `pending` says whether the worker has embedded everything yet."""

    def __init__(self, pending: bool = False) -> None:
        self.pending = pending
        self.batches: list[list[EventIn]] = []
        self.waits: list[tuple[str, float]] = []

    def ingest(self, events: list[EventIn]) -> IngestResponse:
        self.batches.append(events)
        return IngestResponse(accepted=len(events), duplicates=0)

    def wait_embedded(self, project_id: str, timeout_s: float) -> bool:
        self.waits.append((project_id, timeout_s))
        return not self.pending

    def search(self, req: SearchRequest) -> SearchResponse:
        if req.query == "crash":
            raise RuntimeError("secret internals")
        hit = SearchHit(
            id="e1",
            kind="event",
            project_id=req.project_id,
            session_id="s",
            timestamp=datetime(2026, 1, 1, tzinfo=UTC),
            type="error",
            title="t",
            snippet="word " * 100 + "<b>match</b>",
            files=["a.py"],
            score=0.5,
            confidence=0.87654,
            ranks={"vector": 1, "text": 1},
        )
        return SearchResponse(results=[hit], mode=req.mode, took_ms=1.0)


def _call(server, mode: str, calls: list[tuple[str, dict]]) -> list:
    async def run() -> list:
        async with Client(server, mode=mode) as client:
            return [await client.call_tool(name, args) for name, args in calls]

    return asyncio.run(run())


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_record_events_fills_time_session_and_project(mode):
    stand = Stand()
    server = build_server(lambda: stand)
    batch = {"project_id": "p", "events": [{"type": "note", "content": "a"}, {"type": "note", "content": "b"}]}
    first, second, named = _call(
        server,
        mode,
        [
            ("record_events", batch),
            ("record_events", batch),
            ("record_events", {"events": [{"type": "note", "content": "x", "project_id": "q", "session_id": "mine"}]}),
        ],
    )
    assert not first.is_error, first.content
    session = first.structured_content["session_id"]
    assert session.startswith("mcp-") and second.structured_content["session_id"] == session
    assert named.structured_content["session_id"] is None
    a, b = stand.batches[0]
    assert (a.project_id, a.session_id) == ("p", session) and a.timestamp < b.timestamp  # the batch keeps its order
    assert abs((datetime.now(UTC) - a.timestamp).total_seconds()) < 60
    assert stand.batches[2][0].session_id == "mine" and stand.batches[2][0].project_id == "q"


def test_each_connection_has_its_own_session():
    server = build_server(lambda: Stand())
    call = ("record_events", {"project_id": "p", "events": [{"type": "note", "content": "x"}]})
    (one,) = _call(server, "legacy", [call])
    (two,) = _call(server, "legacy", [call])
    assert one.structured_content["session_id"] != two.structured_content["session_id"]


@pytest.mark.parametrize("wait, pending, indexed, timeout", [(False, True, False, 0.0), (False, False, True, 0.0)])
def test_indexed_without_waiting_is_one_look(wait, pending, indexed, timeout):
    stand = Stand(pending=pending)
    (r,) = _call(
        build_server(lambda: stand),
        "legacy",
        [("record_events", {"project_id": "p", "events": [{"type": "note", "content": "x"}], "wait": wait})],
    )
    assert r.structured_content["indexed"] is indexed and stand.waits == [("p", timeout)]


def test_waiting_that_times_out_is_not_indexed():
    stand = Stand(pending=True)
    (r,) = _call(
        build_server(lambda: stand),
        "legacy",
        [("record_events", {"project_id": "p", "events": [{"type": "note", "content": "x"}]})],
    )
    assert r.structured_content["indexed"] is False and stand.waits[0][1] > 5


def test_search_answers_a_compact_index_and_a_crash_stays_the_servers():
    stand = Stand()
    plain, explained, crashed = _call(
        build_server(lambda: stand),
        "auto",
        [
            ("search_context", {"query": "q", "project_id": "p"}),
            ("search_context", {"query": "q", "project_id": "p", "explain": True}),
            ("search_context", {"query": "crash", "project_id": "p"}),
        ],
    )
    hit = plain.structured_content["results"][0]
    assert set(hit) == {"id", "session_id", "timestamp", "type", "title", "snippet", "confidence"}
    assert hit["confidence"] == 0.877 and len(hit["snippet"]) <= SNIPPET_CHARS + 2
    assert '"results":[{' in plain.content[0].text  # compact JSON, no indentation
    assert explained.structured_content["results"][0]["files"] == ["a.py"]
    assert crashed.is_error and "secret" not in crashed.content[0].text


@pytest.mark.parametrize(
    "text, limit, cut",
    [
        ("short", 10, "short"),
        ("one two three four five", 12, "one two …"),
        ("aa <b>match</b> and more words", 10, "aa <b>matc</b> …"),
        ("aa bb <b>match</b> more", 9, "aa bb …"),
    ],
)
def test_cut_ends_at_a_word_and_closes_tags(text, limit, cut):
    assert _cut(text, limit) == cut
