"""Search within one project: POST /v1/search, and GET for editor plugins."""

from __future__ import annotations

from typing import Any, get_args, get_origin

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from starlette.datastructures import QueryParams

from ctxsearch.http.deps import MetricsDep, ServiceDep
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


# GET /v1/search takes every SearchRequest field as a query parameter, under the field's
# name except `q` for the query; list fields repeat (`types=error&types=decision`) and a
# nested model's fields are dotted (`weights.vector=1&weights.text=1.5`).
_PUBLIC_NAMES = {"query": "q"}


def _nested(field: FieldInfo) -> type[BaseModel] | None:
    """The model of a field that holds one (SearchRequest.weights), else None."""
    for arg in (field.annotation, *get_args(field.annotation)):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _is_list(field: FieldInfo) -> bool:
    return any(get_origin(arg) is list for arg in (field.annotation, *get_args(field.annotation)))


def _inline(schema: Any, defs: dict[str, Any]) -> Any:
    # Parameters carry their schema whole: no $ref into the body models' $defs.
    if isinstance(schema, list):
        return [_inline(s, defs) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[-1]]
        return _inline({**target, **{k: v for k, v in schema.items() if k != "$ref"}}, defs)
    return {k: _inline(v, defs) for k, v in schema.items()}


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    # An absent parameter is the null of the body; a query string has no null to send.
    schema = {k: v for k, v in schema.items() if k != "title" and not (k == "default" and v is None)}
    branches = [b for b in schema.get("anyOf", []) if b.get("type") != "null"]
    if "anyOf" in schema and len(branches) == 1:
        del schema["anyOf"]
        schema = {**branches[0], **schema}
    return schema


def _parameter(name: str, schema: dict[str, Any], required: bool) -> dict[str, Any]:
    schema = _not_null(schema)
    description = schema.pop("description", "")
    if schema.get("type") == "array":
        description += f" Repeat it for more than one value: `{name}=…&{name}=…`."
    return {"name": name, "in": "query", "required": required, "description": description.strip(), "schema": schema}


def query_parameters() -> list[dict[str, Any]]:
    """GET /v1/search's parameters in OpenAPI, from SearchRequest's JSON schema."""
    schema = SearchRequest.model_json_schema()
    defs = schema.get("$defs", {})
    required = set(schema.get("required", []))
    out = []
    for name, field in SearchRequest.model_fields.items():
        prop = _not_null(_inline(schema["properties"][name], defs))
        if _nested(field) is not None:
            # No default of their own: with neither given, the server's settings apply.
            out += [
                _parameter(
                    f"{_PUBLIC_NAMES.get(name, name)}.{sub}",
                    {
                        **{k: v for k, v in sub_schema.items() if k != "default"},
                        "description": f"{sub_schema.get('description', '')} {prop.get('description', '')}",
                    },
                    False,
                )
                for sub, sub_schema in prop["properties"].items()
            ]
        else:
            out.append(_parameter(_PUBLIC_NAMES.get(name, name), prop, name in required))
    return out


def request_from_query(params: QueryParams) -> SearchRequest:
    """Validate a query string as a SearchRequest; errors name the parameter the caller sent."""
    data: dict[str, Any] = {}
    for name, field in SearchRequest.model_fields.items():
        public = _PUBLIC_NAMES.get(name, name)
        nested = _nested(field)
        if nested is not None:
            sub = {k: params[f"{public}.{k}"] for k in nested.model_fields if f"{public}.{k}" in params}
            if sub:
                data[name] = sub
        elif _is_list(field):
            if values := params.getlist(public):
                data[name] = values
        elif public in params:
            data[name] = params[public]
    try:
        # Not strict: in a query string every value is text ("10", "true").
        return SearchRequest.model_validate(data, strict=False)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": _query_loc(e["loc"])} for e in exc.errors()]) from None


@router.get("/search", response_model=SearchResponse, openapi_extra={"parameters": query_parameters()})
def get_search(request: Request, service: ServiceDep, metrics: MetricsDep) -> SearchResponse:
    """`POST /v1/search` as a GET, for editor plugins: `?q=...&project_id=...` plus every other field
    of the body as a parameter; list fields repeat (`types=error&types=decision`), and `weights` is
    `weights.vector=1&weights.text=1.5`."""
    req = request_from_query(request.query_params)
    resp = service.search(req)
    metrics.search.labels(req.mode).observe(resp.took_ms / 1000)
    return resp
