"""Erasure: a session or a whole project out of every table, both tiers included.

Each erasure is one transaction: its events, documents (vectors, tsvectors), session rows
(summaries, key events), embed failures, and what the warm generations derived from them:
their rows and their share of the BM25 statistics and top lists (ctxsearch_warm_erase,
sql/repeatable/R__tiers.sql). Cheap for one session of a big project: every step is an
index lookup by session or by document id, and the statistics change by the erased
documents' lexemes only; no rebuild.

Locks, in the writers' order (app/store/locks.py): the tier lock shared first, then the
session rows (sorted, as ingest takes them), then documents, then the tier_state row (which
pins the current generation against a swap), then the generations' tables.
"""

from __future__ import annotations

import psycopg

from ctxsearch.store.locks import hold_tier_lock


def erase_session(*, conn: psycopg.Connection, project_id: str, session_id: str) -> dict[str, int]:
    """Remove a session everywhere; returns how many rows of each kind went."""
    with conn.transaction():
        hold_tier_lock(conn)
        # The session row first: an ingest or condense of this session in flight commits before
        # this goes on, so the statements below see (and remove) what it wrote.
        sessions = conn.execute(
            "DELETE FROM sessions WHERE project_id = %s AND session_id = %s", (project_id, session_id)
        ).rowcount
        event_ids = [
            r[0]
            for r in conn.execute(
                "DELETE FROM events WHERE project_id = %s AND session_id = %s RETURNING event_id",
                (project_id, session_id),
            )
        ]
        # By the unique indexes: an event's document by its event id, the session's summary by session.
        doc_ids = [
            r[0]
            for r in conn.execute(
                "DELETE FROM documents WHERE project_id = %s AND kind = 'event' AND event_id = ANY(%s::text[]) RETURNING id",
                (project_id, event_ids),
            )
        ]
        doc_ids += [
            r[0]
            for r in conn.execute(
                "DELETE FROM documents WHERE project_id = %s AND kind = 'summary' AND session_id = %s RETURNING id",
                (project_id, session_id),
            )
        ]
        conn.execute(
            "DELETE FROM embed_failures WHERE project_id = %s AND id = ANY(%s::bigint[])", (project_id, doc_ids)
        )
        warm = conn.execute(
            "SELECT ctxsearch_warm_erase(%s, %s, %s::bigint[])", (project_id, session_id, doc_ids)
        ).fetchone()[0]
    return {"sessions": sessions, "events": len(event_ids), "documents": len(doc_ids), "warm_documents": warm}


def erase_project(*, conn: psycopg.Connection, project_id: str) -> dict[str, int]:
    """Remove a project everywhere; returns how many rows of each kind went."""
    with conn.transaction():
        hold_tier_lock(conn)
        # Session rows locked in ingest's order (sorted), so that a concurrent ingest into the
        # project waits for this erasure rather than deadlocking with it.
        conn.execute("SELECT 1 FROM sessions WHERE project_id = %s ORDER BY session_id FOR UPDATE", (project_id,))
        sessions = conn.execute("DELETE FROM sessions WHERE project_id = %s", (project_id,)).rowcount
        events = conn.execute("DELETE FROM events WHERE project_id = %s", (project_id,)).rowcount
        documents = conn.execute("DELETE FROM documents WHERE project_id = %s", (project_id,)).rowcount
        conn.execute("DELETE FROM embed_failures WHERE project_id = %s", (project_id,))
        warm = conn.execute("SELECT ctxsearch_warm_erase(%s, NULL, NULL)", (project_id,)).fetchone()[0]
    return {"sessions": sessions, "events": events, "documents": documents, "warm_documents": warm}
