"""Probes and metrics: /healthz, /readyz, /metrics (open, for orchestrators and scrapers)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ctxsearch.http.deps import MetricsDep, ServiceDep

router = APIRouter(tags=["ops"])


@router.get("/healthz", responses={503: {"description": "The process cannot recover by itself; restart it."}})
def healthz(service: ServiceDep):
    """Liveness: 200 while the process can serve or heal itself (a database that is down but
    coming back is not a liveness failure: see /readyz). 503 when it cannot: its embedded
    PostgreSQL has failed to start again for a minute, or a worker thread died. The server
    starts answering only after the database was reached and migrations applied."""
    reason = service.unrecoverable()
    if reason is None:
        return {"status": "ok"}
    return JSONResponse(status_code=503, content={"status": "failing", "error": reason})


@router.get("/readyz", responses={503: {"description": "Not ready; `error` says why."}})
def readyz(service: ServiceDep):
    """Readiness: 200 when the database answers and every migration is applied, else 503."""
    reason = service.readiness()
    if reason is None:
        return {"status": "ready"}
    return JSONResponse(
        status_code=503, content={"status": "unavailable", "error": reason}, headers={"Retry-After": "5"}
    )


@router.get("/metrics", response_class=Response)
def prometheus_metrics(metrics: MetricsDep) -> Response:
    """Prometheus metrics: request and search latency, ingest counts, queue depth, freshness lag."""
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
