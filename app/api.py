"""The HTTP API (`/v1/...`, OpenAPI at `/docs`)."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Annotated

import psycopg
from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from app.config import Settings, get_settings
from app.db import DatabaseUnavailable, MissingExtension
from app.schemas import (
    EventBatch, IngestResponse, ProjectStats, SearchRequest, SearchResponse, SessionPublic, SummaryIn,
    MAX_ID_CHARS,
)
from app.mcp_server import build_server
from app.paging import InvalidCursor
from app.service import NotFound, Service

log = logging.getLogger(__name__)

ProjectId = Annotated[str, Query(min_length=1, max_length=MAX_ID_CHARS)]
PathId = Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)]


def _field(loc: tuple) -> str:
    # The first element says where the value was (body, query, path, header).
    parts = [str(p) for p in (loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc)]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or "body"


def validation_message(errors: list[dict]) -> str:
    msgs = []
    for e in errors[:5]:
        msg = e.get("msg", "invalid").removeprefix("Value error, ")
        msgs.append(f"{_field(tuple(e.get('loc', ())))}: {msg}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(msgs) + more


def _query_loc(loc: tuple) -> tuple:
    # GET /v1/search names the query `q`; errors name the parameter the caller sent.
    loc = tuple(loc)
    if not loc:  # the one check across fields: the time window
        return ("query", "since")
    return ("query", "q", *loc[1:]) if loc[:1] == ("query",) else ("query", *loc)


def create_app(settings: Settings | None = None, service: Service | None = None) -> FastAPI:
    """Build the app. With a service given (tests, embedding), the caller owns its lifecycle."""
    settings = settings or get_settings()

    # MCP over streamable HTTP at exactly /mcp: the SDK's route, served by this app, with
    # its session manager running inside this app's lifespan.
    mcp = build_server(lambda: app.state.service)
    mcp_routes = mcp.streamable_http_app(streamable_http_path="/mcp", host=settings.host).routes

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        owned = service is None
        svc = service or await run_in_threadpool(Service.start, settings)
        app.state.service = svc
        try:
            async with mcp.session_manager.run():
                yield
        finally:
            if owned:
                await run_in_threadpool(svc.close)

    app = FastAPI(
        title="ctxsearch",
        version="0.1.0",
        summary="Context search for coding agents: session events in, hybrid search out.",
        lifespan=lifespan,
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        clean = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in errors]
        return JSONResponse(status_code=422, content={"error": validation_message(errors), "detail": clean})

    @app.exception_handler(DatabaseUnavailable)
    async def _db_down(request: Request, exc: DatabaseUnavailable):
        return JSONResponse(status_code=503, content={"error": str(exc)}, headers={"Retry-After": "5"})

    @app.exception_handler(psycopg.OperationalError)
    async def _db_error(request: Request, exc: psycopg.OperationalError):
        return JSONResponse(status_code=503, content={"error": "database unavailable"}, headers={"Retry-After": "5"})

    @app.exception_handler(MissingExtension)
    async def _no_vector(request: Request, exc: MissingExtension):
        return JSONResponse(status_code=503, content={"error": str(exc)})

    @app.exception_handler(InvalidCursor)
    async def _bad_cursor(request: Request, exc: InvalidCursor):
        return JSONResponse(status_code=400, content={"error": str(exc)})

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound):
        return JSONResponse(status_code=404, content={"error": str(exc)})

    def svc(request: Request) -> Service:
        return request.app.state.service

    app.router.routes.extend(mcp_routes)

    @app.get("/healthz", tags=["ops"])
    def healthz(request: Request):
        """200 once the database is reachable and migrations are applied."""
        if svc(request).ready():
            return {"status": "ok"}
        return JSONResponse(status_code=503, content={"status": "unavailable", "error": "database unavailable"})

    @app.post("/v1/events", status_code=202, response_model=IngestResponse, tags=["events"])
    def post_events(batch: EventBatch, request: Request) -> IngestResponse:
        """Store a batch of session events. 202 once the batch is committed; retries are idempotent per (project_id, id)."""
        return svc(request).ingest(batch.events)

    @app.post("/v1/search", response_model=SearchResponse, response_model_exclude_none=False, tags=["search"])
    def post_search(req: SearchRequest, request: Request) -> SearchResponse:
        """Hybrid (vector + full text) search within one project."""
        return svc(request).search(req)

    @app.get("/v1/search", response_model=SearchResponse, tags=["search"])
    def get_search(
        request: Request,
        q: Annotated[str, Query(description="The query.")],
        project_id: ProjectId,
        session_id: str | None = None,
        types: Annotated[list[str] | None, Query(description="Repeatable: `types=error&types=decision`.")] = None,
        files: Annotated[list[str] | None, Query(description="Repeatable.")] = None,
        kinds: Annotated[list[str] | None, Query(description="Repeatable: `summary`, `event`.")] = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = 10,
        mode: str = "hybrid",
        max_tokens: int | None = None,
        cursor: str | None = None,
        explain: bool = False,
    ) -> SearchResponse:
        """`POST /v1/search` as a GET, for editor plugins: `?q=...&project_id=...` plus the same filters."""
        fields = {"query": q, "project_id": project_id, "session_id": session_id, "types": types, "files": files,
                  "kinds": kinds, "since": since, "until": until, "limit": limit, "mode": mode,
                  "max_tokens": max_tokens, "cursor": cursor, "explain": explain}
        try:
            req = SearchRequest.model_validate({k: v for k, v in fields.items() if v is not None})
        except ValidationError as exc:
            raise RequestValidationError([{**e, "loc": _query_loc(e["loc"])} for e in exc.errors()]) from None
        return svc(request).search(req)

    @app.get("/v1/sessions/{session_id}", response_model=SessionPublic, tags=["sessions"])
    def get_session(session_id: PathId, project_id: ProjectId, request: Request) -> SessionPublic:
        """A session's summary, metrics and key events."""
        return svc(request).session(project_id, session_id)

    @app.put("/v1/sessions/{session_id}/summary", response_model=SessionPublic, tags=["sessions"])
    def put_summary(session_id: PathId, body: SummaryIn, request: Request) -> SessionPublic:
        """Store the agent's own summary of a session; it takes precedence over the extracted one."""
        s = svc(request)
        s.put_summary(body.project_id, session_id, body.summary)
        return s.session(body.project_id, session_id)

    @app.get("/v1/projects/{project_id}/stats", response_model=ProjectStats, tags=["projects"])
    def project_stats(project_id: PathId, request: Request) -> ProjectStats:
        """Counts of events, sessions and documents; `pending` is 0 once everything is indexed."""
        return svc(request).stats(project_id)

    return app
