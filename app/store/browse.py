"""Reading what is stored, for people and agents: the projects, a project's sessions page by
page, one event in full, and the events around one in a session's order."""

from __future__ import annotations

from datetime import datetime

import psycopg
from psycopg.rows import dict_row

from ctxsearch.domain.payload import decompress_payload


def list_projects(*, conn: psycopg.Connection, only: frozenset[str] | None = None) -> list[dict]:
    """Every project with sessions (or only those in `only`), most recently active first:
    session and event counts, first and last activity."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT project_id, count(*) AS sessions, coalesce(sum(event_count), 0)::bigint AS events,"
            " min(started_at) AS first_activity, max(ended_at) AS last_activity FROM sessions"
            " WHERE %(only)s::text[] IS NULL OR project_id = ANY(%(only)s::text[])"
            " GROUP BY project_id ORDER BY max(ended_at) DESC NULLS LAST, project_id",
            {"only": sorted(only) if only is not None else None},
        ).fetchall()


def project_exists(*, conn: psycopg.Connection, project_id: str) -> bool:
    return conn.execute("SELECT EXISTS (SELECT 1 FROM sessions WHERE project_id = %s)", (project_id,)).fetchone()[0]


def sessions_page(
    *,
    conn: psycopg.Connection,
    project_id: str,
    limit: int,
    after: tuple[datetime | None, str] | None = None,
    exclude: str | None = None,
) -> list[dict]:
    """A page of the project's sessions, most recent first (by last event, then id), after the
    keyset `after` = (ended_at, session_id) of the previous page's last session; each with its
    summary (the agent's if any) and how many of its events are errors."""
    keyset = ""
    params: dict = {"p": project_id, "x": exclude, "n": limit}
    if after is not None:
        params["e"], params["s"] = after
        # ended_at DESC NULLS LAST, session_id ASC: rows after (e, s) in that order.
        keyset = (
            " AND (CASE WHEN %(e)s::timestamptz IS NULL THEN s.ended_at IS NULL AND s.session_id > %(s)s"
            " ELSE s.ended_at < %(e)s OR s.ended_at IS NULL OR (s.ended_at = %(e)s AND s.session_id > %(s)s) END)"
        )
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT s.project_id, s.session_id, s.started_at, s.ended_at, s.event_count,"
            " coalesce(s.agent_summary, s.summary) AS summary,"
            " (SELECT count(*) FROM events e WHERE e.project_id = s.project_id AND e.session_id = s.session_id"
            "   AND e.type = 'error') AS errors"
            " FROM sessions s WHERE s.project_id = %(p)s AND s.session_id IS DISTINCT FROM %(x)s" + keyset + ""
            " ORDER BY s.ended_at DESC NULLS LAST, s.session_id LIMIT %(n)s",
            params,
        ).fetchall()


_EVENT_COLUMNS = (
    "SELECT project_id, event_id, session_id, ts, type, tool, coalesce(files, '{}') AS files, tokens,"
    " content, payload, received_at FROM events"
)


def _full(row: dict) -> dict:
    row["payload"] = decompress_payload(row["payload"])
    row["files"] = list(row["files"])
    return row


def get_events(*, conn: psycopg.Connection, project_id: str, event_ids: list[str]) -> list[dict]:
    """The events with these ids, in full (payload decompressed), in the order asked; ids the
    project does not have are left out."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            _EVENT_COLUMNS + " WHERE project_id = %s AND event_id = ANY(%s)", (project_id, event_ids)
        ).fetchall()
    by_id = {r["event_id"]: _full(r) for r in rows}
    return [by_id[i] for i in dict.fromkeys(event_ids) if i in by_id]


def timeline(
    *,
    conn: psycopg.Connection,
    project_id: str,
    session_id: str,
    around: str | None,
    before: int,
    after: int,
) -> tuple[list[dict], int, int | None] | None:
    """The session's events in order (time, then id) around the event `around`: up to `before`
    ahead of it, it, and up to `after` behind it; without `around`, the first `after` + 1 events.

    Returns (events, the session's event count, the 0-based position of the first one returned),
    or None when the session has no event `around` (or no events at all)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "WITH ordered AS ("
            "  SELECT project_id, event_id, session_id, ts, type, tool, coalesce(files, '{}') AS files, tokens,"
            "  content, payload, received_at, row_number() OVER (ORDER BY ts, event_id) - 1 AS n,"
            "  count(*) OVER () AS total"
            "  FROM events WHERE project_id = %(p)s AND session_id = %(s)s),"
            " centre AS (SELECT coalesce((SELECT n FROM ordered WHERE event_id = %(a)s::text),"
            "   CASE WHEN %(a)s::text IS NULL THEN 0 END) AS c)"
            " SELECT o.* FROM ordered o CROSS JOIN centre"
            " WHERE centre.c IS NOT NULL AND o.n BETWEEN centre.c - %(b)s AND centre.c + %(f)s ORDER BY o.n",
            {"p": project_id, "s": session_id, "a": around, "b": 0 if around is None else before, "f": after},
        ).fetchall()
    if not rows:
        return None
    total, first = rows[0]["total"], rows[0]["n"]
    for r in rows:
        del r["n"], r["total"]
        _full(r)
    return rows, total, first
