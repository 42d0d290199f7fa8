"""POST /v1/events: the write path's front door."""

from __future__ import annotations

from fastapi import APIRouter

from ctxsearch.http.deps import MetricsDep, ServiceDep
from ctxsearch.schemas import EventBatch, IngestResponse

router = APIRouter(prefix="/v1", tags=["events"])


@router.post("/events", status_code=202, response_model=IngestResponse)
def post_events(batch: EventBatch, service: ServiceDep, metrics: MetricsDep) -> IngestResponse:
    """Store a batch of session events. 202 once the batch is committed; retries are idempotent per (project_id, id)."""
    r = service.ingest(batch.events)
    metrics.ingested.inc(r.accepted)
    metrics.duplicates.inc(r.duplicates)
    return r
