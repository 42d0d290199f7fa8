"""Request and response models, one family per resource."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ctxsearch.config import Limits

# Bounds on what one request may carry. Each refusal names the bound; the tunable
# ones come from the settings (CTXSEARCH_MAX_*), read once at import.
_limits = Limits()
MAX_BATCH_EVENTS = _limits.max_batch_events
MAX_ID_CHARS = 256
MAX_CONTENT_CHARS = _limits.max_content_chars
MAX_PAYLOAD_BYTES = _limits.max_payload_bytes
MAX_FILES = 200
MAX_PATH_CHARS = 1024
MAX_QUERY_CHARS = _limits.max_query_chars
MAX_LIMIT = _limits.max_limit
MAX_SUMMARY_CHARS = 20_000
MAX_TOKENS = 100_000
MAX_CURSOR_CHARS = 16_000


class EventType(str, Enum):
    message = "message"
    tool_call = "tool_call"
    file_edit = "file_edit"
    decision = "decision"
    error = "error"
    test_run = "test_run"
    commit = "commit"
    note = "note"


DocKind = Literal["summary", "event"]
SearchMode = Literal["hybrid", "vector", "text"]
Fusion = Literal["convex", "rrf", "weighted"]
SearchGroup = Literal["event", "session"]


def _no_nul(value: str, what: str) -> str:
    if "\x00" in value:
        raise ValueError(f"{what} must not contain NUL (\\u0000) characters")
    return _unicode(value, what)


def _unicode(value: str, what: str) -> str:
    """JSON can carry a lone surrogate (\\ud800) that no UTF-8 text, and so no database, can hold."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} must be valid Unicode: it holds a lone surrogate (\\ud800-\\udfff)") from None
    return value


Identifier = Field(min_length=1, max_length=MAX_ID_CHARS)


def _identifier(v: str | None) -> str | None:
    if v is None:
        return v
    if not v.strip():
        raise ValueError("must not be blank")
    if any(ord(c) < 32 for c in v):
        raise ValueError("must not contain control characters")
    return _unicode(v, "an id")


# For ids in paths and query strings (no NUL or other control characters).
ID_PATTERN = r"^[^\x00-\x1f]+$"


def _rfc3339_text(v: Any) -> Any:
    # Pydantic would read a bare number as Unix time; the contract is RFC 3339 text.
    if not isinstance(v, (str, datetime)):
        raise PydanticCustomError("rfc3339", "must be an RFC 3339 string, e.g. 2026-11-22T10:00:00Z")
    return v


def _utc_representable(v: datetime) -> datetime:
    try:
        v.astimezone(UTC)
    except (OverflowError, ValueError):
        raise PydanticCustomError("rfc3339", "is out of range once converted to UTC") from None
    return v


Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text), AfterValidator(_utc_representable)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class EventIn(_Strict):
    """One event of an agent's session."""

    id: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_ID_CHARS,
        description="The client's id; retries with the same id are stored once per project.",
    )
    project_id: str = Identifier
    session_id: str = Identifier
    timestamp: Timestamp = Field(description="RFC 3339 with a UTC offset, e.g. 2026-11-22T10:00:00Z")
    type: EventType
    content: str = Field(default="", max_length=MAX_CONTENT_CHARS)
    tool: str | None = Field(default=None, max_length=200)
    files: list[str] = Field(default_factory=list, max_length=MAX_FILES)
    tokens: int | None = Field(default=None, ge=0, le=100_000_000, strict=True)
    payload: dict[str, Any] | None = None

    @field_validator("id", "project_id", "session_id", "tool")
    @classmethod
    def _ids(cls, v: str | None) -> str | None:
        return _identifier(v)

    @field_validator("content")
    @classmethod
    def _content(cls, v: str) -> str:
        return _no_nul(v, "content")

    @field_validator("files")
    @classmethod
    def _files(cls, v: list[str]) -> list[str]:
        for path in v:
            if not path or len(path) > MAX_PATH_CHARS:
                raise ValueError(f"each path must be 1 to {MAX_PATH_CHARS} characters")
            _no_nul(path, "a path")
        return v

    @field_validator("payload")
    @classmethod
    def _payload(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is None:
            return v
        try:
            size = len(json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
        except UnicodeEncodeError:
            raise ValueError("payload must be valid Unicode: a key or value holds a lone surrogate") from None
        if size > MAX_PAYLOAD_BYTES:
            raise PydanticCustomError(
                "too_large",
                "payload is larger than {limit} bytes as JSON (max_payload_bytes)",
                {"limit": MAX_PAYLOAD_BYTES},
            )
        return v

    @model_validator(mode="after")
    def _findable(self) -> EventIn:
        # An event with no text, no tool and no file could only ever be an empty hit.
        if not self.content.strip() and not self.tool and not self.files:
            raise PydanticCustomError(
                "nothing_searchable", "content: empty, and no tool or files: nothing would find this event"
            )
        return self


class EventBatch(_Strict):
    events: list[EventIn] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)


class IngestResponse(BaseModel):
    accepted: int = Field(description="Events stored by this request.")
    duplicates: int = Field(description="Events already stored (same project and id), not stored again.")
    redactions: int = Field(default=0, description="Credentials replaced by [REDACTED:<kind>] before storing.")


class ArmRanks(BaseModel):
    vector: int | None = None
    text: int | None = None


class ArmScores(BaseModel):
    """Each arm's evidence for a hit and its part of the fused score (`explain`)."""

    vector: float | None = Field(default=None, description="Cosine similarity to the query (null in text mode).")
    text: float | None = Field(default=None, description="BM25 score (null when the hit did not match the words).")
    text_norm: float | None = Field(
        default=None, description="BM25 over the query's idf sum: about 1 for a match of every query term."
    )
    vector_part: float = Field(default=0.0, description="The vector arm's part of `score`.")
    text_part: float = Field(default=0.0, description="The text arm's part of `score`.")


class SearchWeights(_Strict):
    vector: float = Field(default=1.0, ge=0, le=100, strict=True, description="Weight of the vector arm (meaning).")
    text: float = Field(default=1.0, ge=0, le=100, strict=True, description="Weight of the text arm (exact words).")


class SearchRequest(_Strict):
    """One search. The one declaration of its parameters: POST /v1/search takes it as the body,
    and GET /v1/search, the MCP tool search_context and `ctxsearch search` derive theirs from
    these fields, descriptions and bounds included."""

    query: str = Field(
        min_length=1,
        max_length=MAX_QUERY_CHARS,
        description="What you are looking for, in words or exact identifiers "
        "(error names, function names, file names).",
    )
    project_id: str = Field(
        min_length=1,
        max_length=MAX_ID_CHARS,
        description="The project to search; required, results never mix projects.",
    )
    session_id: str | None = Field(
        default=None, min_length=1, max_length=MAX_ID_CHARS, description="Only this session."
    )
    types: list[EventType] | None = Field(
        default=None, max_length=len(EventType) + 1, description="Only these event types, e.g. error and decision."
    )
    files: list[str] | None = Field(
        default=None,
        max_length=MAX_FILES,
        description="Only events touching these files: exact paths, a bare file name, 'dir/' prefixes or '*' globs.",
    )
    since: Timestamp | None = Field(default=None, description="Only from this time on (RFC 3339).")
    until: Timestamp | None = Field(default=None, description="Only up to this time (RFC 3339).")
    kinds: list[DocKind] | None = Field(
        default=None, max_length=2, description="Only these kinds of document: events, session summaries."
    )
    limit: int = Field(
        default=10, ge=1, le=MAX_LIMIT, strict=True, description="Most hits (with group=session: sessions) to return."
    )
    mode: SearchMode = Field(
        default="hybrid",
        description="hybrid: by meaning and by exact words, fused; vector: by meaning only; text: by exact words only.",
    )
    explain: bool = Field(default=False, strict=True, description="Add each arm's score to each hit.")
    group: SearchGroup = Field(
        default="event",
        description="event: rank documents (events and session summaries), answered in `results`; "
        "session: rank sessions by the evidence of their matching documents, each session once with "
        "its best hits, answered in `sessions` (for 'which session fixed X?').",
    )
    fusion: Fusion | None = Field(
        default=None,
        description="How the arms combine (default: the server's, convex): convex (cosine and "
        "idf-normalised BM25 mixed by `weights`), rrf (reciprocal rank fusion) or weighted "
        "(each arm's scores min-max scaled over its candidates, mixed).",
    )
    rrf_k: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        strict=True,
        description="RRF's k (default: the server's); a smaller k favours the top ranks.",
    )
    weights: SearchWeights | None = Field(
        default=None, description="The arms' weights in the fusion (default: the server's)."
    )
    min_confidence: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Leave out hits whose `confidence` is below this (default: the server's, 0). "
        "0.5 keeps the hits more likely relevant than not; an unrelated query then gets few or none.",
    )
    max_tokens: int | None = Field(
        default=None,
        ge=1,
        le=MAX_TOKENS,
        description="Token budget for the results: snippets are cut and hits dropped to fit; "
        "`truncated` says so and `next_cursor` continues with the rest.",
    )
    cursor: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_CURSOR_CHARS,
        description="`next_cursor` of the previous page; repeat the same query and filters with it.",
    )

    @field_validator("project_id", "session_id")
    @classmethod
    def _ids(cls, v: str | None) -> str | None:
        return _identifier(v)

    @field_validator("query")
    @classmethod
    def _query(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return _no_nul(v, "query")

    @field_validator("files")
    @classmethod
    def _files(cls, v: list[str] | None) -> list[str] | None:
        for path in v or []:
            if not path or len(path) > MAX_PATH_CHARS:
                raise ValueError(f"each path must be 1 to {MAX_PATH_CHARS} characters")
            _no_nul(path, "a path")
        return v

    @model_validator(mode="after")
    def _window(self) -> SearchRequest:
        if self.since and self.until and self.since > self.until:
            raise ValueError("since must not be later than until")
        return self


class SearchHit(BaseModel):
    id: str
    kind: DocKind
    project_id: str
    session_id: str
    timestamp: datetime
    type: str
    title: str
    snippet: str
    files: list[str]
    score: float
    confidence: float = Field(
        description="Estimated probability that the hit is relevant (0-1), calibrated on judged "
        "queries of code sessions, conversations and papers; it means the same for any project "
        "and query length."
    )
    ranks: ArmRanks
    scores: ArmScores | None = None


class SessionHit(BaseModel):
    """A session as an answer (group=session), ranked by the evidence of its matching documents."""

    session_id: str
    project_id: str
    score: float = Field(
        description="The session's best hit's score plus a small share of its next best hits' "
        "(settings session_evidence_weight, session_evidence_hits)."
    )
    confidence: float = Field(description="Its best hit's confidence: how likely the session is relevant.")
    title: str = Field(
        description="The first sentence of the session's summary (the agent's if it wrote one), else its best hit's title."
    )
    started_at: datetime | None = Field(description="The session's first event.")
    ended_at: datetime | None = Field(description="The session's last event.")
    timestamp: datetime = Field(description="When its best hit happened.")
    matched: int = Field(description="How many of the session's documents matched among the candidates ranked.")
    hits: list[SearchHit] = Field(description="Its best hits, best first, with snippets: the evidence.")


class SearchResponse(BaseModel):
    results: list[SearchHit] = Field(description="The hits, best first; empty with group=session.")
    sessions: list[SessionHit] | None = Field(
        default=None,
        exclude_if=lambda v: v is None,
        description="With group=session only: the sessions, best first, each once.",
    )
    mode: SearchMode
    fusion: Fusion | None = Field(default=None, description="The fusion that ranked the hits.")
    took_ms: float
    truncated: bool = Field(
        default=False, description="True when max_tokens cut a snippet or left hits (or sessions) out."
    )
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` to get the next page; null at the end.")


class KeyEvent(BaseModel):
    id: str
    timestamp: datetime
    type: str
    tool: str | None = None
    files: list[str] = []
    content: str
    importance: float


class SessionListItem(BaseModel):
    """A session in a listing: when, how much, and its summary (the agent's if it wrote one)."""

    project_id: str
    session_id: str
    started_at: datetime | None
    ended_at: datetime | None
    event_count: int
    summary: str | None


class SessionPublic(SessionListItem):
    summary_source: Literal["agent", "extracted", "none"]
    metrics: dict[str, Any]
    key_events: list[KeyEvent]
    condensed_at: datetime | None


class SessionBrief(SessionListItem):
    """A session in a project's listing."""

    title: str = Field(description="The first sentence of its summary, else its session id.")
    errors: int = Field(description="How many of its events are errors.")


class SessionList(BaseModel):
    """A project's sessions, most recent first (by their last event)."""

    sessions: list[SessionBrief]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page; null at the end.")


class ProjectSummary(BaseModel):
    project_id: str
    sessions: int = Field(description="Sessions stored.")
    events: int = Field(description="Events stored.")
    first_activity: datetime | None = Field(description="Its earliest event.")
    last_activity: datetime | None = Field(description="Its latest event.")


class ProjectList(BaseModel):
    """The projects the caller may read, most recently active first."""

    projects: list[ProjectSummary]


class EventFull(BaseModel):
    """One event as stored: its whole text and payload (credentials already redacted)."""

    id: str
    project_id: str
    session_id: str
    timestamp: datetime
    type: str
    tool: str | None
    files: list[str]
    tokens: int | None
    content: str
    payload: dict[str, Any] | None
    received_at: datetime = Field(description="When the service stored it.")


class EventList(BaseModel):
    events: list[EventFull]
    missing: list[str] = Field(default_factory=list, description="Asked-for ids the project has no event for.")


class TimelineEvent(BaseModel):
    """An event in a timeline; `content` is cut at max_chars (`content_chars` is its whole length)."""

    id: str
    position: int = Field(description="0-based place in the session, in order of time.")
    timestamp: datetime
    type: str
    tool: str | None
    files: list[str]
    content: str
    content_chars: int
    truncated: bool = Field(description="True when `content` was cut; get the event for all of it.")


class Timeline(BaseModel):
    """Consecutive events of one session, in order (time, then id)."""

    project_id: str
    session_id: str
    around: str | None = Field(description="The event the window is centred on, if one was asked for.")
    total: int = Field(description="Events in the session.")
    events: list[TimelineEvent]
    more_before: bool = Field(description="Earlier events exist: ask again around the first one.")
    more_after: bool = Field(description="Later events exist: ask again around the last one.")


class SummaryIn(_Strict):
    project_id: str = Identifier

    @field_validator("project_id")
    @classmethod
    def _ids(cls, v: str) -> str:
        return _identifier(v)

    summary: str = Field(min_length=1, max_length=MAX_SUMMARY_CHARS)

    @field_validator("summary")
    @classmethod
    def _summary(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return _no_nul(v, "summary")


class Erased(BaseModel):
    """What an erasure removed; afterwards none of it is searchable, counted or paged."""

    project_id: str
    session_id: str | None = None
    sessions: int = Field(description="Sessions removed.")
    events: int = Field(description="Events removed.")
    documents: int = Field(description="Searchable documents (events and summaries) removed, with their vectors.")


class ProjectStats(BaseModel):
    project_id: str
    events: int
    sessions: int
    documents: int
    pending: int = Field(description="Documents not yet searchable by vector; 0 means fully indexed.")
