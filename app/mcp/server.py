"""The MCP server: ctxsearch's tools for chat agents, over stdio (`ctxsearch mcp`) or
streamable HTTP (mounted at `/mcp` by `ctxsearch serve`).

The tools disclose in three steps, each costing more tokens than the last: search_context
answers a compact index of hits, get_timeline the events around one of them, get_events the
chosen events in full. The tools are thin: they validate with the API's schemas and call the
shared Service.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, get_type_hints

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.mcpserver.tools import Tool
from mcp_types import CallToolResult, TextContent
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError

from ctxsearch.auth import Forbidden, Principal, check_project, current_principal
from ctxsearch.config import Settings
from ctxsearch.schemas import (
    MAX_BATCH_EVENTS,
    MAX_CONTENT_CHARS,
    MAX_ID_CHARS,
    MAX_PAYLOAD_BYTES,
    ArmRanks,
    ArmScores,
    EventBatch,
    EventFull,
    EventIn,
    IngestResponse,
    ProjectList,
    SearchHit,
    SearchRequest,
    SearchResponse,
    SessionPublic,
    Timeline,
    Timestamp,
)
from ctxsearch.service.admission import Overloaded
from ctxsearch.service.facade import NotFound, Service
from ctxsearch.service.paging import InvalidCursor
from ctxsearch.store.db import LOST_LOCK, DatabaseUnavailable, DiskFull
from ctxsearch.store.search import SUMMARY_PREFIX

INSTRUCTIONS = """\
ctxsearch is the searchable memory of past coding sessions in a project: what was decided,
what broke and how it was fixed, which files were touched, and in which session.
Call list_projects to learn the project ids. Before re-investigating something that may have
come up before, look in three steps, each dearer than the last: search_context (a compact
index of hits), get_timeline (what happened just before and after one hit), get_events (the
chosen events in full). get_session gives one session's summary, metrics and key events.
Call record_events to save what happens in this session so later sessions can find it."""

# How long record_events waits, by default, for the new events to become searchable by meaning.
RECORD_WAIT_S = 10.0
# get_events: the most ids one call may ask for, and how much of each event it returns by default.
MAX_GET_EVENTS = 20
GET_EVENTS_CHARS = 20_000
# get_timeline: the most events on either side, and how much of each it shows by default.
MAX_TIMELINE_SIDE = 50
TIMELINE_CHARS = 500
# search_context: how much of a hit's snippet and title the index shows.
SNIPPET_CHARS = 200
TITLE_CHARS = 120


def _absent(v: Any) -> bool:
    return v is None


class Hit(BaseModel):
    """A hit in the index: enough to choose, not to read (get_timeline, get_events)."""

    id: str = Field(description="The event's id (summary:<session> for a session summary): pass it to get_events.")
    session_id: str
    timestamp: datetime
    type: str
    title: str
    snippet: str = Field(description="Where the query matched (matched words in <b></b>), cut short.")
    confidence: float = Field(description=SearchHit.model_fields["confidence"].description)
    files: list[str] | None = Field(default=None, exclude_if=_absent, description="With explain only.")
    score: float | None = Field(default=None, exclude_if=_absent, description="With explain only.")
    ranks: ArmRanks | None = Field(default=None, exclude_if=_absent, description="With explain only.")
    scores: ArmScores | None = Field(default=None, exclude_if=_absent, description="With explain only.")


class SessionIndexHit(BaseModel):
    """A session in the index (group=session), with its best hits as evidence."""

    session_id: str
    title: str
    confidence: float
    started_at: datetime | None
    ended_at: datetime | None
    matched: int = Field(description="How many of the session's documents matched.")
    hits: list[Hit]


class SearchIndex(BaseModel):
    results: list[Hit] = Field(description="The hits, best first; empty with group=session.")
    sessions: list[SessionIndexHit] | None = Field(
        default=None, exclude_if=_absent, description="With group=session only: the sessions, best first."
    )
    truncated: bool = Field(description="True when max_tokens cut a snippet or left hits out.")
    next_cursor: str | None = Field(description="Pass as `cursor`, with the same query and filters, for more.")


class FullEvent(EventFull):
    content_chars: int = Field(description="The whole content's length.")
    truncated: bool = Field(
        description="True when content was cut at max_chars, or the payload left out (null) "
        "because it is longer than max_chars as JSON."
    )


class Events(BaseModel):
    events: list[FullEvent] = Field(description="In the order asked.")
    missing: list[str] = Field(description="Asked-for ids the project has no event for.")


class RecordedEvent(EventIn):
    """An event to record; the tool fills in what it leaves out."""

    project_id: str | None = Field(
        default=None, min_length=1, max_length=MAX_ID_CHARS, description="Default: the call's project_id."
    )
    session_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_ID_CHARS,
        description="Default: this connection's own session, returned as session_id.",
    )
    timestamp: Timestamp | None = Field(default=None, description="RFC 3339 with a UTC offset; default: now.")


class RecordResult(IngestResponse):
    indexed: bool = Field(description="True when every recorded event is already searchable by meaning too.")
    session_id: str | None = Field(
        description="The session given to the events that named none (null when every one named its own)."
    )


def _message(exc: ValidationError) -> str:
    from ctxsearch.validation import validation_message

    # Locations are relative to the tool's arguments; "body" is what the formatter strips.
    return validation_message([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()])


class _Tool(Tool):
    """A tool whose arguments are checked like an HTTP body: an unknown name is refused, and
    every refusal reads `field: reason`, with no prefix and no link."""

    @classmethod
    def of(cls, fn: Callable[..., Any], title: str) -> _Tool:
        tool = cls.from_function(fn, title=title, description=inspect.cleandoc(fn.__doc__ or ""))

        class Arguments(tool.fn_metadata.arg_model):
            model_config = ConfigDict(extra="forbid")

        Arguments.__name__ = Arguments.__qualname__ = tool.fn_metadata.arg_model.__name__
        tool.fn_metadata.arg_model = Arguments
        tool.parameters = Arguments.model_json_schema(by_alias=True)
        return tool

    async def run(self, arguments: dict[str, Any], context: Any, convert_result: bool = False) -> Any:
        try:
            return await super().run(arguments, context, convert_result=convert_result)
        except UnexpectedToolError:
            raise
        except ToolError as exc:
            # The SDK says "Error executing tool <name>: " before the cause's own text.
            cause = exc.__cause__
            if isinstance(cause, ValidationError):
                raise ToolError(_message(cause)) from cause
            if isinstance(cause, ToolError):
                raise ToolError(str(cause)) from cause
            raise


@contextmanager
def _tool_errors() -> Iterator[None]:
    # The agent reads the message: name the field or the problem, never a traceback.
    try:
        yield
    except ValidationError as exc:
        raise ToolError(_message(exc)) from None
    except (InvalidCursor, NotFound, Forbidden) as exc:
        raise ToolError(str(exc)) from None
    except DatabaseUnavailable as exc:
        raise ToolError(f"{exc}; try again shortly") from None
    except (DiskFull, Overloaded) as exc:
        raise ToolError(str(exc)) from None
    except LOST_LOCK:
        raise ToolError("database busy: the call lost a lock conflict; try again") from None


@contextmanager
def _naming_projects(svc: Service, project_id: str, principal: Principal | None) -> Iterator[None]:
    """A NotFound for a project with nothing stored becomes one naming the closest stored ones."""
    try:
        yield
    except NotFound:
        svc.require_project(project_id, principal)
        raise


@contextmanager
def _logging_left_alone() -> Iterator[None]:
    # MCPServer() calls logging.basicConfig; logging is the CLI's to configure, not a library's.
    root = logging.getLogger()
    guard = logging.NullHandler()
    root.addHandler(guard)
    try:
        yield
    finally:
        root.removeHandler(guard)


def _principal(ctx: Context) -> Principal | None:
    """The caller's API key (HTTP): the security middleware checked it and left its principal
    on the HTTP request that carried this call. Over stdio there is none."""
    request = getattr(ctx.request_context, "request", None)
    scope = getattr(request, "scope", None) or {}
    return scope.get("state", {}).get("principal") or current_principal.get()


def _allow(ctx: Context, project_ids: set[str]) -> Principal | None:
    """Refuse projects the caller's API key may not use; every project is allowed without one."""
    principal = _principal(ctx)
    for project_id in sorted(project_ids):
        check_project(project_id, principal)
    return principal


def _connection_session(ctx: Context, process: dict[str, str]) -> str:
    """This connection's own session id, the same on every call over it: kept in the state of
    a handshake-era connection (stdio, or HTTP with Mcp-Session-Id); over stdio a process
    serves one client, so the process keeps it. A stateless HTTP call has no connection
    beyond itself and gets a new one each time."""
    connection = getattr(ctx.session, "_connection", None)
    if connection is not None and connection.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        state = connection.state
    elif getattr(ctx.request_context, "request", None) is None:
        state = process
    else:
        state = {}
    return state.setdefault("ctxsearch.session_id", f"mcp-{uuid.uuid4().hex}")


def _answer(model: BaseModel) -> CallToolResult:
    """The result as structured content and as compact JSON text (no indentation to pay for)."""
    data = model.model_dump(mode="json")
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def _cut(text: str, limit: int) -> str:
    """At most about `limit` characters, ended at a word, with no tag left open."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    cut = cut[: cut.rfind(" ")] if " " in cut[limit // 2 :] else cut
    if cut.rfind("<") > cut.rfind(">"):
        cut = cut[: cut.rfind("<")]
    if cut.count("<b>") > cut.count("</b>"):
        cut += "</b>"
    return cut.rstrip() + " …"


def _index_hit(h: SearchHit, explain: bool) -> Hit:
    extra = dict(files=h.files, score=h.score, ranks=h.ranks, scores=h.scores) if explain else {}
    return Hit(
        id=h.id,
        session_id=h.session_id,
        timestamp=h.timestamp,
        type=h.type,
        title=_cut(h.title, TITLE_CHARS),
        snippet=_cut(h.snippet, SNIPPET_CHARS),
        confidence=round(h.confidence, 3),
        **extra,
    )


def _index(r: SearchResponse, explain: bool) -> SearchIndex:
    sessions = None
    if r.sessions is not None:
        sessions = [
            SessionIndexHit(
                session_id=s.session_id,
                title=_cut(s.title, TITLE_CHARS),
                confidence=round(s.confidence, 3),
                started_at=s.started_at,
                ended_at=s.ended_at,
                matched=s.matched,
                hits=[_index_hit(h, explain) for h in s.hits],
            )
            for s in r.sessions
        ]
    return SearchIndex(
        results=[_index_hit(h, explain) for h in r.results],
        sessions=sessions,
        truncated=r.truncated,
        next_cursor=r.next_cursor,
    )


def _full(e: EventFull, max_chars: int) -> FullEvent:
    content, payload = e.content, e.payload
    cut_content = len(content) > max_chars
    cut_payload = payload is not None and len(json.dumps(payload, ensure_ascii=False)) > max_chars
    return FullEvent(
        **e.model_dump(exclude={"content", "payload"}),
        content=content[:max_chars] if cut_content else content,
        payload=None if cut_payload else payload,
        content_chars=len(content),
        truncated=cut_content or cut_payload,
    )


def _request_arguments() -> list[inspect.Parameter]:
    """SearchRequest's fields as keyword arguments: type, bounds, description and default."""
    out = []
    for name, field in SearchRequest.model_fields.items():
        # Lax, unlike the JSON body: agents send "5" for 5; SearchRequest checks the result again.
        meta = [m for m in field.metadata if not isinstance(m, Strict)]
        annotation = Annotated[(field.annotation, *meta, Field(description=field.description))]
        default = inspect.Parameter.empty if field.is_required() else field.get_default()
        out.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation))
    return out


def _with_request_arguments(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give a tool SearchRequest's fields as its arguments, ahead of its own (`ctx`): the SDK
    builds the input schema from the signature, and the tool gets the fields in **fields."""
    hints = get_type_hints(fn, include_extras=True)
    own = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hints.get(p.name, p.annotation))
        for p in inspect.signature(fn).parameters.values()
        if p.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    fields = _request_arguments()
    fn.__signature__ = inspect.Signature([*fields, *own], return_annotation=hints.get("return"))
    # The SDK finds the Context argument by its type hint.
    fn.__annotations__ = {**{p.name: p.annotation for p in [*fields, *own]}, "return": hints.get("return")}
    return fn


ProjectArg = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_ID_CHARS,
        description="The project (list_projects names them; ids are case-sensitive).",
    ),
]
EventId = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]


def build_server(get_service: Callable[[], Service]) -> MCPServer:
    """An MCP server whose tools call the Service that get_service returns."""
    # The session of events recorded over stdio without one: a process serves one client.
    process: dict[str, str] = {}

    def list_projects(ctx: Context | None = None) -> Annotated[CallToolResult, ProjectList]:
        """List the projects whose sessions are stored (only the API key's own, with keys):
        each one's project_id, session and event counts, and first and last activity, most
        recently active first.

        Call it first when you do not know the project_id the other tools need: ids are exact
        and case-sensitive. About 40 tokens a project.
        """
        with _tool_errors():
            return _answer(get_service().projects(_principal(ctx)))

    @_with_request_arguments
    def search_context(ctx: Context | None = None, **fields: Any) -> Annotated[CallToolResult, SearchIndex]:
        """Search a project's past coding sessions (events and session summaries) by meaning and by exact words.

        Call it before debugging an error, changing a file or revisiting a decision, to learn
        what earlier sessions found. Step one of three: it returns a compact index, about 90
        tokens a hit: in `results`, best first, each hit's id, session_id, timestamp, type,
        title, a short snippet (matched words in <b></b>) and confidence, the estimated
        probability (0-1) that the hit is relevant (explain=true adds files, score and each arm's
        ranks and scores). Then call get_timeline with a hit's id to see what happened just
        before and after it, and get_events with the ids worth reading in full.
        In coding sessions, trust hits at 0.5 or more; below about 0.2 a hit is likely unrelated,
        and when every hit is that low nothing stored matches: say so rather than use them (chat
        memories score lower: weigh them by rank). min_confidence=0.5 returns only the likely
        ones. Use group="session" when the question is which session did something ("which
        session fixed X?", "when did we decide Y?"): then `sessions` holds sessions ranked by
        their matching events, each once, with its title, when it ran, how many documents
        matched and its best hits as evidence (`results` is empty); follow up with get_session.
        When `next_cursor` is set there is more: call again with the same query and filters and
        cursor=next_cursor. `truncated: true` means max_tokens cut a snippet or left hits for
        later. A project_id with nothing stored is refused with the closest stored ones.
        """
        with _tool_errors():
            principal = _allow(ctx, {fields["project_id"]})
            svc = get_service()
            req = SearchRequest.model_validate(fields)
            found = svc.search(req)
            if not found.results and not found.sessions:
                svc.require_project(req.project_id, principal)
            return _answer(_index(found, req.explain))

    def get_timeline(
        project_id: ProjectArg,
        session_id: Annotated[
            str | None,
            Field(
                min_length=1,
                max_length=MAX_ID_CHARS,
                description="The session; may be left out when `around` is given (its session is used).",
            ),
        ] = None,
        around: Annotated[
            EventId | None,
            Field(description="Centre on this event: a hit's id from search_context. Without it: from the start."),
        ] = None,
        before: Annotated[int, Field(ge=0, le=MAX_TIMELINE_SIDE, description="Events before `around`.")] = 5,
        after: Annotated[
            int, Field(ge=0, le=MAX_TIMELINE_SIDE, description="Events after `around` (or from the start).")
        ] = 5,
        max_chars: Annotated[
            int, Field(ge=1, le=MAX_CONTENT_CHARS, description="Cut each event's content at this many characters.")
        ] = TIMELINE_CHARS,
        ctx: Context | None = None,
    ) -> Annotated[CallToolResult, Timeline]:
        """Show what happened in a session just before and after one event: consecutive events
        in order, each with its id, position in the session, timestamp, type, tool, files and
        content cut at max_chars (`truncated` says so; `content_chars` is the whole length).

        Step two of three: call it with a hit's id from search_context as `around` to see the
        error before a fix, or the test run after an edit. Costs about 30 tokens an event plus
        its content (at most max_chars, 500 by default: about 150 tokens). `more_before` /
        `more_after` say whether to ask again around the first or last event shown. A session
        summary's id (summary:<session>) shows the session from its start.
        """
        with _tool_errors():
            principal = _allow(ctx, {project_id})
            svc = get_service()
            with _naming_projects(svc, project_id, principal):
                if around is not None and around.startswith(SUMMARY_PREFIX):
                    session_id, around = session_id or around.removeprefix(SUMMARY_PREFIX), None
                if session_id is None:
                    if around is None:
                        raise ToolError("session_id: Field required (or give `around`, an event id)")
                    session_id = svc.event(project_id, around).session_id
                return _answer(svc.timeline(project_id, session_id, around, before, after, max_chars))

    def get_events(
        project_id: ProjectArg,
        ids: Annotated[
            list[EventId],
            Field(
                min_length=1,
                max_length=MAX_GET_EVENTS,
                description=f"Up to {MAX_GET_EVENTS} event ids from search_context or get_timeline "
                "(summary:<session> reads that session's summary).",
            ),
        ],
        max_chars: Annotated[
            int,
            Field(
                ge=1,
                le=MAX_CONTENT_CHARS,
                description="Cut each event's content at this many characters (a payload longer than "
                "this as JSON is left out).",
            ),
        ] = GET_EVENTS_CHARS,
        ctx: Context | None = None,
    ) -> Annotated[CallToolResult, Events]:
        """Read chosen events in full: the whole content (the full tool output, diff or
        message), the payload, files, tool, tokens and when it was stored.

        Step three of three: call it with the few ids from search_context or get_timeline that
        are worth reading whole. It costs what the events hold: content runs
        to {max_content} characters (about a quarter as many tokens) and a payload to
        {max_payload} bytes. max_chars (default {default}, about {default_tokens} tokens) cuts
        each event's content and leaves out a payload longer than that as JSON; `truncated` says
        so and `content_chars` gives the whole length. Ids the project has no event for are
        listed in `missing`.
        """
        with _tool_errors():
            principal = _allow(ctx, {project_id})
            svc = get_service()
            got = svc.events(project_id, ids)
            if not got.events:
                svc.require_project(project_id, principal)
            return _answer(Events(events=[_full(e, max_chars) for e in got.events], missing=got.missing))

    get_events.__doc__ = (get_events.__doc__ or "").format(
        max_content=f"{MAX_CONTENT_CHARS:,}",
        max_payload=f"{MAX_PAYLOAD_BYTES:,}",
        default=f"{GET_EVENTS_CHARS:,}",
        default_tokens=f"{GET_EVENTS_CHARS // 4:,}",
    )

    def get_session(
        project_id: ProjectArg,
        session_id: Annotated[
            str,
            Field(
                min_length=1, max_length=MAX_ID_CHARS, description="The session, e.g. a session_id from search_context."
            ),
        ],
        ctx: Context | None = None,
    ) -> Annotated[CallToolResult, SessionPublic]:
        """Get one session's summary, metrics (tool calls, files touched, decisions, error rate,
        tokens) and its key events.

        Call it after search_context points at a session worth understanding as a whole:
        about 300 tokens for a short session, up to about 6,000 when its ten key events are long.
        Fails with a clear message if the project has no such session.
        """
        with _tool_errors():
            principal = _allow(ctx, {project_id})
            svc = get_service()
            with _naming_projects(svc, project_id, principal):
                return _answer(svc.session(project_id, session_id))

    def record_events(
        events: Annotated[
            list[RecordedEvent],
            Field(
                min_length=1,
                max_length=MAX_BATCH_EVENTS,
                description=(
                    "Events of this session, oldest first. Each needs a type (message, tool_call, file_edit, "
                    "decision, error, test_run, commit, note); put the text in content and touched paths in "
                    "files. Left out: project_id is the call's, session_id this connection's own, timestamp "
                    "now. Give each an id so retries are stored once."
                ),
            ),
        ],
        project_id: Annotated[
            str | None,
            Field(min_length=1, max_length=MAX_ID_CHARS, description="The project of the events that name none."),
        ] = None,
        wait: Annotated[
            bool,
            Field(
                description="Wait (up to 10 s) until the events are searchable by meaning; "
                "they are searchable by exact words at once."
            ),
        ] = True,
        ctx: Context | None = None,
    ) -> Annotated[CallToolResult, RecordResult]:
        """Save events of the current session (decisions, errors and their fixes, edits, test runs,
        commits, notes) so that later sessions can find them with search_context.

        Only type and content are needed: the time is now, the session this connection's own
        (the same on every call over one connection; over stateless HTTP pass the returned
        session_id back to keep adding to it). Returns how many were stored, how many were
        already stored (same project and id), the session_id it used, and `indexed`: whether
        they are all searchable by meaning yet. About 40 tokens.
        """
        with _tool_errors():
            now = datetime.now(UTC)
            session_id = None
            filled = []
            for i, e in enumerate(events):
                d = e.model_dump(exclude_unset=True)
                if d.get("project_id") is None:
                    if project_id is None:
                        raise ToolError(f"events[{i}].project_id: Field required (here or as the call's project_id)")
                    d["project_id"] = project_id
                if d.get("session_id") is None:
                    session_id = session_id or _connection_session(ctx, process)
                    d["session_id"] = session_id
                if d.get("timestamp") is None:
                    # One batch keeps its order: the events sort by time.
                    d["timestamp"] = now + timedelta(microseconds=i)
                filled.append(d)
            batch = EventBatch.model_validate({"events": filled})
            projects = {e.project_id for e in batch.events}
            _allow(ctx, projects)
            svc = get_service()
            result = svc.ingest(batch.events)
            # Without waiting: one look at whether anything is still waiting for its vector.
            deadline = time.monotonic() + (RECORD_WAIT_S if wait else 0.0)
            indexed = True
            for p in sorted(projects):
                indexed = svc.wait_embedded(p, max(0.0, deadline - time.monotonic())) and indexed
            return _answer(RecordResult(**result.model_dump(), indexed=indexed, session_id=session_id))

    tools = [
        _Tool.of(list_projects, "List projects"),
        _Tool.of(search_context, "Search past context"),
        _Tool.of(get_timeline, "Show a timeline"),
        _Tool.of(get_events, "Read events in full"),
        _Tool.of(get_session, "Get a session"),
        _Tool.of(record_events, "Record session events"),
    ]
    with _logging_left_alone():
        return MCPServer(
            "ctxsearch",
            title="ctxsearch: context search for coding agents",
            instructions=INSTRUCTIONS,
            version="0.1.0",
            tools=tools,
        )


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    # Over stdio, stdout carries only protocol messages: whatever starting the database
    # and the model prints goes to stderr.
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def run_stdio(settings: Settings) -> None:
    """Serve the tools over stdio until the client closes the connection."""
    with _stdout_to_stderr():
        service = Service.start(settings)
    try:
        build_server(lambda: service).run("stdio")
    finally:
        service.close()
