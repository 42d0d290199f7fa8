"""The projects: the caller's list, each one's sessions and counts, and erasure."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ctxsearch.auth import current_principal
from ctxsearch.http.deps import Cursor, PathId, ServiceDep
from ctxsearch.http.errors import ErrorOut
from ctxsearch.schemas import Erased, ProjectList, ProjectStats, SessionList

router = APIRouter(prefix="/v1/projects", tags=["projects"])


@router.get("", response_model=ProjectList)
def list_projects(service: ServiceDep) -> ProjectList:
    """The projects this key may read (all of them without keys), most recently active first,
    with their session and event counts and first and last activity."""
    return service.projects(current_principal.get())


@router.get("/{project_id}/stats", response_model=ProjectStats)
def project_stats(project_id: PathId, service: ServiceDep) -> ProjectStats:
    """Counts of events, sessions and documents; `pending` is 0 once everything is indexed."""
    return service.stats(project_id)


@router.get("/{project_id}/sessions", response_model=SessionList)
def project_sessions(
    project_id: PathId,
    service: ServiceDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Cursor = None,
) -> SessionList:
    """The project's sessions, most recent first (by last event): title, summary, time span,
    event and error counts. `next_cursor` continues with older ones."""
    return service.sessions(project_id, limit, cursor=cursor)


@router.delete(
    "/{project_id}",
    response_model=Erased,
    responses={404: {"model": ErrorOut, "description": "Nothing is stored for the project."}},
)
def delete_project(project_id: PathId, service: ServiceDep) -> Erased:
    """Erase a project: every session, event, document, vector, summary and text statistic."""
    return service.forget_project(project_id)
