"""A session's summary, metrics and key events, and the agent's own summary."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ctxsearch.http.deps import PathId, ProjectId, ServiceDep
from ctxsearch.http.errors import ErrorOut
from ctxsearch.schemas import MAX_CONTENT_CHARS, MAX_ID_CHARS, Erased, SessionPublic, SummaryIn, Timeline

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])
_NOT_FOUND = {404: {"model": ErrorOut, "description": "No such session in the project."}}


@router.get("/{session_id}", response_model=SessionPublic, responses=_NOT_FOUND)
def get_session(session_id: PathId, project_id: ProjectId, service: ServiceDep) -> SessionPublic:
    """A session's summary, metrics and key events."""
    return service.session(project_id, session_id)


@router.get("/{session_id}/timeline", response_model=Timeline, responses=_NOT_FOUND)
def get_timeline(
    session_id: PathId,
    project_id: ProjectId,
    service: ServiceDep,
    around: Annotated[
        str | None, Query(min_length=1, max_length=MAX_ID_CHARS, description="Centre on this event (its id).")
    ] = None,
    before: Annotated[int, Query(ge=0, le=500, description="Events before `around`.")] = 5,
    after: Annotated[int, Query(ge=0, le=500, description="Events after `around` (or from the start).")] = 5,
    max_chars: Annotated[
        int, Query(ge=1, le=MAX_CONTENT_CHARS, description="Cut each event's content at this many characters.")
    ] = 1000,
) -> Timeline:
    """The session's events in order around one event (`around`), or from its first event.
    `more_before` / `more_after` say whether to ask again around the first or last one."""
    return service.timeline(project_id, session_id, around, before, after, max_chars)


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
