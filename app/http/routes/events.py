"""POST /v1/events, the write path's front door, and GET /v1/events/{id}: one event in full."""

from __future__ import annotations

from fastapi import APIRouter

from ctxsearch.http.deps import MetricsDep, ProjectId, ServiceDep
from ctxsearch.http.errors import ErrorOut
from ctxsearch.schemas import EventBatch, EventFull, IngestResponse

router = APIRouter(prefix="/v1", tags=["events"])


@router.post("/events", status_code=202, response_model=IngestResponse)
def post_events(batch: EventBatch, service: ServiceDep, metrics: MetricsDep) -> IngestResponse:
    """Store a batch of session events. 202 once the batch is committed; retries are idempotent per (project_id, id)."""
    r = service.ingest(batch.events)
    metrics.ingested.inc(r.accepted)
    metrics.duplicates.inc(r.duplicates)
    return r


@router.get(
    "/events/{event_id:path}",
    response_model=EventFull,
    responses={404: {"model": ErrorOut, "description": "No such event in the project."}},
)
def get_event(event_id: str, project_id: ProjectId, service: ServiceDep) -> EventFull:
    """One event in full: its whole text and its payload, as stored (credentials redacted).
    A session summary's hit id (`summary:<session>`) reads as that summary."""
    return service.event(project_id, event_id)
