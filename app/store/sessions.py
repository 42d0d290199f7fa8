"""Sessions: condensing them (metrics, key events, summary document) and reading them back."""

from __future__ import annotations

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ctxsearch.domain.condense import SessionEvent, extract_summary, key_events, score_events, session_metrics
from ctxsearch.domain.payload import decompress_payload
from ctxsearch.store.locks import hold_tier_lock
from ctxsearch.store.summaries import drop_summary_document, write_summary_document


def _load_events(conn: psycopg.Connection, project_id: str, session_id: str) -> list[SessionEvent]:
    rows = conn.execute(
        "SELECT event_id, ts, type, tool, coalesce(files, '{}'), tokens, content, payload FROM events"
        " WHERE project_id = %s AND session_id = %s ORDER BY ts, event_id",
        (project_id, session_id),
    ).fetchall()
    return [SessionEvent(r[0], r[1], r[2], r[3], list(r[4]), r[5], r[6], decompress_payload(r[7])) for r in rows]


def _condensed(events: list[SessionEvent], n_key_events: int, summary_max_chars: int) -> dict:
    """Metrics, key events and the extracted summary of a session's events (no writes)."""
    score_events(events)
    metrics = session_metrics(events)
    keys = key_events(events, n_key_events)
    summary = extract_summary(events, metrics, keys, summary_max_chars)
    key_json = [
        {
            "id": e.id,
            "timestamp": e.ts.isoformat(),
            "type": e.type,
            "tool": e.tool,
            "files": e.files,
            "content": e.content[:2000],
            "importance": e.importance,
        }
        for e in keys
    ]
    return {"metrics": metrics, "key_events": key_json, "summary": summary}


def condense_session(
    *, conn: psycopg.Connection, project_id: str, session_id: str, n_key_events: int = 10, summary_max_chars: int = 1500
) -> bool:
    """Recompute a session's metrics, key events and summary document. Call inside a transaction."""
    events = _load_events(conn, project_id, session_id)
    if not events:
        return False
    c = _condensed(events, n_key_events, summary_max_chars)
    metrics, key_json, summary = c["metrics"], c["key_events"], c["summary"]
    row = conn.execute(
        "UPDATE sessions SET metrics = %s, key_events = %s, summary = %s, started_at = %s, ended_at = %s,"
        " event_count = %s, dirty = false, condensed_at = now()"
        " WHERE project_id = %s AND session_id = %s RETURNING agent_summary",
        (Jsonb(metrics), Jsonb(key_json), summary, events[0].ts, events[-1].ts, len(events), project_id, session_id),
    ).fetchone()
    agent_summary = row[0] if row else None
    files = [f["path"] for f in metrics["top_files"][:20]]
    if agent_summary or len(events) > 1:
        write_summary_document(
            conn=conn,
            project_id=project_id,
            session_id=session_id,
            summary=agent_summary or summary,
            files=files,
            ts=events[-1].ts,
        )
    else:
        # A one-event session's extracted summary only restates its event: indexing it would
        # put the same answer in the results twice.
        drop_summary_document(conn=conn, project_id=project_id, session_id=session_id)
    return True


def condense_dirty(
    *,
    conn: psycopg.Connection,
    n_key_events: int = 10,
    summary_max_chars: int = 1500,
    batch: int = 20,
    settle_s: float = 0.3,
) -> int:
    """Condense sessions changed since their last condense; several workers may share the queue.

    One transaction per session, so that ingest into a session waits at most for its own condense.
    """
    done = 0
    for _ in range(batch):
        with conn.transaction():
            hold_tier_lock(conn)
            row = conn.execute(
                "SELECT project_id, session_id FROM sessions"
                " WHERE dirty AND updated_at < now() - make_interval(secs => %s)"
                " ORDER BY updated_at LIMIT 1 FOR UPDATE SKIP LOCKED",
                (settle_s,),
            ).fetchone()
            if row is None:
                break
            condense_session(
                conn=conn,
                project_id=row[0],
                session_id=row[1],
                n_key_events=n_key_events,
                summary_max_chars=summary_max_chars,
            )
            done += 1
    return done


_SESSION_COLUMNS = (
    "SELECT project_id, session_id, started_at, ended_at, event_count, metrics, key_events,"
    " summary, agent_summary, condensed_at, dirty FROM sessions"
)


def get_session(*, conn: psycopg.Connection, project_id: str, session_id: str) -> dict | None:
    """The session row as last condensed."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            _SESSION_COLUMNS + " WHERE project_id = %s AND session_id = %s", (project_id, session_id)
        ).fetchone()


def read_session(
    *, conn: psycopg.Connection, project_id: str, session_id: str, n_key_events: int = 10, summary_max_chars: int = 1500
) -> dict | None:
    """The session as it is now, without writing: a session changed since its last condense
    (or never condensed) has its metrics, key events and summary computed from its events in
    memory, so that a read can go to a replica and never waits for a lock."""
    row = get_session(conn=conn, project_id=project_id, session_id=session_id)
    if row is None or (row["condensed_at"] is not None and not row["dirty"]):
        return row
    events = _load_events(conn, project_id, session_id)
    if events:
        row.update(
            _condensed(events, n_key_events, summary_max_chars),
            started_at=events[0].ts,
            ended_at=events[-1].ts,
            event_count=len(events),
        )
    return row


def dirty_sessions(*, conn: psycopg.Connection) -> int:
    """How many sessions wait to be condensed, in every project."""
    return conn.execute("SELECT count(*) FROM sessions WHERE dirty").fetchone()[0]


def is_dirty(*, conn: psycopg.Connection, project_id: str, session_id: str) -> bool:
    r = conn.execute(
        "SELECT dirty FROM sessions WHERE project_id = %s AND session_id = %s", (project_id, session_id)
    ).fetchone()
    return bool(r and r[0])


def session_overviews(*, conn: psycopg.Connection, project_id: str, session_ids: list[str]) -> dict[str, dict]:
    """When each session ran and its summary (the agent's if it wrote one), by session id."""
    if not session_ids:
        return {}
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT session_id, started_at, ended_at, coalesce(agent_summary, summary) AS summary FROM sessions"
            " WHERE project_id = %s AND session_id = ANY(%s)",
            (project_id, session_ids),
        ).fetchall()
    return {r["session_id"]: r for r in rows}
