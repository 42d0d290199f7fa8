"""A session's activity over time, for the web page's chart: its tool calls and errors
counted in equal slices of the time between its first and its last event."""

from __future__ import annotations

from datetime import datetime

import psycopg

# Each event falls in one of n slices of [first, last]; the last event lands in the last slice.
_BUCKETS = """
WITH span AS (
    SELECT min(ts) AS lo, max(ts) AS hi FROM events WHERE project_id = %(p)s AND session_id = %(s)s
)
SELECT span.lo, span.hi, b.bucket, b.tool_calls, b.errors
FROM span LEFT JOIN LATERAL (
    SELECT least(%(n)s - 1, CASE WHEN span.hi = span.lo THEN 0
                 ELSE floor(%(n)s * extract(epoch FROM e.ts - span.lo) / extract(epoch FROM span.hi - span.lo))::int
                 END) AS bucket,
           count(*) FILTER (WHERE e.type = 'tool_call') AS tool_calls,
           count(*) FILTER (WHERE e.type = 'error') AS errors
    FROM events e WHERE e.project_id = %(p)s AND e.session_id = %(s)s
    GROUP BY 1
) b ON true
ORDER BY b.bucket
"""


def session_activity(*, conn: psycopg.Connection, project_id: str, session_id: str, buckets: int = 24) -> dict | None:
    """{start, end, slice_s, buckets: [{start, tool_calls, errors}] * n}, or None when the
    session has no events. A session whose events share one instant has a single slice."""
    rows = conn.execute(_BUCKETS, {"p": project_id, "s": session_id, "n": buckets}).fetchall()
    if not rows or rows[0][0] is None:
        return None
    lo: datetime = rows[0][0]
    hi: datetime = rows[0][1]
    n = 1 if hi == lo else buckets
    width = (hi - lo) / n
    counts = {r[2]: (r[3], r[4]) for r in rows if r[2] is not None}
    return {
        "start": lo,
        "end": hi,
        "slice_s": width.total_seconds(),
        "buckets": [
            {
                "start": lo + width * i if n > 1 else lo,
                "tool_calls": counts.get(i, (0, 0))[0],
                "errors": counts.get(i, (0, 0))[1],
            }
            for i in range(n)
        ],
    }
