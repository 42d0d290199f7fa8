"""A Python client for the ctxsearch HTTP API, over httpx, with typed results.

    from ctxsearch.client import Client

    with Client("http://127.0.0.1:8080") as cs:
        cs.record([{"project_id": "shop", "session_id": "s1", "timestamp": "2026-11-20T10:00:00Z",
                    "type": "error", "content": "ZeroDivisionError in compute_average_price"}])
        for hit in cs.search("checkout crash", project_id="shop").results:
            print(hit.score, hit.id, hit.snippet)
        for session in cs.search("checkout crash", project_id="shop", group="session").sessions:
            print(session.score, session.session_id, session.title, [h.id for h in session.hits])

`AsyncClient` has the same methods, awaited. Failures raise `CtxsearchError`
subclasses carrying the HTTP status and the server's `error` message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from ctxsearch.schemas import (
    Erased,
    EventFull,
    EventIn,
    IngestResponse,
    ProjectList,
    ProjectStats,
    SearchHit,
    SearchResponse,
    SessionBrief,
    SessionHit,
    SessionList,
    SessionPublic,
    Timeline,
)

T = TypeVar("T")
DEFAULT_TIMEOUT = 30.0


class CtxsearchError(Exception):
    """Any failure talking to ctxsearch."""

    def __init__(self, message: str, status_code: int | None = None, detail: Any = None):
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.detail = detail


class ConnectionFailed(CtxsearchError):
    """The server could not be reached, or did not answer in time."""


class BadRequest(CtxsearchError):
    """4xx: the request was refused; `message` names the field or limit."""


class NotFound(BadRequest):
    """404: no such session (or path)."""


class ServerError(CtxsearchError):
    """5xx: the server failed."""


class Unavailable(ServerError):
    """503: the database is unreachable; retry later."""


def _raise_for(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body = response.json()
        message = body.get("error") or body.get("detail") or response.reason_phrase
        detail = body.get("detail")
    except (ValueError, AttributeError):
        message, detail = response.text or response.reason_phrase, None
    code = response.status_code
    kind = NotFound if code == 404 else BadRequest if code < 500 else Unavailable if code == 503 else ServerError
    raise kind(f"{code}: {message}", status_code=code, detail=detail)


@dataclass(frozen=True)
class _Call(Generic[T]):
    """One API call: what to send and how to read the answer."""

    method: str
    path: str
    parse: Callable[[Any], T]
    json: Any = None
    params: Mapping[str, Any] | None = None


def _event_json(event: EventIn | Mapping[str, Any]) -> Any:
    if isinstance(event, BaseModel):
        return event.model_dump(mode="json", exclude_none=True)
    return to_jsonable_python(dict(event))


def _drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _record(events: Iterable[EventIn | Mapping[str, Any]]) -> _Call[IngestResponse]:
    return _Call("POST", "/v1/events", IngestResponse.model_validate, json={"events": [_event_json(e) for e in events]})


def _search(query: str, project_id: str, options: Mapping[str, Any]) -> _Call[SearchResponse]:
    body = _drop_none({"query": query, "project_id": project_id, **options})
    return _Call("POST", "/v1/search", SearchResponse.model_validate, json=to_jsonable_python(body))


def _session(project_id: str, session_id: str) -> _Call[SessionPublic]:
    return _Call(
        "GET", f"/v1/sessions/{_segment(session_id)}", SessionPublic.model_validate, params={"project_id": project_id}
    )


def _put_summary(project_id: str, session_id: str, summary: str) -> _Call[SessionPublic]:
    return _Call(
        "PUT",
        f"/v1/sessions/{_segment(session_id)}/summary",
        SessionPublic.model_validate,
        json={"project_id": project_id, "summary": summary},
    )


def _stats(project_id: str) -> _Call[ProjectStats]:
    return _Call("GET", f"/v1/projects/{_segment(project_id)}/stats", ProjectStats.model_validate)


def _forget_session(project_id: str, session_id: str) -> _Call[Erased]:
    return _Call(
        "DELETE", f"/v1/sessions/{_segment(session_id)}", Erased.model_validate, params={"project_id": project_id}
    )


def _forget_project(project_id: str) -> _Call[Erased]:
    return _Call("DELETE", f"/v1/projects/{_segment(project_id)}", Erased.model_validate)


def _sessions(project_id: str, limit: int, cursor: str | None) -> _Call[SessionList]:
    return _Call(
        "GET",
        f"/v1/projects/{_segment(project_id)}/sessions",
        SessionList.model_validate,
        params=_drop_none({"limit": limit, "cursor": cursor}),
    )


def _projects() -> _Call[ProjectList]:
    return _Call("GET", "/v1/projects", ProjectList.model_validate)


def _event(project_id: str, event_id: str) -> _Call[EventFull]:
    return _Call("GET", f"/v1/events/{_segment(event_id)}", EventFull.model_validate, params={"project_id": project_id})


def _timeline(
    project_id: str, session_id: str, around: str | None, before: int, after: int, max_chars: int
) -> _Call[Timeline]:
    params = _drop_none(
        {"project_id": project_id, "around": around, "before": before, "after": after, "max_chars": max_chars}
    )
    return _Call("GET", f"/v1/sessions/{_segment(session_id)}/timeline", Timeline.model_validate, params=params)


def _health() -> _Call[bool]:
    return _Call("GET", "/healthz", lambda body: body.get("status") == "ok")


def _segment(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


class Client:
    """Blocking client. Use as a context manager, or call close()."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080",
        *,
        timeout: float = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ):
        self._http = httpx.Client(base_url=base_url, timeout=timeout, headers=headers, transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: _Call[T]) -> T:
        try:
            response = self._http.request(call.method, call.path, json=call.json, params=call.params)
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"cannot reach ctxsearch at {self._http.base_url}: {exc}") from exc
        _raise_for(response)
        return call.parse(response.json())

    def record(self, events: Iterable[EventIn | Mapping[str, Any]]) -> IngestResponse:
        """POST /v1/events: store a batch (1-1000) of events; retries with the same ids are stored once."""
        return self._send(_record(events))

    def search(self, query: str, project_id: str, **options: Any) -> SearchResponse:
        """POST /v1/search. Options are SearchRequest's fields: session_id, types, files, since, until,
        kinds, limit, mode, max_tokens, cursor, explain, group, fusion, rrf_k, weights. With
        group="session" the answer's `sessions` holds SessionHit models (and `results` is empty)."""
        return self._send(_search(query, project_id, options))

    def search_all(self, query: str, project_id: str, **options: Any) -> Iterator[SearchHit]:
        """Every hit, page after page, following next_cursor."""
        cursor = options.pop("cursor", None)
        while True:
            page = self.search(query, project_id, cursor=cursor, **options)
            yield from page.results
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def search_sessions(self, query: str, project_id: str, **options: Any) -> Iterator[SessionHit]:
        """Every session (group="session"), page after page, following next_cursor."""
        cursor = options.pop("cursor", None)
        options.pop("group", None)
        while True:
            page = self.search(query, project_id, cursor=cursor, group="session", **options)
            yield from page.sessions or []
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def session(self, project_id: str, session_id: str) -> SessionPublic:
        """GET /v1/sessions/{session_id}: summary, metrics and key events."""
        return self._send(_session(project_id, session_id))

    def put_summary(self, project_id: str, session_id: str, summary: str) -> SessionPublic:
        """PUT /v1/sessions/{session_id}/summary: the agent's own summary, which wins over the extracted one."""
        return self._send(_put_summary(project_id, session_id, summary))

    def stats(self, project_id: str) -> ProjectStats:
        """GET /v1/projects/{project_id}/stats; `pending` is 0 once everything is searchable."""
        return self._send(_stats(project_id))

    def sessions(self, project_id: str, limit: int = 20, cursor: str | None = None) -> SessionList:
        """GET /v1/projects/{project_id}/sessions: a page of sessions, most recent first, with their
        titles, summaries and counts; pass `next_cursor` as cursor for the next page."""
        return self._send(_sessions(project_id, limit, cursor))

    def all_sessions(self, project_id: str, limit: int = 100) -> Iterator[SessionBrief]:
        """Every session of the project, most recent first, page after page."""
        cursor = None
        while True:
            page = self.sessions(project_id, limit, cursor)
            yield from page.sessions
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def projects(self) -> ProjectList:
        """GET /v1/projects: the projects this key may read, with counts and last activity."""
        return self._send(_projects())

    def event(self, project_id: str, event_id: str) -> EventFull:
        """GET /v1/events/{event_id}: one event in full, payload included."""
        return self._send(_event(project_id, event_id))

    def timeline(
        self,
        project_id: str,
        session_id: str,
        around: str | None = None,
        *,
        before: int = 5,
        after: int = 5,
        max_chars: int = 1000,
    ) -> Timeline:
        """GET /v1/sessions/{session_id}/timeline: the session's events around one (or from its start)."""
        return self._send(_timeline(project_id, session_id, around, before, after, max_chars))

    def forget_session(self, project_id: str, session_id: str) -> Erased:
        """DELETE /v1/sessions/{session_id}: erase the session's events, documents and summary."""
        return self._send(_forget_session(project_id, session_id))

    def forget_project(self, project_id: str) -> Erased:
        """DELETE /v1/projects/{project_id}: erase everything stored for the project."""
        return self._send(_forget_project(project_id))

    def healthy(self) -> bool:
        """GET /healthz: True once the database is reachable and migrated."""
        try:
            return self._send(_health())
        except ServerError:
            return False


class AsyncClient:
    """The same API as Client, for asyncio code."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080",
        *,
        timeout: float = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout, headers=headers, transport=transport)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, call: _Call[T]) -> T:
        try:
            response = await self._http.request(call.method, call.path, json=call.json, params=call.params)
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"cannot reach ctxsearch at {self._http.base_url}: {exc}") from exc
        _raise_for(response)
        return call.parse(response.json())

    async def record(self, events: Iterable[EventIn | Mapping[str, Any]]) -> IngestResponse:
        return await self._send(_record(events))

    async def search(self, query: str, project_id: str, **options: Any) -> SearchResponse:
        return await self._send(_search(query, project_id, options))

    async def search_all(self, query: str, project_id: str, **options: Any) -> AsyncIterator[SearchHit]:
        cursor = options.pop("cursor", None)
        while True:
            page = await self.search(query, project_id, cursor=cursor, **options)
            for hit in page.results:
                yield hit
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def search_sessions(self, query: str, project_id: str, **options: Any) -> AsyncIterator[SessionHit]:
        cursor = options.pop("cursor", None)
        options.pop("group", None)
        while True:
            page = await self.search(query, project_id, cursor=cursor, group="session", **options)
            for session in page.sessions or []:
                yield session
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def session(self, project_id: str, session_id: str) -> SessionPublic:
        return await self._send(_session(project_id, session_id))

    async def put_summary(self, project_id: str, session_id: str, summary: str) -> SessionPublic:
        return await self._send(_put_summary(project_id, session_id, summary))

    async def stats(self, project_id: str) -> ProjectStats:
        return await self._send(_stats(project_id))

    async def sessions(self, project_id: str, limit: int = 20, cursor: str | None = None) -> SessionList:
        return await self._send(_sessions(project_id, limit, cursor))

    async def all_sessions(self, project_id: str, limit: int = 100) -> AsyncIterator[SessionBrief]:
        cursor = None
        while True:
            page = await self.sessions(project_id, limit, cursor)
            for session in page.sessions:
                yield session
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def projects(self) -> ProjectList:
        return await self._send(_projects())

    async def event(self, project_id: str, event_id: str) -> EventFull:
        return await self._send(_event(project_id, event_id))

    async def timeline(
        self,
        project_id: str,
        session_id: str,
        around: str | None = None,
        *,
        before: int = 5,
        after: int = 5,
        max_chars: int = 1000,
    ) -> Timeline:
        return await self._send(_timeline(project_id, session_id, around, before, after, max_chars))

    async def forget_session(self, project_id: str, session_id: str) -> Erased:
        return await self._send(_forget_session(project_id, session_id))

    async def forget_project(self, project_id: str) -> Erased:
        return await self._send(_forget_project(project_id))

    async def healthy(self) -> bool:
        try:
            return await self._send(_health())
        except ServerError:
            return False
