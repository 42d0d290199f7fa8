"""Session summary documents and agent-written summaries."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg

from ctxsearch.domain.documents import embed_text, search_title
from ctxsearch.embeddings import content_hash
from ctxsearch.store.locks import hold_tier_lock


def summary_title(session_id: str) -> str:
    return f"Session {session_id}"


def write_summary_document(
    *, conn: psycopg.Connection, project_id: str, session_id: str, summary: str, files: list[str], ts: datetime
) -> None:
    """Replace the session's summary document if its text changed (a new id puts it in the hot tier)."""
    title = summary_title(session_id)
    h = content_hash(embed_text(title, summary, "summary"))
    current = conn.execute(
        "SELECT content_hash FROM documents WHERE project_id = %s AND session_id = %s AND kind = 'summary'",
        (project_id, session_id),
    ).fetchone()
    if current and bytes(current[0]) == h:
        return
    hold_tier_lock(conn)
    conn.execute(
        "DELETE FROM documents WHERE project_id = %s AND session_id = %s AND kind = 'summary'",
        (project_id, session_id),
    )
    conn.execute(
        "INSERT INTO documents (project_id, kind, session_id, type, title, body, files, ts, importance,"
        " content_hash, tsv) VALUES (%s, 'summary', %s, 'summary', %s, %s, %s, %s, 1.0, %s,"
        " ctxsearch_doc_tsv(%s, %s))",
        (project_id, session_id, title, summary, files, ts, h, search_title(title, files, summary), summary),
    )
    conn.execute("NOTIFY ctxsearch_pending")


def drop_summary_document(*, conn: psycopg.Connection, project_id: str, session_id: str) -> None:
    conn.execute(
        "DELETE FROM documents WHERE project_id = %s AND session_id = %s AND kind = 'summary'",
        (project_id, session_id),
    )


def set_agent_summary(*, conn: psycopg.Connection, project_id: str, session_id: str, summary: str) -> None:
    """The agent's own summary wins over the extracted one, now and after later condensing."""
    with conn.transaction():
        hold_tier_lock(conn)
        row = conn.execute(
            "INSERT INTO sessions AS s (project_id, session_id, agent_summary, dirty, updated_at)"
            " VALUES (%s, %s, %s, false, now())"
            " ON CONFLICT (project_id, session_id) DO UPDATE SET agent_summary = excluded.agent_summary"
            " RETURNING ended_at, started_at, metrics",
            (project_id, session_id, summary),
        ).fetchone()
        ts = row[0] or row[1] or datetime.now(UTC)
        files = [f["path"] for f in (row[2] or {}).get("top_files", [])[:20]]
        write_summary_document(
            conn=conn, project_id=project_id, session_id=session_id, summary=summary, files=files, ts=ts
        )
