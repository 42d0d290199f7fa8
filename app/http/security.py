"""The HTTP side of security: bearer keys, rate limits and the request body bound.

`SecurityMiddleware` covers every path under `/v1`, `/mcp` and `/ui` (the web page's views): it checks the bearer
key (401), the key's rate (429) and the body size (413), and records the caller's
`Principal` in a context variable. Project checks then go through `check_project`,
which the HTTP routes (one dependency) and the MCP tools call alike.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from starlette.exceptions import HTTPException

from ctxsearch.auth import ANONYMOUS, KeyRing, check_project, current_principal
from ctxsearch.config import Settings

_MAX_BUCKETS = 100_000

PROTECTED_PREFIXES = ("/v1", "/mcp", "/ui")  # /ui: the web page's views


class RateLimiter:
    """A token bucket per caller, in this process only: behind several API instances
    each one limits on its own, so the effective rate is the sum (use a shared limiter,
    e.g. at the proxy, when that matters)."""

    def __init__(self, rate_per_s: float, burst: int):
        self.rate = rate_per_s
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, bucket: str, *, take: bool = True) -> float:
        """Take one token (with take=False, only look); returns 0 when allowed, else the
        seconds until one is available."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(bucket, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                if take:
                    self._buckets[bucket] = (tokens - 1.0, now)
                elif bucket in self._buckets:
                    self._buckets[bucket] = (tokens, now)
                return 0.0
            self._buckets[bucket] = (tokens, now)
            if len(self._buckets) > _MAX_BUCKETS:
                self._forget_full(now)
            return (1.0 - tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        # Buckets that have refilled hold nothing worth keeping: many callers cost no memory.
        full = [
            b for b, (t, last) in self._buckets.items() if min(self.burst, t + (now - last) * self.rate) >= self.burst
        ]
        for b in full:
            del self._buckets[b]


def project_ids_in_body(data: Any) -> set[str]:
    """Project ids a JSON body names: its own `project_id` and each event's."""
    found: set[str] = set()
    if not isinstance(data, dict):
        return found
    if isinstance(data.get("project_id"), str):
        found.add(data["project_id"])
    events = data.get("events")
    if isinstance(events, list):
        found.update(e["project_id"] for e in events if isinstance(e, dict) and isinstance(e.get("project_id"), str))
    return found


def check_projects(project_ids: Iterable[str]) -> None:
    for p in sorted(set(project_ids)):
        check_project(p)


def body_project_ids(body: bytes) -> set[str]:
    try:
        return project_ids_in_body(json.loads(body))
    except (ValueError, RecursionError):
        return set()  # not JSON: validation refuses it later


class BodyTooLarge(HTTPException):
    """Raised while the body streams in; an HTTPException so the app's handlers answer 413."""

    def __init__(self, limit: int):
        super().__init__(413, too_large_message(limit))


class BodyStalled(HTTPException):
    """The client stopped sending its body; answered 408 and the connection closed."""

    def __init__(self, timeout_s: float):
        super().__init__(408, f"request body: nothing arrived for {timeout_s:g} s (body_timeout_s)")


def too_large_message(limit: int) -> str:
    return f"request body is larger than the limit of {limit} bytes (max_body_bytes)"


Send = Callable[[dict], Awaitable[None]]


async def send_json(send: Send, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
    raw = json.dumps(body).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    hdrs += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": raw})


def _bearer(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class SessionOwners:
    """Which key created each MCP session (streamable HTTP's Mcp-Session-Id): a session is
    used, and ended, only with the key that created it. The newest `most` are kept."""

    def __init__(self, most: int = 100_000):
        self.most = most
        self._owners: OrderedDict[str, str | None] = OrderedDict()
        self._lock = threading.Lock()

    def bind(self, session_id: str, key_id: str | None) -> None:
        with self._lock:
            self._owners[session_id] = key_id
            self._owners.move_to_end(session_id)
            while len(self._owners) > self.most:
                self._owners.popitem(last=False)

    def allows(self, session_id: str, key_id: str | None) -> bool:
        with self._lock:
            return session_id not in self._owners or self._owners[session_id] == key_id


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class SecurityMiddleware:
    """Keys (401), rate (429) and body size (413) for `/v1`, `/mcp` and `/ui`; body size everywhere."""

    def __init__(self, app, settings: Settings):
        self.app = app
        self.keys = KeyRing(settings.api_keys)
        self.limiter = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
        self.failures = RateLimiter(settings.auth_failures_per_s, settings.auth_failures_burst)
        self.mcp_sessions = SessionOwners()
        self.max_body = settings.max_body_bytes
        self.body_timeout_s = settings.body_timeout_s

    def _too_large(self) -> dict:
        return {"error": too_large_message(self.max_body)}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = scope["headers"]
        principal = ANONYMOUS
        if path.startswith(PROTECTED_PREFIXES) and self.keys:
            token = _bearer(headers)
            address = (scope.get("client") or ("?", 0))[0]
            # Guessing keys costs time: an address whose keys keep failing waits before any is checked.
            wait = self.failures.acquire(address, take=False)
            if wait > 0:
                await send_json(
                    send,
                    429,
                    {"error": "too many failed authentications from this address (auth_failures_per_s)"},
                    {"Retry-After": str(max(1, math.ceil(wait)))},
                )
                return
            found = self.keys.authenticate(token) if token else None
            if found is None:
                self.failures.acquire(address)
                msg = "missing API key: send Authorization: Bearer <key>" if token is None else "unknown API key"
                await send_json(send, 401, {"error": msg}, {"WWW-Authenticate": "Bearer"})
                return
            principal = found
            wait = self.limiter.acquire(found.key_id or "")
            if wait > 0:
                await send_json(
                    send,
                    429,
                    {
                        "error": f"rate limit exceeded: {self.limiter.rate:g} requests/s per key "
                        f"(burst {self.limiter.burst}; rate_limit_per_s)"
                    },
                    {"Retry-After": str(max(1, math.ceil(wait)))},
                )
                return
        scope.setdefault("state", {})["principal"] = principal
        length = _content_length(headers)
        if length is not None and length > self.max_body:
            await send_json(send, 413, self._too_large())
            return

        received = 0
        started = False
        body_done = False

        async def limited_receive():
            nonlocal received, body_done
            if body_done:
                return await receive()  # after the body: waiting for a disconnect, unbounded
            try:
                message = await asyncio.wait_for(receive(), self.body_timeout_s)
            except TimeoutError:
                raise BodyStalled(self.body_timeout_s) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge(self.max_body)
                body_done = not message.get("more_body", False)
            return message

        mcp_session = _header(headers, b"mcp-session-id") if path.startswith("/mcp") and self.keys else None
        if mcp_session is not None and not self.mcp_sessions.allows(mcp_session, principal.key_id):
            # Another key's session: answered as the SDK answers a session it does not know.
            await send_json(send, 404, {"error": "unknown MCP session"})
            return

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if path.startswith("/mcp") and self.keys:
                    created = _header(message.get("headers", []), b"mcp-session-id")
                    if created is not None and created != mcp_session:
                        self.mcp_sessions.bind(created, principal.key_id)
            await send(message)

        token = current_principal.set(principal)
        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await send_json(send, 413, self._too_large())
        except BodyStalled as exc:
            if not started:
                await send_json(send, 408, {"error": exc.detail}, {"Connection": "close"})
        finally:
            current_principal.reset(token)


# Requests that are searches or ingest batches, by method and path: their slot is taken here,
# before the body is read or parsed, so a request beyond the bound costs almost nothing.
ADMITTED_ROUTES = {
    ("POST", "/v1/search"): "search",
    ("GET", "/v1/search"): "search",
    ("GET", "/ui/search"): "search",
    ("POST", "/v1/events"): "ingest",
}


class SheddingMiddleware:
    """Refuses a search or an ingest batch at once (503, Retry-After) when as many of its kind
    run as the service allows (ctxsearch.service.admission); inside the security middleware,
    so that unauthenticated requests are refused by it first."""

    def __init__(self, app, admission: Callable[[], Any]):
        self.app = app
        self.admission = admission

    async def __call__(self, scope, receive, send) -> None:
        kind = ADMITTED_ROUTES.get((scope.get("method"), scope.get("path"))) if scope["type"] == "http" else None
        admission = self.admission() if kind else None
        if admission is None:
            await self.app(scope, receive, send)
            return
        from ctxsearch.service.admission import Overloaded

        try:
            slot = admission.slot(kind)
            slot.__enter__()
        except Overloaded as exc:
            await send_json(send, 503, {"error": str(exc)}, {"Retry-After": str(exc.retry_after_s)})
            return
        try:
            await self.app(scope, receive, send)
        finally:
            slot.__exit__(None, None, None)
