"""The MCP server: ctxsearch's tools for chat agents, over stdio (`ctxsearch mcp`) or
streamable HTTP (mounted at `/mcp` by `ctxsearch serve`).

The tools are thin: they validate with the API's schemas and call the shared Service.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, get_type_hints

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field, Strict, ValidationError

from ctxsearch.auth import Forbidden, Principal, check_project, current_principal
from ctxsearch.config import Settings
from ctxsearch.schemas import (
    MAX_BATCH_EVENTS,
    EventBatch,
    EventIn,
    IngestResponse,
    SearchRequest,
    SearchResponse,
    SessionPublic,
)
from ctxsearch.service.facade import NotFound, Service
from ctxsearch.service.paging import InvalidCursor
from ctxsearch.store.db import DatabaseUnavailable

INSTRUCTIONS = """\
ctxsearch is the searchable memory of past coding sessions in a project: what was decided,
what broke and how it was fixed, which files were touched, and in which session.
Call search_context before re-investigating something that may have come up before;
call record_events to save what happens in this session so later sessions can find it;
call get_session for the summary, metrics and key events of one session."""

# How long record_events waits, by default, for the new events to become searchable by meaning.
RECORD_WAIT_S = 10.0


class RecordResult(IngestResponse):
    indexed: bool = Field(description="True when every recorded event is already searchable by meaning too.")


def _message(exc: ValidationError) -> str:
    from ctxsearch.validation import validation_message

    # Locations are relative to the tool's arguments; "body" is what the formatter strips.
    return validation_message([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()])


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


def _allow(ctx: Context, project_ids: set[str]) -> None:
    """Refuse projects the caller's API key may not use (HTTP). The key was checked by the
    security middleware, which left its principal on the HTTP request that carried this call;
    over stdio there is no key and every project is allowed."""
    request = getattr(ctx.request_context, "request", None)
    scope = getattr(request, "scope", None) or {}
    principal: Principal | None = scope.get("state", {}).get("principal") or current_principal.get()
    for project_id in sorted(project_ids):
        check_project(project_id, principal)


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
    hints = get_type_hints(fn)
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


def build_server(get_service: Callable[[], Service]) -> MCPServer:
    """An MCP server whose tools call the Service that get_service returns."""
    with _logging_left_alone():
        server = MCPServer(
            "ctxsearch", title="ctxsearch: context search for coding agents", instructions=INSTRUCTIONS, version="0.1.0"
        )

    @server.tool(title="Search past context")
    @_with_request_arguments
    def search_context(ctx: Context | None = None, **fields: Any) -> SearchResponse:
        """Search a project's past coding sessions (events and session summaries) by meaning and by exact words.

        Call it before debugging an error, changing a file or revisiting a decision, to learn
        what earlier sessions found. Returns hits ranked best first in `results`, each with its id,
        session_id, timestamp, type, title, a snippet (matched words in <b></b>), files, score and
        confidence: the estimated probability (0-1) that the hit is relevant. In coding sessions,
        trust hits at 0.5 or more; below about 0.2 a hit is likely unrelated, and when every hit
        is that low nothing stored matches: say so rather than use them (chat memories score
        lower: weigh them by rank). min_confidence=0.5 returns only the likely
        ones. Use group="session" when the question is which session did something ("which session
        fixed X?", "when did we decide Y?"): then `sessions` holds sessions ranked by their
        matching events, each once, with its title, when it ran, how many documents matched and
        its best hits as evidence (`results` is empty); follow up with get_session. When
        `next_cursor` is set there is more: call again with the same query and filters and
        cursor=next_cursor. `truncated: true` means max_tokens cut a snippet or left hits for later.
        """
        with _tool_errors():
            _allow(ctx, {fields["project_id"]})
            return get_service().search(SearchRequest.model_validate(fields))

    @server.tool(title="Get a session")
    def get_session(
        project_id: Annotated[str, Field(description="The project the session belongs to.")],
        session_id: Annotated[str, Field(description="The session, e.g. a session_id from search_context.")],
        ctx: Context | None = None,
    ) -> SessionPublic:
        """Get one session's summary, metrics (tool calls, files touched, decisions, error rate,
        tokens) and its key events.

        Call it after search_context points at a session worth understanding as a whole.
        Fails with a clear message if the project has no such session.
        """
        with _tool_errors():
            _allow(ctx, {project_id})
            return get_service().session(project_id, session_id)

    @server.tool(title="Record session events")
    def record_events(
        events: Annotated[
            list[EventIn],
            Field(
                min_length=1,
                max_length=MAX_BATCH_EVENTS,
                description=(
                    "Events of this session, oldest first. Each needs project_id, session_id, timestamp (RFC 3339 "
                    "with offset) and type (message, tool_call, file_edit, decision, error, test_run, commit, note); "
                    "put the text in content and touched paths in files. Give each an id so retries are stored once."
                ),
            ),
        ],
        wait: Annotated[
            bool,
            Field(
                description="Wait (up to 10 s) until the events are searchable by meaning; "
                "they are searchable by exact words at once."
            ),
        ] = True,
        ctx: Context | None = None,
    ) -> RecordResult:
        """Save events of the current session (decisions, errors and their fixes, edits, test runs,
        commits, notes) so that later sessions can find them with search_context.

        Returns how many were stored and how many were already stored (same project and id).
        """
        with _tool_errors():
            batch = EventBatch(events=events)
            _allow(ctx, {e.project_id for e in batch.events})
            svc = get_service()
            result = svc.ingest(batch.events)
            indexed = True
            if wait:
                deadline = time.monotonic() + RECORD_WAIT_S
                for project_id in {e.project_id for e in batch.events}:
                    indexed = svc.wait_embedded(project_id, max(0.0, deadline - time.monotonic())) and indexed
            return RecordResult(accepted=result.accepted, duplicates=result.duplicates, indexed=indexed)

    return server


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
