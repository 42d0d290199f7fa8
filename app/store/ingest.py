"""The write path: a validated batch of events becomes durable in one transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
import psycopg

from ctxsearch.domain.condense import event_importance
from ctxsearch.domain.documents import context_snippet, embed_text, event_body, event_title, search_title
from ctxsearch.domain.payload import compress_payload
from ctxsearch.embeddings import content_hash
from ctxsearch.schemas import EventIn
from ctxsearch.store.locks import hold_tier_lock

NOTIFY_CHANNEL = "ctxsearch_pending"

_STAGING_COLUMNS = (
    "seq",
    "project_id",
    "event_id",
    "session_id",
    "ts",
    "type",
    "tool",
    "files",
    "tokens",
    "content",
    "payload",
    "title",
    "search_title",
    "body",
    "importance",
    "content_hash",
    "context",
)

_CREATE_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS staging_events (
    seq integer, project_id text, event_id text, session_id text, ts timestamptz,
    type text, tool text, files text[], tokens integer, content text, payload bytea,
    title text, search_title text, body text, importance real, content_hash bytea, context text,
    embedding vector
) ON COMMIT DELETE ROWS
"""


# One statement: new events, their documents and their sessions. An event's id is held
# once, by its document (documents_event_uq): the document goes in first and existing
# (project_id, event_id) pairs are skipped, then only the events whose document was new,
# so a retried batch stores nothing twice. `condensed` marks bulk-loaded sessions as
# already condensed; ingested ones wait for condense.
def insert_sql(staging: str, *, embedding: bool = False, condensed: bool = False) -> str:
    emb_col, emb_val = (", embedding", ", s.embedding") if embedding else ("", "")
    if condensed:
        new_state, on_conflict = "false, now(), now()", ""
    else:
        new_state, on_conflict = "true, now(), NULL", ",\n        dirty = true, updated_at = now()"
    return f"""
WITH docs AS (
    INSERT INTO documents (project_id, kind, session_id, event_id, type, title, body, files, ts,
                           importance, content_hash, tsv, context{emb_col})
    SELECT s.project_id, 'event', s.session_id, s.event_id, s.type, s.title, s.body,
           coalesce(s.files, '{{}}'), s.ts, s.importance, s.content_hash,
           ctxsearch_event_tsv(s.search_title, s.body, s.context), s.context{emb_val}
    FROM {staging} s ORDER BY s.seq
    ON CONFLICT (project_id, event_id) WHERE kind = 'event' DO NOTHING
    RETURNING project_id, event_id
), ins AS (
    INSERT INTO events (project_id, event_id, session_id, ts, type, tool, files, tokens, content, payload)
    SELECT s.project_id, s.event_id, s.session_id, s.ts, s.type, s.tool, s.files, s.tokens, s.content, s.payload
    FROM {staging} s JOIN docs USING (project_id, event_id)
    ORDER BY s.seq
    RETURNING 1
), sess AS (
    INSERT INTO sessions AS t (project_id, session_id, started_at, ended_at, event_count, dirty,
                               updated_at, condensed_at)
    SELECT s.project_id, s.session_id, min(s.ts), max(s.ts), count(*), {new_state}
    FROM {staging} s JOIN docs USING (project_id, event_id)
    GROUP BY s.project_id, s.session_id
    ORDER BY s.project_id, s.session_id
    ON CONFLICT (project_id, session_id) DO UPDATE SET
        started_at  = least(t.started_at, excluded.started_at),
        ended_at    = greatest(t.ended_at, excluded.ended_at),
        event_count = t.event_count + excluded.event_count{on_conflict}
    RETURNING 1
)
SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM docs), (SELECT count(*) FROM sess)
"""


_INSERT = insert_sql("staging_events")
# Bulk loads (the bench): documents come with their vectors, sessions as already condensed.
_INSERT_EMBEDDED = insert_sql("staging_events", embedding=True, condensed=True)

# Binary COPY types, in _STAGING_COLUMNS order and then the embedding.
_STAGING_TYPES = (
    "integer",
    "text",
    "text",
    "text",
    "timestamptz",
    "text",
    "text",
    "text[]",
    "integer",
    "text",
    "bytea",
    "text",
    "text",
    "text",
    "real",
    "bytea",
    "text",
    "vector",
)


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int


def _staging_row(seq: int, e: EventIn, event_id: str, context: str | None) -> tuple:
    files = list(e.files)
    title = event_title(e.type.value, e.tool, files)
    body = event_body(e.content, e.tool, files)
    return (
        seq,
        e.project_id,
        event_id,
        e.session_id,
        e.timestamp,
        e.type.value,
        e.tool,
        files or None,
        e.tokens,
        e.content,
        compress_payload(e.payload),
        title,
        search_title(title, files, body),
        body,
        event_importance(e.type.value, e.content, files, e.payload),
        content_hash(embed_text(title, body, "event", context)),
        context,
    )


def _contexts(conn: psycopg.Connection, events: list[EventIn], context_chars: int) -> list[str | None]:
    """For each event, the end of the text of the event before it in its session: from this
    batch, or for a session's first event here, the latest stored one before it."""
    if context_chars <= 0:
        return [None] * len(events)
    order = sorted(
        range(len(events)), key=lambda i: (events[i].project_id, events[i].session_id, events[i].timestamp, i)
    )
    previous: dict[int, str | None] = {}
    firsts: list[int] = []
    for pos, i in enumerate(order):
        before = order[pos - 1] if pos else None
        same = before is not None and (events[before].project_id, events[before].session_id) == (
            events[i].project_id,
            events[i].session_id,
        )
        if same:
            previous[i] = event_body(events[before].content, events[before].tool, list(events[before].files))
        else:
            firsts.append(i)
    if firsts:
        rows = conn.execute(
            "SELECT (SELECT e.content FROM events e WHERE e.project_id = f.project_id AND e.session_id = f.session_id"
            "        AND e.ts <= f.ts ORDER BY e.ts DESC, e.event_id DESC LIMIT 1)"
            " FROM unnest(%s::text[], %s::text[], %s::timestamptz[]) WITH ORDINALITY AS f(project_id, session_id, ts, n)"
            " ORDER BY f.n",
            (
                [events[i].project_id for i in firsts],
                [events[i].session_id for i in firsts],
                [events[i].timestamp for i in firsts],
            ),
        ).fetchall()
        for i, (content,) in zip(firsts, rows, strict=True):
            previous[i] = content
    return [context_snippet(previous[i], context_chars) if previous.get(i) else None for i in range(len(events))]


def _unique(events: list[EventIn]) -> list[int]:
    """Indexes of the events to store: an id repeated within the batch counts once."""
    seen: set[tuple[str, str]] = set()
    kept: list[int] = []
    for i, e in enumerate(events):
        if e.id is not None:
            key = (e.project_id, e.id)
            if key in seen:
                continue
            seen.add(key)
        kept.append(i)
    return kept


def _write(
    conn: psycopg.Connection, events: list[EventIn], context_chars: int, vectors: np.ndarray | None = None
) -> int:
    """Stage the events by COPY and insert them in one transaction; returns how many were new.

    With vectors, documents are stored embedded and sessions as condensed (_INSERT_EMBEDDED).
    """
    keep = _unique(events)
    kept = [events[i] for i in keep]
    with conn.transaction():
        contexts = _contexts(conn, kept, context_chars)
        rows = [
            _staging_row(seq, e, e.id or uuid.uuid4().hex, ctx)
            for seq, (e, ctx) in enumerate(zip(kept, contexts, strict=True))
        ]
        conn.execute(_CREATE_STAGING)
        # Held shared so that a warm-tier rebuild can wait for in-flight ids to commit.
        hold_tier_lock(conn)
        columns = ", ".join(_STAGING_COLUMNS)
        with conn.cursor() as cur:
            if vectors is None:
                with cur.copy(f"COPY staging_events ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                inserted = cur.execute(_INSERT).fetchone()[0]
            else:
                # Binary: as text, formatting every float of the vectors costs more than the load.
                with cur.copy(f"COPY staging_events ({columns}, embedding) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(_STAGING_TYPES)
                    for row, vec in zip(rows, vectors[keep], strict=True):
                        copy.write_row((*row, vec))
                inserted = cur.execute(_INSERT_EMBEDDED).fetchone()[0]
        if inserted:
            conn.execute(f"NOTIFY {NOTIFY_CHANNEL}")
    return inserted


def ingest_events(*, conn: psycopg.Connection, events: list[EventIn], context_chars: int = 0) -> IngestResult:
    """Store a batch atomically; returns how many were new and how many were already stored.

    Commits before returning: the caller may acknowledge the batch once this returns.
    """
    inserted = _write(conn, events, context_chars)
    return IngestResult(accepted=inserted, duplicates=len(events) - inserted)


def load_embedded(
    *, conn: psycopg.Connection, events: list[EventIn], vectors: np.ndarray, context_chars: int = 0
) -> IngestResult:
    """Store a batch as ingest_events does, each document with its vector (row i of `vectors`)
    and its sessions as already condensed: for corpora with precomputed vectors and no
    summaries to write (the bench). Nothing is left pending for the worker."""
    if len(vectors) != len(events):
        raise ValueError(f"{len(events)} events but {len(vectors)} vectors")
    inserted = _write(conn, events, context_chars, np.asarray(vectors, dtype=np.float32))
    return IngestResult(accepted=inserted, duplicates=len(events) - inserted)
