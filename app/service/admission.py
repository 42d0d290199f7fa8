"""Bounds on concurrent work: beyond them a request is refused at once (503 with Retry-After),
not queued, so that the requests admitted keep their latency under overload."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# The setting that bounds each kind of work, named in the refusal.
SETTINGS = {"search": "max_concurrent_searches", "ingest": "max_concurrent_ingests"}


# The kinds of work the current request already holds a slot for (taken at the HTTP edge,
# before the body is read): the service's own check then passes, rather than taking a second.
_held: ContextVar[frozenset[str]] = ContextVar("ctxsearch_admitted", default=frozenset())


class Overloaded(RuntimeError):
    """As many requests of a kind run as the service allows; answered 503 with Retry-After."""

    retry_after_s = 1

    def __init__(self, kind: str, limit: int):
        super().__init__(
            f"service busy: {limit} {kind} requests are already running ({SETTINGS[kind]}); "
            f"retry in {self.retry_after_s} s"
        )
        self.kind = kind


class Admission:
    """A bound per kind of work (0: none). Thread-safe; never waits."""

    def __init__(self, limits: dict[str, int]):
        self.limits = {kind: n for kind, n in limits.items() if n > 0}
        self._slots = {kind: threading.BoundedSemaphore(n) for kind, n in self.limits.items()}
        self.shed: Counter[str] = Counter()  # refusals by kind, for /metrics
        self._lock = threading.Lock()

    @contextmanager
    def slot(self, kind: str) -> Iterator[None]:
        """Run the body in one of the kind's slots; Overloaded at once when none is free."""
        slots = self._slots.get(kind)
        if slots is None or kind in _held.get():
            yield
            return
        if not slots.acquire(blocking=False):
            with self._lock:
                self.shed[kind] += 1
            raise Overloaded(kind, self.limits[kind])
        token = _held.set(_held.get() | {kind})
        try:
            yield
        finally:
            _held.reset(token)
            slots.release()
