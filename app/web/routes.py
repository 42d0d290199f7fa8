"""The web page's routes.

A page URL (`/`, `/search`, `/projects/{p}`, `/projects/{p}/sessions/{s}`,
`/projects/{p}/events/{id}`, `/status`) answers the same layout; its script fetches the
view's HTML from the same path under `/ui` (with the tab's API key, when keys are
configured) and puts it in `<main>`. `/ui` is protected like `/v1`: the same keys, 401s
and rate limits, and every project a view names is checked against the key.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import psycopg
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from pydantic import ValidationError

from ctxsearch.auth import Forbidden, check_project, current_principal
from ctxsearch.schemas import EventType, SearchRequest
from ctxsearch.service.facade import NotFound, Service
from ctxsearch.service.paging import InvalidCursor
from ctxsearch.store.activity import session_activity
from ctxsearch.store.db import DatabaseUnavailable
from ctxsearch.store.search import SUMMARY_PREFIX
from ctxsearch.store.tiers import tier_state
from ctxsearch.validation import validation_message
from ctxsearch.web import render

router = APIRouter(include_in_schema=False)

# No inline script or style, nothing from elsewhere: the page runs its own files only.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
SESSIONS_PER_PAGE = 20
HITS_PER_PAGE = 10
TIMELINE_SPAN = 250  # events each side of the centre of a session's timeline
TIMELINE_CHARS = 1000  # each timeline event's text is cut here; its own page has all of it

_env = Environment(
    loader=PackageLoader("ctxsearch.web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(
    when=render.when,
    duration=render.duration,
    highlight=render.highlight,
    pretty_json=render.pretty_json,
    percent=render.percent,
    number=render.number,
)
_env.globals.update(
    project_url=render.project_url,
    session_url=render.session_url,
    event_url=render.event_url,
    search_url=render.search_url,
    activity_chart=render.activity_chart,
    event_types=[t.value for t in EventType],
    summary_prefix=SUMMARY_PREFIX,
)


def _static(name: str) -> bytes:
    return (resources.files("ctxsearch.web") / "static" / name).read_bytes()


STATIC = {
    "app.js": ("text/javascript; charset=utf-8", _static("app.js")),
    "app.css": ("text/css; charset=utf-8", _static("app.css")),
    "favicon.svg": ("image/svg+xml", _static("favicon.svg")),
}
_STATIC_VERSION = hashlib.sha256(b"".join(body for _, body in STATIC.values())).hexdigest()[:12]


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers={**HEADERS, "Cache-Control": "no-store"})


def _view(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return _html(_env.get_template(name).render(**context), status)


def _error(status: int, title: str, message: str) -> HTMLResponse:
    return _view("error.html", status, title=title, message=message, code=status)


def view(fn: Callable[..., HTMLResponse]) -> Callable[..., HTMLResponse]:
    """A view's errors as HTML views with the API's status codes, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs) -> HTMLResponse:
        try:
            return fn(*args, **kwargs)
        except Forbidden as exc:
            return _error(403, "Not allowed", str(exc))
        except NotFound as exc:
            return _error(404, "Not found", str(exc))
        except InvalidCursor as exc:
            return _error(400, "Cannot continue this list", f"{exc}; start again from its first page.")
        except (DatabaseUnavailable, psycopg.OperationalError):
            return _error(503, "Database unavailable", "The database is not answering; try again in a few seconds.")

    return wrapper


def _service(request: Request) -> Service:
    return request.app.state.service


# --- The layout: one page for every view; the script loads the view into it. -------------


def _shell() -> HTMLResponse:
    return _view("shell.html", version=_STATIC_VERSION)


for _path in (
    "/",
    "/search",
    "/status",
    "/projects/{project_id}",
    "/projects/{project_id}/sessions/{session_id:path}",
    "/projects/{project_id}/events/{event_id:path}",
):
    router.add_api_route(_path, _shell, methods=["GET"], response_class=HTMLResponse, name=f"page {_path}")


@router.get("/static/{name}")
def static_file(name: str) -> Response:
    if name not in STATIC:
        return Response("not found", status_code=404, media_type="text/plain")
    media, body = STATIC[name]
    return Response(
        body, media_type=media, headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}
    )


# --- The views, under /ui. ----------------------------------------------------------------


@router.get("/ui/", response_class=HTMLResponse)
@view
def projects_view(request: Request) -> HTMLResponse:
    listed = _service(request).projects(current_principal.get()).projects
    return _view("projects.html", projects=listed)


@router.get("/ui/projects/{project_id}", response_class=HTMLResponse)
@view
def project_view(request: Request, project_id: str, cursor: str | None = None) -> HTMLResponse:
    check_project(project_id)
    service = _service(request)
    page = service.sessions(project_id, SESSIONS_PER_PAGE, cursor=cursor or None)
    if not page.sessions and not cursor:
        service.require_project(project_id, current_principal.get())
    return _view("project.html", project_id=project_id, page=page, paged=bool(cursor))


@router.get("/ui/projects/{project_id}/sessions/{session_id:path}", response_class=HTMLResponse)
@view
def session_view(
    request: Request, project_id: str, session_id: str, at: str | None = None, around: str | None = None
) -> HTMLResponse:
    check_project(project_id)
    service = _service(request)
    session = service.session(project_id, session_id)
    centre = around or at or None
    if centre:
        timeline = service.timeline(project_id, session_id, centre, TIMELINE_SPAN, TIMELINE_SPAN, TIMELINE_CHARS)
    else:
        timeline = service.timeline(project_id, session_id, None, 0, 2 * TIMELINE_SPAN, TIMELINE_CHARS)
    with service.db.connection() as conn:
        activity = session_activity(conn=conn, project_id=project_id, session_id=session_id)
    return _view(
        "session.html",
        project_id=project_id,
        session=session,
        m=session.metrics,
        timeline=timeline,
        activity=activity,
        at=at,
    )


@router.get("/ui/projects/{project_id}/events/{event_id:path}", response_class=HTMLResponse)
@view
def event_view(request: Request, project_id: str, event_id: str) -> HTMLResponse:
    check_project(project_id)
    ev = _service(request).event(project_id, event_id)
    return _view("event.html", project_id=project_id, ev=ev)


_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _search_body(form: dict[str, Any]) -> dict[str, Any]:
    """The form's fields as a SearchRequest body; a day (the date inputs) means that whole UTC day."""
    body: dict[str, Any] = {
        "query": form["query"],
        "project_id": form["project_id"],
        "limit": HITS_PER_PAGE,
        "mode": form["mode"],
        "group": form["group"],
        "explain": form["explain"],
    }
    if form["session_id"]:
        body["session_id"] = form["session_id"]
    if form["types"]:
        body["types"] = form["types"]
    files = [f.strip() for f in form["files"].split(",") if f.strip()]
    if files:
        body["files"] = files
    for key, clock in (("since", "T00:00:00Z"), ("until", "T23:59:59.999999Z")):
        value = form[key].strip()
        if value:
            body[key] = value + clock if _DAY.match(value) else value
    if form["cursor"]:
        body["cursor"] = form["cursor"]
    return body


@router.get("/ui/search", response_class=HTMLResponse)
@view
def search_view(request: Request) -> HTMLResponse:
    qp = request.query_params
    service = _service(request)
    projects = [p.project_id for p in service.projects(current_principal.get()).projects]
    form = {
        "query": qp.get("query", ""),
        "project_id": qp.get("project_id") or (projects[0] if projects else ""),
        "session_id": qp.get("session_id", ""),
        "types": qp.getlist("types"),
        "files": qp.get("files", ""),
        "since": qp.get("since", ""),
        "until": qp.get("until", ""),
        "group": qp.get("group") or "event",
        "mode": qp.get("mode") or "hybrid",
        "explain": qp.get("explain") == "on",
        "cursor": qp.get("cursor", ""),
    }
    if form["project_id"] and form["project_id"] not in projects:
        projects.append(form["project_id"])
    context: dict[str, Any] = {"form": form, "projects": projects, "result": None, "problem": None}
    if not form["query"]:
        return _view("search.html", **context)
    first_page = {k: v for k, v in form.items() if k != "cursor"}
    context["first_url"] = render.search_url(first_page)
    try:
        req = SearchRequest.model_validate(_search_body(form))
    except ValidationError as exc:
        context["problem"] = validation_message(exc.errors())
        return _view("search.html", 422, **context)
    check_project(req.project_id)
    try:
        result = service.search(req)
    except InvalidCursor as exc:
        context["problem"] = f"{exc}; start again from the first page."
        return _view("search.html", 400, **context)
    context["result"] = result
    context["next_url"] = (
        render.search_url({**first_page, "cursor": result.next_cursor}) if result.next_cursor else None
    )
    return _view("search.html", **context)


@router.get("/ui/status", response_class=HTMLResponse)
@view
def status_view(request: Request) -> HTMLResponse:
    service = _service(request)
    readiness = service.readiness()
    queue = service.queue_state()
    tier = None
    if readiness is None:
        try:
            with service.db.connection(timeout=2.0) as conn:
                tier = tier_state(conn)
        except (DatabaseUnavailable, psycopg.OperationalError):
            tier = None
    now = datetime.now(UTC)
    return _view(
        "status.html",
        readiness=readiness,
        queue=queue,
        tier=tier,
        rebuilt_at=now - timedelta(seconds=tier.age_s) if tier else None,
        refresh_interval_s=service.settings.refresh_interval_s,
        now=now,
    )
