"""Per-project counts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ctxsearch.http.deps import PathId, ServiceDep
from ctxsearch.http.errors import ErrorOut
from ctxsearch.schemas import Erased, ProjectStats, SessionList

router = APIRouter(prefix="/v1/projects", tags=["projects"])


@router.get("/{project_id}/stats", response_model=ProjectStats)
def project_stats(project_id: PathId, service: ServiceDep) -> ProjectStats:
    """Counts of events, sessions and documents; `pending` is 0 once everything is indexed."""
    return service.stats(project_id)


@router.get("/{project_id}/sessions", response_model=SessionList)
def project_sessions(
    project_id: PathId, service: ServiceDep, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> SessionList:
    """The project's sessions, most recent first, each with its summary."""
    return service.sessions(project_id, limit)


@router.delete(
    "/{project_id}",
    response_model=Erased,
    responses={404: {"model": ErrorOut, "description": "Nothing is stored for the project."}},
)
def delete_project(project_id: PathId, service: ServiceDep) -> Erased:
    """Erase a project: every session, event, document, vector, summary and text statistic."""
    return service.forget_project(project_id)
