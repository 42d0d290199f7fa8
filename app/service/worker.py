"""The background worker: condense changed sessions, embed pending documents, rebuild the warm tier.

Runs as threads inside `ctxsearch serve`, or on its own as `ctxsearch worker`;
several workers can share one database (the queues are claimed with SKIP LOCKED).
"""

from __future__ import annotations

import logging
import threading
import time

import psycopg

from ctxsearch.config import Settings
from ctxsearch.embeddings import Embedder
from ctxsearch.store.db import Database, DatabaseUnavailable
from ctxsearch.store.ingest import NOTIFY_CHANNEL
from ctxsearch.store.queue import embed_pending
from ctxsearch.store.sessions import condense_dirty, dirty_sessions
from ctxsearch.store.tiers import (
    RebuildRunning,
    TierBusy,
    drop_old_generations,
    needs_rebuild,
    rebuild_warm,
    tier_state,
)

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, db: Database, embedder: Embedder, settings: Settings):
        self.db = db
        self.embedder = embedder
        self.settings = settings
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def run_once(self) -> tuple[int, int]:
        """One pass of condensing and embedding; returns (sessions condensed, documents handled:
        embedded, or failed and left to back off)."""
        s = self.settings
        with self.db.connection() as conn:
            condensed = condense_dirty(conn=conn, n_key_events=s.key_events, summary_max_chars=s.summary_max_chars)
            embedded = embed_pending(
                conn=conn,
                embedder=self.embedder,
                batch_size=s.embed_batch_size,
                max_attempts=s.embed_max_attempts,
                retry_base_s=s.embed_retry_base_s,
            )
        return condensed, embedded

    def drain(self, timeout_s: float = 300.0) -> None:
        """Condense and embed until nothing is left (used by bulk loads and tests)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            condensed, embedded = self.run_once()
            if not condensed and not embedded:
                with self.db.connection() as conn:
                    dirty = dirty_sessions(conn=conn)
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
                        log.info(
                            "warm tier %s: %s documents up to id %s, lists=%s, %.1fs",
                            gen,
                            rows,
                            wm,
                            lists,
                            time.perf_counter() - t0,
                        )
                    else:
                        # Generations a reader still held when the last rebuild tried to drop them.
                        drop_old_generations(conn)
            except (DatabaseUnavailable, psycopg.OperationalError) as exc:
                log.warning("tier rebuild: database unavailable (%s)", exc)
            except RebuildRunning:
                pass  # another worker is rebuilding
            except TierBusy as exc:
                log.warning("tier rebuild: %s; retried on the next pass", exc)
            except Exception:
                log.exception("tier rebuild failed")

    def start(self) -> None:
        self._stop.clear()  # a stopped worker can be started again
        for target, name in ((self._queue_loop, "ctxsearch-embed"), (self._tier_loop, "ctxsearch-tiers")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def died(self) -> str | None:
        """Which of the worker's threads ended while it should run (None when all run, or none was started)."""
        if self._stop.is_set():
            return None
        dead = [t.name for t in self._threads if not t.is_alive()]
        return f"worker threads stopped: {', '.join(dead)}" if dead else None

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()
