"""Prometheus metrics, structured (JSON) logs and request ids."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime

from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

log = logging.getLogger("ctxsearch.access")

request_id_var: ContextVar[str | None] = ContextVar("ctxsearch_request_id", default=None)
_REQUEST_ID = re.compile(r"^[\w.:-]{1,128}$")

# LogRecord attributes that are not `extra=` fields.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and any `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or request_id_var.get()
        if rid:
            out["request_id"] = rid
        for k, v in vars(record).items():
            if k not in _STANDARD and k not in out and k != "request_id":
                out[k] = v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class RequestIdFilter(logging.Filter):
    """Stamps each record with the request id of the request being served, if any."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        return True


def configure_logging(level: str, fmt: str = "json") -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Our middleware writes the access log (with request ids); uvicorn's would repeat it.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("pgserver").setLevel(max(logging.WARNING, root.level))


class Metrics:
    """The app's Prometheus registry. Queue depth and freshness are read from the
    database at scrape time, so they cover every worker, not just this process."""

    def __init__(
        self,
        queue_state: Callable[[], dict[str, float] | None],
        redactions: Callable[[], dict[str, int]] | None = None,
        shed: Callable[[], dict[str, int]] | None = None,
    ):
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "ctxsearch_http_request_duration_seconds",
            "HTTP request latency by route template.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.ingested = Counter("ctxsearch_events_ingested", "Events stored.", registry=self.registry)
        self.duplicates = Counter(
            "ctxsearch_events_duplicate",
            "Events received again and not stored twice.",
            registry=self.registry,
        )
        self.search = Histogram(
            "ctxsearch_search_duration_seconds",
            "Search latency (database round trip) by mode.",
            ["mode"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )
        self.registry.register(_QueueCollector(queue_state))
        self.registry.register(
            _CountsCollector(
                "ctxsearch_redactions",
                "Credentials replaced by [REDACTED:<kind>] before storage.",
                "kind",
                redactions or dict,
            )
        )
        self.registry.register(
            _CountsCollector(
                "ctxsearch_shed_requests",
                "Requests refused with 503 at once because as many of their kind were running as allowed.",
                "kind",
                shed or dict,
            )
        )
        for standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):  # process_*, python_*
            self.registry.register(standard)


class _QueueCollector:
    def __init__(self, queue_state: Callable[[], dict[str, float] | None]):
        self.queue_state = queue_state

    def collect(self):
        state = self.queue_state()
        up = GaugeMetricFamily("ctxsearch_database_up", "1 when PostgreSQL answered the last scrape.")
        up.add_metric([], 0 if state is None else 1)
        yield up
        if state is None:
            return
        for name, doc in (
            ("pending_documents", "Documents waiting for an embedding (the embed queue)."),
            (
                "failed_documents",
                "Documents whose embedding failed embed_max_attempts times: skipped, not searchable"
                " in the warm tier, and no longer counted as pending.",
            ),
            ("dirty_sessions", "Sessions waiting to be condensed."),
            (
                "freshness_lag_seconds",
                "Age of the oldest event or session change not yet fully indexed; 0 when caught up.",
            ),
        ):
            g = GaugeMetricFamily(f"ctxsearch_{name}", doc)
            g.add_metric([], state.get(name, 0))
            yield g


class _CountsCollector:
    """A counter per label value, kept by the service (read at scrape time)."""

    def __init__(self, name: str, doc: str, label: str, counts: Callable[[], dict[str, int]]):
        self.name, self.doc, self.label, self.counts = name, doc, label, counts

    def collect(self):
        c = CounterMetricFamily(self.name, self.doc, labels=[self.label])
        for value, n in sorted(dict(self.counts()).items()):
            c.add_metric([value], n)
        yield c


class RequestMiddleware:
    """Outermost: a request id (X-Request-ID in and out), one access-log line and the latency histogram."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                rid = candidate if _REQUEST_ID.match(candidate) else None
                break
        rid = rid or uuid.uuid4().hex
        token = request_id_var.set(rid)
        status = 500
        t0 = time.perf_counter()

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - t0
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(scope["method"], template, str(status)).observe(elapsed)
            principal = scope.get("state", {}).get("principal")
            log.info(
                "%s %s %s %.1fms",
                scope["method"],
                template,
                status,
                elapsed * 1000,
                extra={
                    "request_id": rid,
                    "method": scope["method"],
                    "route": template,
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "key_id": getattr(principal, "key_id", None),
                },
            )
            request_id_var.reset(token)
