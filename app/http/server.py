"""The HTTP server `ctxsearch serve` runs: uvicorn with h11, and bounds on what one client
may hold of it.

- Headers: at most `max_header_bytes` (h11 refuses more with 400 as they arrive, so a huge
  header costs neither memory nor parse time), and all of them within `header_timeout_s`
  of the connection's start or of the previous response (a client trickling bytes is cut off).
- Connections: at most `max_connections` open at once; beyond, a request gets 503.
- Bodies: the security middleware cuts off a body that stalls (`body_timeout_s`) with 408.
"""

from __future__ import annotations

import asyncio
import functools
import logging

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from ctxsearch.config import Settings

log = logging.getLogger(__name__)


class GuardedH11Protocol(H11Protocol):
    """h11's protocol with a deadline for each request's head (request line and headers)."""

    header_timeout_s: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._await_head()

    def _await_head(self) -> None:
        self._stop_head_timer()
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_too_slow)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            log.info("closing a connection whose request head took over %g s", self.header_timeout_s)
            self.transport.close()

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and not self.cycle.response_complete:
            self._stop_head_timer()  # the head is in: the request runs

    def on_response_complete(self) -> None:
        self._await_head()  # the next request's head, if one comes before the keep-alive ends
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)


@functools.cache
def guarded_protocol(header_timeout_s: float) -> type[GuardedH11Protocol]:
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"header_timeout_s": header_timeout_s})


def server_config(app, settings: Settings, **overrides) -> uvicorn.Config:
    """The uvicorn configuration of `ctxsearch serve` (and of the tests that serve the app)."""
    options = dict(
        host=settings.host,
        port=settings.port,
        http=guarded_protocol(settings.header_timeout_s),
        h11_max_incomplete_event_size=settings.max_header_bytes,
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=5,
        log_level=settings.log_level.lower(),
        log_config=None,
        access_log=False,
    )
    return uvicorn.Config(app, **{**options, **overrides})
