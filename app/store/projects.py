"""Per-project counts and the embed progress of a project."""

from __future__ import annotations

import psycopg

from ctxsearch.store.queue import NOT_SKIPPED as _NOT_SKIPPED


def project_stats(*, conn: psycopg.Connection, project_id: str) -> tuple[int, int, int, int]:
    """(events, sessions, documents, pending): pending counts documents without a vector (but
    not those whose embedding failed for good: embed_failures, app/store/queue.py) and
    changed sessions, which owe a (re)written summary document."""
    return conn.execute(
        "SELECT (SELECT count(*) FROM events WHERE project_id = %(p)s),"
        " (SELECT count(*) FROM sessions WHERE project_id = %(p)s),"
        " (SELECT count(*) FROM documents WHERE project_id = %(p)s),"
        " (SELECT count(*) FROM documents d WHERE project_id = %(p)s AND embedding IS NULL AND " + _NOT_SKIPPED + ")"
        " + (SELECT count(*) FROM sessions WHERE project_id = %(p)s AND dirty)",
        {"p": project_id},
    ).fetchone()


def last_document_id(*, conn: psycopg.Connection, project_id: str) -> int | None:
    return conn.execute("SELECT max(id) FROM documents WHERE project_id = %s", (project_id,)).fetchone()[0]


def has_unembedded(*, conn: psycopg.Connection, project_id: str, upto: int) -> bool:
    """Whether a document of the project up to id `upto` still waits for its vector (one whose
    embedding failed for good waits no more)."""
    return conn.execute(
        "SELECT EXISTS (SELECT 1 FROM documents d WHERE project_id = %s AND id <= %s AND embedding IS NULL"
        " AND " + _NOT_SKIPPED + ")",
        (project_id, upto),
    ).fetchone()[0]
