"""Probes and metrics: /healthz, /readyz, /metrics (open, for orchestrators and scrapers)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ctxsearch.http.deps import MetricsDep, ServiceDep

router = APIRouter(tags=["ops"])


@router.get("/healthz")
def healthz() -> dict:
    """Liveness: the process is up. The server starts answering only after the database
    was reached and migrations applied; see /readyz for the database's state now."""
    return {"status": "ok"}


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
