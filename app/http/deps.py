"""Dependencies of the routes, as aliases: `ServiceDep`, `MetricsDep`, the id parameters,
and `authorize`, which checks every project a request names against its key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request

from ctxsearch.auth import current_principal
from ctxsearch.http.observability import Metrics
from ctxsearch.http.security import body_project_ids, check_projects
from ctxsearch.schemas import ID_PATTERN, MAX_CURSOR_CHARS, MAX_ID_CHARS
from ctxsearch.service.facade import Service

ProjectId = Annotated[str, Query(min_length=1, max_length=MAX_ID_CHARS, pattern=ID_PATTERN)]
PathId = Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS, pattern=ID_PATTERN)]
Cursor = Annotated[
    str | None,
    Query(min_length=1, max_length=MAX_CURSOR_CHARS, description="`next_cursor` of the previous page."),
]


def get_service(request: Request) -> Service:
    return request.app.state.service


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


ServiceDep = Annotated[Service, Depends(get_service)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


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
