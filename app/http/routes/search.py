"""Search within one project: POST /v1/search, and GET for editor plugins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from ctxsearch.http.deps import MetricsDep, ProjectId, ServiceDep
from ctxsearch.schemas import SearchRequest, SearchResponse

router = APIRouter(prefix="/v1", tags=["search"])


def _query_loc(loc: tuple) -> tuple:
    # GET /v1/search names the query `q`; errors name the parameter the caller sent.
    loc = tuple(loc)
    if not loc:  # the one check across fields: the time window
        return ("query", "since")
    return ("query", "q", *loc[1:]) if loc[:1] == ("query",) else ("query", *loc)


@router.post("/search", response_model=SearchResponse, response_model_exclude_none=False)
def post_search(req: SearchRequest, service: ServiceDep, metrics: MetricsDep) -> SearchResponse:
    """Hybrid (vector + full text) search within one project."""
    resp = service.search(req)
    metrics.search.labels(req.mode).observe(resp.took_ms / 1000)
    return resp

@router.get("/search", response_model=SearchResponse)
def get_search(
    service: ServiceDep,
    metrics: MetricsDep,
    q: Annotated[str, Query(description="The query.")],
    project_id: ProjectId,
    session_id: str | None = None,
    types: Annotated[list[str] | None, Query(description="Repeatable: `types=error&types=decision`.")] = None,
    files: Annotated[list[str] | None, Query(description="Repeatable.")] = None,
    kinds: Annotated[list[str] | None, Query(description="Repeatable: `summary`, `event`.")] = None,
    since: str | None = None,
    until: str | None = None,
    limit: int = 10,
    mode: str = "hybrid",
    max_tokens: int | None = None,
    cursor: str | None = None,
    explain: bool = False,
) -> SearchResponse:
    """`POST /v1/search` as a GET, for editor plugins: `?q=...&project_id=...` plus the same filters."""
    fields = {"query": q, "project_id": project_id, "session_id": session_id, "types": types, "files": files,
              "kinds": kinds, "since": since, "until": until, "limit": limit, "mode": mode,
              "max_tokens": max_tokens, "cursor": cursor, "explain": explain}
    try:
        req = SearchRequest.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": _query_loc(e["loc"])} for e in exc.errors()]) from None
    resp = service.search(req)
    metrics.search.labels(req.mode).observe(resp.took_ms / 1000)
    return resp
