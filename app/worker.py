"""The background worker: condense changed sessions, embed pending documents, rebuild the warm tier.

Runs as threads inside `ctxsearch serve`, or on its own as `ctxsearch worker`;
several workers can share one database (the queues are claimed with SKIP LOCKED).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import psycopg

from app.condense import condense_dirty
from app.config import Settings
from app.db import Database, DatabaseUnavailable
from app.documents import embed_text
from app.ingest import NOTIFY_CHANNEL
from embeddings import Embedder

log = logging.getLogger(__name__)


def embed_pending(*, conn: psycopg.Connection, embedder: Embedder, batch_size: int = 64) -> int:
    """Embed one batch of pending documents; returns how many got a vector."""
    with conn.transaction():
        rows = conn.execute(
            "SELECT project_id, id, kind, title, body, content_hash, context FROM documents"
            " WHERE embedding IS NULL ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
            (batch_size,),
        ).fetchall()
        if not rows:
            return 0
        hashes = list({bytes(r[5]) for r in rows})
        vectors = {
            bytes(h): v
            for h, v in conn.execute(
                "SELECT DISTINCT ON (content_hash) content_hash, embedding FROM documents"
                " WHERE content_hash = ANY(%s) AND embedding IS NOT NULL",
                (hashes,),
            )
        }
        todo: dict[bytes, str] = {}
        for r in rows:
            h = bytes(r[5])
            if h not in vectors and h not in todo:
                todo[h] = embed_text(r[3], r[4], r[2], r[6])
        if todo:
            for h, v in zip(todo, embedder.embed(list(todo.values()), batch_size=batch_size)):
                vectors[h] = v
        # One statement for the batch instead of one round trip per document.
        conn.execute(
            "UPDATE documents d SET embedding = u.embedding"
            " FROM unnest(%s::text[], %s::bigint[], %b::vector[]) AS u(project_id, id, embedding)"
            " WHERE d.project_id = u.project_id AND d.id = u.id",
            ([r[0] for r in rows], [r[1] for r in rows], [vectors[bytes(r[5])] for r in rows]),
        )
    return len(rows)


def queue_depth(*, conn: psycopg.Connection) -> dict[str, float]:
    """The work not yet done across all projects: pending documents, dirty sessions, and
    how long the oldest of them has waited (events by arrival, sessions by last change)."""
    pending, dirty, lag = conn.execute(
        "SELECT (SELECT count(*) FROM documents WHERE embedding IS NULL),"
        " (SELECT count(*) FROM sessions WHERE dirty),"
        " coalesce(extract(epoch FROM now() - least("
        "   (SELECT min(e.received_at) FROM documents d JOIN events e"
        "      ON e.project_id = d.project_id AND e.event_id = d.event_id"
        "    WHERE d.embedding IS NULL AND d.kind = 'event'),"
        "   (SELECT min(updated_at) FROM sessions WHERE dirty))), 0)"
    ).fetchone()
    return {"pending_documents": pending, "dirty_sessions": dirty, "freshness_lag_seconds": max(0.0, float(lag))}


@dataclass
class TierState:
    generation: int
    watermark: int
    warm_rows: int
    hot_rows: int
    age_s: float


def tier_state(conn: psycopg.Connection) -> TierState:
    gen, wm, warm, age = conn.execute(
        "SELECT generation, watermark, warm_rows, extract(epoch FROM now() - refreshed_at) FROM tier_state"
    ).fetchone()
    hot = conn.execute("SELECT count(*) FROM documents WHERE id > %s", (wm,)).fetchone()[0]
    return TierState(gen, wm, warm, hot, float(age))


def rebuild_warm(*, conn: psycopg.Connection, settings: Settings) -> tuple[int, int, int, int | None]:
    """Rebuild the warm materialized view and its indexes, and swap it in."""
    conn.execute("SET maintenance_work_mem = '1GB'")
    conn.execute("SELECT set_config('ctxsearch.project_index_min_rows', %s, false),"
                 " set_config('ctxsearch.text_top_docs', %s, false)",
                 (str(settings.project_index_min_rows), str(settings.text_top_docs)))
    return conn.execute(
        "SELECT * FROM ctxsearch_rebuild_warm(%s, %s)", (settings.vector_index, settings.ivfflat_min_rows)
    ).fetchone()


def needs_rebuild(state: TierState, settings: Settings) -> bool:
    if state.hot_rows == 0:
        return False
    threshold = max(settings.hot_max_docs, int(state.warm_rows * 0.05))
    return state.hot_rows >= threshold or state.age_s >= settings.refresh_interval_s


class Worker:
    def __init__(self, db: Database, embedder: Embedder, settings: Settings):
        self.db = db
        self.embedder = embedder
        self.settings = settings
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def run_once(self) -> tuple[int, int]:
        """One pass of condensing and embedding; returns (sessions condensed, documents embedded)."""
        s = self.settings
        with self.db.connection() as conn:
            condensed = condense_dirty(conn=conn, n_key_events=s.key_events, summary_max_chars=s.summary_max_chars)
            embedded = embed_pending(conn=conn, embedder=self.embedder, batch_size=s.embed_batch_size)
        return condensed, embedded

    def drain(self, timeout_s: float = 300.0) -> None:
        """Condense and embed until nothing is left (used by bulk loads and tests)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            condensed, embedded = self.run_once()
            if not condensed and not embedded:
                with self.db.connection() as conn:
                    dirty = conn.execute("SELECT count(*) FROM sessions WHERE dirty").fetchone()[0]
                if not dirty:
                    return
                time.sleep(0.1)

    def _queue_loop(self) -> None:
        listener: psycopg.Connection | None = None
        backoff = 0.5
        while not self._stop.is_set():
            try:
                if listener is None or listener.closed:
                    listener = psycopg.connect(self.db.url, autocommit=True)
                    listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
                condensed, embedded = self.run_once()
                backoff = 0.5
                if condensed or embedded:
                    continue
                for _ in listener.notifies(timeout=self.settings.worker_poll_s, stop_after=1):
                    pass
            except (DatabaseUnavailable, psycopg.OperationalError) as exc:
                log.warning("worker: database unavailable (%s); retrying in %.1fs", exc, backoff)
                if listener is not None:
                    listener.close()
                listener = None
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
            except Exception:
                log.exception("worker: unexpected error")
                self._stop.wait(1.0)
        if listener is not None:
            listener.close()

    def _tier_loop(self) -> None:
        while not self._stop.wait(min(5.0, self.settings.refresh_interval_s)):
            try:
                with self.db.connection() as conn:
                    if needs_rebuild(tier_state(conn), self.settings):
                        t0 = time.perf_counter()
                        gen, wm, rows, lists = rebuild_warm(conn=conn, settings=self.settings)
                        log.info("warm tier %s: %s documents up to id %s, lists=%s, %.1fs",
                                 gen, rows, wm, lists, time.perf_counter() - t0)
            except (DatabaseUnavailable, psycopg.OperationalError) as exc:
                log.warning("tier rebuild: database unavailable (%s)", exc)
            except psycopg.errors.LockNotAvailable:
                pass  # another worker is rebuilding
            except Exception:
                log.exception("tier rebuild failed")

    def start(self) -> None:
        for target, name in ((self._queue_loop, "ctxsearch-embed"), (self._tier_loop, "ctxsearch-tiers")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()
