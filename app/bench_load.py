"""Bulk load for benchmarks: events, their documents with vectors and their sessions, by COPY."""

from __future__ import annotations

import numpy as np
import psycopg

from app.ingest import _STAGING_COLUMNS as _COLUMNS

_TYPES = ["integer", "text", "text", "text", "timestamptz", "text", "text", "text[]", "integer", "text", "bytea",
          "text", "text", "text", "real", "bytea", "text", "vector"]

_LOAD = """
WITH ins AS (
    INSERT INTO events (project_id, event_id, session_id, ts, type, tool, files, tokens, content, payload)
    SELECT project_id, event_id, session_id, ts, type, tool, files, tokens, content, payload
    FROM bulk_events ORDER BY seq
    ON CONFLICT (project_id, event_id) DO NOTHING
    RETURNING project_id, event_id
), docs AS (
    INSERT INTO documents (project_id, kind, session_id, event_id, type, title, body, files, ts,
                           importance, content_hash, embedding, tsv, context)
    SELECT s.project_id, 'event', s.session_id, s.event_id, s.type, s.title, s.body,
           coalesce(s.files, '{}'), s.ts, s.importance, s.content_hash, s.embedding,
           ctxsearch_event_tsv(s.search_title, s.body, s.context), s.context
    FROM bulk_events s JOIN ins USING (project_id, event_id)
    ORDER BY s.seq
    RETURNING 1
)
INSERT INTO sessions AS t (project_id, session_id, started_at, ended_at, event_count, dirty, condensed_at)
SELECT s.project_id, s.session_id, min(s.ts), max(s.ts), count(*), false, now()
FROM bulk_events s JOIN ins USING (project_id, event_id)
GROUP BY s.project_id, s.session_id
ON CONFLICT (project_id, session_id) DO UPDATE SET
    started_at  = least(t.started_at, excluded.started_at),
    ended_at    = greatest(t.ended_at, excluded.ended_at),
    event_count = t.event_count + excluded.event_count
"""


def copy_events(*, conn: psycopg.Connection, rows: list[tuple], vectors: np.ndarray) -> None:
    """Store staged event rows (app.ingest._staging_row) with their vectors in one transaction.

    Sessions are stored as already condensed: the corpus has no summaries to write.
    """
    with conn.transaction():
        conn.execute(
            "CREATE TEMP TABLE bulk_events (seq integer, project_id text, event_id text, session_id text,"
            " ts timestamptz, type text, tool text, files text[], tokens integer, content text, payload bytea,"
            " title text, search_title text, body text, importance real, content_hash bytea, context text,"
            " embedding vector(384)) ON COMMIT DROP")
        conn.execute("SELECT pg_advisory_xact_lock_shared(ctxsearch_tier_lock_key())")
        with conn.cursor() as cur:
            with cur.copy(f"COPY bulk_events ({', '.join(_COLUMNS)}, embedding) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(_TYPES)
                for row, vec in zip(rows, vectors):
                    copy.write_row((*row, vec))
            cur.execute(_LOAD)
