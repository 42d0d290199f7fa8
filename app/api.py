"""The HTTP API (`/v1/...`, OpenAPI at `/docs`)."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Annotated

import psycopg
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from app.config import Settings, get_settings
from app.db import DatabaseUnavailable, MissingExtension
from app.observability import Metrics, RequestMiddleware
from app.schemas import (
    EventBatch, IngestResponse, ProjectStats, SearchRequest, SearchResponse, SessionPublic, SummaryIn,
    ID_PATTERN, MAX_ID_CHARS,
)
from app.mcp_server import build_server
from app.paging import InvalidCursor
from app.security import Forbidden, SecurityMiddleware, body_project_ids, check_projects, current_principal
from app.service import NotFound, Service

log = logging.getLogger(__name__)

ProjectId = Annotated[str, Query(min_length=1, max_length=MAX_ID_CHARS, pattern=ID_PATTERN)]
PathId = Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS, pattern=ID_PATTERN)]


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
        if e.get("type") == "string_pattern_mismatch" and (e.get("ctx") or {}).get("pattern") == ID_PATTERN:
            msg = "must not contain control characters"
        msgs.append(f"{_field(tuple(e.get('loc', ())))}: {msg}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(msgs) + more


def _query_loc(loc: tuple) -> tuple:
    # GET /v1/search names the query `q`; errors name the parameter the caller sent.
    loc = tuple(loc)
    if not loc:  # the one check across fields: the time window
        return ("query", "since")
    return ("query", "q", *loc[1:]) if loc[:1] == ("query",) else ("query", *loc)


# Too much data (a batch, an event's content or payload, a summary) is answered 413 like an
# oversized body; other bounds (query length, ids, limit) are plain 422 validation errors.
_SIZE_ERRORS = {"string_too_long", "too_long", "too_large"}
_SIZE_FIELDS = {"events", "content", "payload", "summary"}


def validation_status(errors: list[dict]) -> int:
    def is_size(e: dict) -> bool:
        loc = e.get("loc", ())
        return e.get("type") in _SIZE_ERRORS and bool(loc) and loc[-1] in _SIZE_FIELDS

    return 413 if errors and all(is_size(e) for e in errors) else 422


class ErrorOut(BaseModel):
    error: str
    detail: list[dict] | None = None


_ERRORS = {
    400: "The body could not be read as JSON.",
    401: "Missing or unknown API key (only when CTXSEARCH_API_KEYS is set).",
    403: "The API key may not use this project.",
    413: "Too large: the body, the batch, or a field; the message names the limit.",
    422: "Invalid input; the message names the field.",
    429: "Rate limit exceeded; retry after Retry-After seconds.",
    503: "The database is unavailable; retry later.",
}
ERROR_RESPONSES: dict[int | str, dict] = {code: {"model": ErrorOut, "description": d} for code, d in _ERRORS.items()}


async def authorize(request: Request) -> None:
    """Every project a request names (path, query string, body) must be allowed for its key."""
    principal = current_principal.get()
    if principal is None or principal.projects is None:
        return
    ids = set(request.query_params.getlist("project_id"))
    if "project_id" in request.path_params:
        ids.add(request.path_params["project_id"])
    if request.method in ("POST", "PUT", "PATCH"):
        ids |= body_project_ids(await request.body())
    check_projects(ids)


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
        if not settings.api_keys:
            log.warning("no API keys configured (CTXSEARCH_API_KEYS): every caller may use every project")
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
    if service is not None:
        app.state.service = service
    metrics = Metrics(lambda: app.state.service.queue_state() if hasattr(app.state, "service") else None)
    app.state.metrics = metrics
    app.add_middleware(SecurityMiddleware, settings=settings)
    app.add_middleware(RequestMiddleware, metrics=metrics)  # added last: runs first

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        clean = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in errors]
        return JSONResponse(status_code=validation_status(errors),
                            content={"error": validation_message(errors), "detail": clean})

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException):
        message = str(exc.detail)
        if exc.status_code == 400 and message == "There was an error parsing the body":
            message = "body: not valid JSON (or not UTF-8)"
        return JSONResponse(status_code=exc.status_code, content={"error": message}, headers=exc.headers)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden):
        return JSONResponse(status_code=403, content={"error": str(exc)})

    @app.exception_handler(DatabaseUnavailable)
    async def _db_down(request: Request, exc: DatabaseUnavailable):
        return JSONResponse(status_code=503, content={"error": str(exc)}, headers={"Retry-After": "5"})

    @app.exception_handler(psycopg.OperationalError)
    async def _db_error(request: Request, exc: psycopg.OperationalError):
        return JSONResponse(status_code=503, content={"error": "database unavailable"}, headers={"Retry-After": "5"})

    @app.exception_handler(psycopg.DataError)
    async def _bad_value(request: Request, exc: psycopg.DataError):
        # A value PostgreSQL cannot store that validation let through: still the caller's input.
        detail = (str(exc).strip().splitlines() or ["invalid value"])[0]
        return JSONResponse(status_code=422, content={"error": f"invalid value: {detail}"})

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
    def healthz() -> dict:
        """Liveness: the process is up. The server starts answering only after the database
        was reached and migrations applied; see /readyz for the database's state now."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], responses={503: {"description": "Not ready; `error` says why."}})
    def readyz(request: Request):
        """Readiness: 200 when the database answers and every migration is applied, else 503."""
        reason = svc(request).readiness()
        if reason is None:
            return {"status": "ready"}
        return JSONResponse(status_code=503, content={"status": "unavailable", "error": reason},
                            headers={"Retry-After": "5"})

    @app.get("/metrics", tags=["ops"], response_class=Response)
    def prometheus_metrics() -> Response:
        """Prometheus metrics: request and search latency, ingest counts, queue depth, freshness lag."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(authorize)], responses=ERROR_RESPONSES)

    @v1.post("/events", status_code=202, response_model=IngestResponse, tags=["events"])
    def post_events(batch: EventBatch, request: Request) -> IngestResponse:
        """Store a batch of session events. 202 once the batch is committed; retries are idempotent per (project_id, id)."""
        r = svc(request).ingest(batch.events)
        metrics.ingested.inc(r.accepted)
        metrics.duplicates.inc(r.duplicates)
        return r

    @v1.post("/search", response_model=SearchResponse, response_model_exclude_none=False, tags=["search"])
    def post_search(req: SearchRequest, request: Request) -> SearchResponse:
        """Hybrid (vector + full text) search within one project."""
        resp = svc(request).search(req)
        metrics.search.labels(req.mode).observe(resp.took_ms / 1000)
        return resp

    @v1.get("/search", response_model=SearchResponse, tags=["search"])
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
        resp = svc(request).search(req)
        metrics.search.labels(req.mode).observe(resp.took_ms / 1000)
        return resp

    @v1.get("/sessions/{session_id}", response_model=SessionPublic, tags=["sessions"],
            responses={404: {"model": ErrorOut, "description": "No such session in the project."}})
    def get_session(session_id: PathId, project_id: ProjectId, request: Request) -> SessionPublic:
        """A session's summary, metrics and key events."""
        return svc(request).session(project_id, session_id)

    @v1.put("/sessions/{session_id}/summary", response_model=SessionPublic, tags=["sessions"])
    def put_summary(session_id: PathId, body: SummaryIn, request: Request) -> SessionPublic:
        """Store the agent's own summary of a session; it takes precedence over the extracted one."""
        s = svc(request)
        s.put_summary(body.project_id, session_id, body.summary)
        return s.session(body.project_id, session_id)

    @v1.get("/projects/{project_id}/stats", response_model=ProjectStats, tags=["projects"])
    def project_stats(project_id: PathId, request: Request) -> ProjectStats:
        """Counts of events, sessions and documents; `pending` is 0 once everything is indexed."""
        return svc(request).stats(project_id)

    app.include_router(v1)
    return app
