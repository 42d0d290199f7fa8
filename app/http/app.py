"""The HTTP API (`/v1/...`, OpenAPI at `/docs`) and MCP over streamable HTTP at `/mcp`."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from starlette.concurrency import run_in_threadpool

from ctxsearch.config import Settings, get_settings
from ctxsearch.http.deps import authorize
from ctxsearch.http.errors import ERROR_RESPONSES, install_error_handlers
from ctxsearch.http.observability import Metrics, RequestMiddleware
from ctxsearch.http.routes import events, health, projects, search, sessions
from ctxsearch.http.security import SecurityMiddleware, SheddingMiddleware
from ctxsearch.mcp.server import build_server
from ctxsearch.service.facade import Service
from ctxsearch.web import routes as web

log = logging.getLogger(__name__)


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
        version="0.2.0",
        summary="Context search for coding agents: session events in, hybrid search out.",
        lifespan=lifespan,
    )
    if service is not None:
        app.state.service = service
    metrics = Metrics(
        lambda: app.state.service.queue_state() if hasattr(app.state, "service") else None,
        lambda: dict(app.state.service.redactions) if hasattr(app.state, "service") else {},
        lambda: dict(app.state.service.admission.shed) if hasattr(app.state, "service") else {},
    )
    app.state.metrics = metrics
    app.add_middleware(
        SheddingMiddleware, admission=lambda: getattr(getattr(app.state, "service", None), "admission", None)
    )
    app.add_middleware(SecurityMiddleware, settings=settings)
    app.add_middleware(RequestMiddleware, metrics=metrics)  # added last: runs first
    install_error_handlers(app)

    app.router.routes.extend(mcp_routes)
    app.include_router(health.router)
    app.include_router(web.router)
    # Each resource router carries its whole prefix (/v1/...): an included router's routes
    # keep the path they were declared with, and metrics and logs label by that template.
    for module in (events, search, sessions, projects):
        app.include_router(module.router, dependencies=[Depends(authorize)], responses=ERROR_RESPONSES)
    return app
