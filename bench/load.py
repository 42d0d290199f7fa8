"""Bulk load for benchmarks: events, their documents with vectors and their sessions, by COPY."""

from __future__ import annotations

import numpy as np
import psycopg

from ctxsearch.store.ingest import _STAGING_COLUMNS as _COLUMNS
from ctxsearch.store.ingest import insert_sql

_TYPES = ["integer", "text", "text", "text", "timestamptz", "text", "text", "text[]", "integer", "text", "bytea",
          "text", "text", "text", "real", "bytea", "text", "vector"]

_LOAD = insert_sql("bulk_events", embedding=True, condensed=True)


def copy_events(*, conn: psycopg.Connection, rows: list[tuple], vectors: np.ndarray) -> None:
    """Store staged event rows (ctxsearch.store.ingest._staging_row) with their vectors in one transaction.

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
