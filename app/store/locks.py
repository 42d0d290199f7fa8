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


# The warm tier's views, in the order the swap (ctxsearch_swap_warm) and erasures take them.
WARM_VIEWS = ("warm_docs", "warm_text_stats", "warm_text_df", "warm_text_top")


def lock_warm_for_read(conn: psycopg.Connection) -> None:
    """Take the warm views (and so the generation they point at) shared, in the swap's order,
    before a search reads any of them. Call inside a transaction.

    A statement otherwise locks the relations it reads in the order its text names them: a
    search holding warm_text_top while waiting for warm_docs, behind a swap holding warm_docs
    and waiting for warm_text_top, is a deadlock. In one order, a search waits for the swap
    (or the swap for it) and neither holds what the other needs."""
    conn.execute("LOCK TABLE " + ", ".join(WARM_VIEWS) + " IN ACCESS SHARE MODE")
