"""Self-healing of the embedded database: a watchdog that starts PostgreSQL again when its
postmaster dies, and says when the process cannot recover by itself (for /healthz)."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from ctxsearch.store.db import Database, embedded_running, restart_embedded

log = logging.getLogger(__name__)

# How often the watchdog looks at the postmaster.
CHECK_INTERVAL_S = 0.5


class EmbeddedWatchdog:
    """Watches the embedded server of `data_dir` and restarts it when it dies."""

    def __init__(self, db: Database, data_dir: Path, *, give_up_s: float, interval_s: float = CHECK_INTERVAL_S):
        self.db = db
        self.data_dir = data_dir
        self.give_up_s = give_up_s  # restarts failing this long: the process cannot recover
        self.interval_s = interval_s
        self.restarts = 0
        self.failing_since: float | None = None  # monotonic time restarts began to fail
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ctxsearch-embedded-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(15)

    def check(self) -> bool:
        """One look; restarts the server if it is down. True when it is running afterwards."""
        if embedded_running(self.data_dir):
            self.failing_since = None
            return True
        log.error("the embedded PostgreSQL in %s is not running: starting it again", self.data_dir)
        t0 = time.monotonic()
        try:
            restart_embedded(self.data_dir)
        except Exception as exc:  # pg_ctl failed or timed out: try again on the next look
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.failing_since = self.failing_since or t0
            log.error("the embedded PostgreSQL did not start: %s", self.last_error)
            return False
        self.restarts += 1
        self.failing_since = None
        self.db.pool.check()  # drop the connections to the dead server now, not one by one
        log.warning("the embedded PostgreSQL is running again after %.1f s", time.monotonic() - t0)
        return True

    def unrecoverable(self) -> str | None:
        """Why the process cannot heal itself, if it cannot: the watchdog died, or restarts
        have failed for give_up_s (an orchestrator should then restart the process)."""
        if self._thread.ident is not None and not self._thread.is_alive() and not self._stop.is_set():
            return "the embedded database's watchdog stopped"
        if self.failing_since is not None and time.monotonic() - self.failing_since > self.give_up_s:
            return f"the embedded PostgreSQL has failed to start for {self.give_up_s:g} s: {self.last_error}"
        return None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception:
                log.exception("embedded database watchdog")
