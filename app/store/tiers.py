"""The warm tier: its state, when it is due for a rebuild, and the rebuild itself.

A rebuild runs in steps, each in a transaction of its own (sql/repeatable/R__tiers.sql), so
that no search or ingest waits on it:

1. watermark: an instant under the writers' lock (lock_timeout, retried);
2. build: generation n+1's table, indexes and text statistics: long, but it locks nothing
   that searches or writers take;
3. swap: the views point at n+1, in a short transaction under lock_timeout, retried with
   back-off while a reader holds the old generation (a new search queues behind an attempt
   for at most lock_timeout);
4. drop: older generations, each under lock_timeout; one that a reader still holds is left
   for a later rebuild or the worker's cleanup pass (drop_old_generations).

Nothing outlives the call on the connection (a pooled one, typically): settings are SET LOCAL
and the lock that keeps rebuilds one at a time is released before it returns.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import psycopg

from ctxsearch.config import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

# Lock waits, each bounded so that what queues behind a step waits at most this long.
WATERMARK_LOCK_TIMEOUT_MS = 500  # writers queue behind the watermark's exclusive lock
SWAP_LOCK_TIMEOUT_MS = 150  # searches queue behind the swap's ACCESS EXCLUSIVE view locks
DROP_LOCK_TIMEOUT_MS = 100
# How long a rebuild keeps retrying a step whose locks are taken (a long reader of the old
# generation) before it gives up and drops what it built.
LOCK_WAIT_S = 300.0


class RebuildRunning(RuntimeError):
    """Another rebuild holds the rebuild lock."""


class TierBusy(RuntimeError):
    """A rebuild step could not get its locks within the time allowed."""


@dataclass
class TierState:
    generation: int
    watermark: int
    warm_rows: int
    hot_rows: int
    age_s: float
    stale: bool = False  # built with an older layout (ctxsearch_warm_stale, sql/0002_warm_version.sql)


def tier_state(conn: psycopg.Connection) -> TierState:
    gen, wm, warm, age, stale = conn.execute(
        "SELECT generation, watermark, warm_rows, extract(epoch FROM now() - refreshed_at), ctxsearch_warm_stale()"
        " FROM tier_state"
    ).fetchone()
    hot = conn.execute("SELECT count(*) FROM documents WHERE id > %s", (wm,)).fetchone()[0]
    return TierState(gen, wm, warm, hot, float(age), bool(stale))


def _locked_step(conn: psycopg.Connection, timeout_ms: int, step: Callable[[], T], *, deadline: float, what: str) -> T:
    """Run step in a transaction under lock_timeout; retry with jittered back-off while its locks are taken."""
    pause = 0.02
    while True:
        try:
            with conn.transaction():
                conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{timeout_ms}ms",))
                return step()
        except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TierBusy(f"warm tier {what}: its locks were not free within the time allowed") from None
            time.sleep(min(left, pause * random.uniform(0.5, 1.5)))
            pause = min(pause * 2, 2.0)


def rebuild_warm(
    *, conn: psycopg.Connection, settings: Settings, lock_wait_s: float = LOCK_WAIT_S
) -> tuple[int, int, int, int | None]:
    """Build the next warm generation and swap it in; returns (generation, watermark, rows, lists).

    conn must be an idle autocommit connection: each step commits on its own. Raises
    RebuildRunning when another rebuild runs, TierBusy when the swap found no gap between
    readers of the old generation within lock_wait_s.
    """
    if not conn.autocommit or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise ValueError("rebuild_warm needs an idle autocommit connection: each step commits on its own")
    # Session-level, as the rebuild spans transactions; released below whatever happens
    # (and by the pool's reset, should the release itself fail).
    if not conn.execute("SELECT pg_try_advisory_lock(ctxsearch_rebuild_lock_key())").fetchone()[0]:
        raise RebuildRunning("a warm tier rebuild is already running")
    try:
        return _rebuild(conn, settings, time.monotonic() + lock_wait_s)
    finally:
        if not conn.closed and not conn.broken:
            conn.execute("SELECT pg_advisory_unlock(ctxsearch_rebuild_lock_key())")


def _rebuild(conn: psycopg.Connection, s: Settings, deadline: float) -> tuple[int, int, int, int | None]:
    t0 = time.perf_counter()
    # Under the rebuild lock, a generation above the current one is what a failed rebuild left.
    drop_old_generations(conn, newer=True)
    wm, epoch = _locked_step(
        conn,
        WATERMARK_LOCK_TIMEOUT_MS,
        lambda: conn.execute("SELECT * FROM ctxsearch_warm_watermark()").fetchone(),
        deadline=deadline,
        what="watermark",
    )
    gen, version = conn.execute(
        "SELECT greatest(coalesce(max(g), 0), (SELECT generation FROM tier_state)) + 1, ctxsearch_warm_version()"
        " FROM ctxsearch_warm_generations() AS g"
    ).fetchone()
    with conn.transaction():
        # Index builds sort in memory. SET LOCAL: the connection goes back to its pool as it came.
        conn.execute("SET LOCAL maintenance_work_mem = '1GB'")
        rows, lists, kind = conn.execute(
            "SELECT * FROM ctxsearch_build_warm(%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                gen,
                wm,
                s.vector_index,
                s.ivfflat_min_rows,
                s.project_index_min_rows,
                s.text_top_docs,
                float(s.bm25_k1),
                float(s.bm25_b),
                float(s.text_context_weight),
            ),
        ).fetchone()
    try:
        rows = _swap(conn, gen, wm, epoch, rows, kind, lists, t0, version, deadline)
    except BaseException:
        _drop_quietly(conn, gen)
        raise
    drop_old_generations(conn)  # the one just replaced, unless a reader still holds it
    return gen, wm, rows, lists


def _swap(
    conn: psycopg.Connection,
    gen: int,
    wm: int,
    epoch: int,
    rows: int,
    kind: str | None,
    lists: int | None,
    t0: float,
    version: int,
    deadline: float,
) -> int:
    """Swap generation gen in; returns its row count (less what reconciling took out)."""
    while True:
        now_epoch = conn.execute("SELECT erase_epoch FROM tier_state").fetchone()[0]
        if now_epoch != epoch:
            # An erasure committed during the build, whose snapshot may hold its rows.
            with conn.transaction():
                rows -= conn.execute("SELECT ctxsearch_warm_reconcile(%s)", (gen,)).fetchone()[0]
            epoch = now_epoch
        args = (gen, wm, epoch, rows, kind, lists, (time.perf_counter() - t0) * 1000, version)
        if _locked_step(
            conn,
            SWAP_LOCK_TIMEOUT_MS,
            lambda a=args: conn.execute("SELECT ctxsearch_swap_warm(%s, %s, %s, %s, %s, %s, %s, %s)", a).fetchone()[0],
            deadline=deadline,
            what="swap",
        ):
            return rows


def _drop_quietly(conn: psycopg.Connection, gen: int) -> None:
    try:
        if not conn.closed and not conn.broken:
            conn.execute("SELECT ctxsearch_drop_warm_generation(%s)", (gen,))
    except psycopg.Error as exc:
        log.warning("warm generation %s: not dropped after a failed rebuild (%s); the next rebuild drops it", gen, exc)


def drop_old_generations(conn: psycopg.Connection, *, newer: bool = False) -> list[int]:
    """Drop the generations older than the current one that no reader holds; returns those dropped.

    With newer, also those above it: only under the rebuild lock (a rebuild's own generation
    exists before it is swapped in).
    """
    current = conn.execute("SELECT generation FROM tier_state").fetchone()[0]
    dropped: list[int] = []
    for (g,) in conn.execute("SELECT ctxsearch_warm_generations()").fetchall():
        if g == current or (g > current and not newer):
            continue
        try:
            with conn.transaction():
                conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{DROP_LOCK_TIMEOUT_MS}ms",))
                conn.execute("SELECT ctxsearch_drop_warm_generation(%s)", (g,))
            dropped.append(g)
        except psycopg.errors.LockNotAvailable:
            log.info("warm generation %s is still being read; a later pass drops it", g)
    return dropped


def needs_rebuild(state: TierState, settings: Settings) -> bool:
    if state.stale:
        return True  # a migration changed what a generation holds; rebuilt here, not under its lock
    if state.hot_rows == 0:
        return False
    threshold = max(settings.hot_max_docs, int(state.warm_rows * 0.05))
    return state.hot_rows >= threshold or state.age_s >= settings.refresh_interval_s
