"""A session's summary, metrics and key events, and the agent's own summary."""

from __future__ import annotations

from fastapi import APIRouter

from ctxsearch.http.deps import PathId, ProjectId, ServiceDep
from ctxsearch.http.errors import ErrorOut
from ctxsearch.schemas import Erased, SessionPublic, SummaryIn

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])
_NOT_FOUND = {404: {"model": ErrorOut, "description": "No such session in the project."}}


@router.get("/{session_id}", response_model=SessionPublic, responses=_NOT_FOUND)
def get_session(session_id: PathId, project_id: ProjectId, service: ServiceDep) -> SessionPublic:
    """A session's summary, metrics and key events."""
    return service.session(project_id, session_id)


@router.put("/{session_id}/summary", response_model=SessionPublic)
def put_summary(session_id: PathId, body: SummaryIn, service: ServiceDep) -> SessionPublic:
    """Store the agent's own summary of a session; it takes precedence over the extracted one."""
    service.put_summary(body.project_id, session_id, body.summary)
    return service.session(body.project_id, session_id)


@router.delete("/{session_id}", response_model=Erased, responses=_NOT_FOUND)
def delete_session(session_id: PathId, project_id: ProjectId, service: ServiceDep) -> Erased:
    """Erase a session: its events, documents, vectors, summary and their share of the text
    statistics, in both tiers. Afterwards nothing of it is searchable, counted or paged."""
    return service.forget_session(project_id, session_id)
