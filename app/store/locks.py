"""Lock keys and the order in which writers and the rebuild take them."""

from __future__ import annotations

import psycopg


def hold_tier_lock(conn: psycopg.Connection) -> None:
    """Take the tier lock shared, as every writer of documents does.

    Take it first in a transaction, before any row lock: a rebuild waiting for it
    exclusively queues later takers, and a writer that already held a session row
    would then close a cycle with an ingest holding the lock and waiting for that row.
    """
    conn.execute("SELECT pg_advisory_xact_lock_shared(ctxsearch_tier_lock_key())")
