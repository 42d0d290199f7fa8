"""Where captured events go: a `ctxsearch serve` over HTTP (a team's shared server, or the
one running on the local data dir), or the store itself in-process.

Both validate event by event, so one malformed event is reported and skipped instead of
refusing its whole batch; both redact on the way in (the server does it for HTTP).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .importer import SendResult

# The API's bound on a batch; the importer's batches are smaller, the hook's tiny.
MAX_BATCH = 1000


class SinkError(RuntimeError):
    """The destination refused or could not take a batch; nothing of it is counted as imported."""


@dataclass
class _Titles:
    """Session titles (a transcript's `summary` line) are written once the events are in."""

    pending: dict[tuple[str, str], str] = field(default_factory=dict)

    def add(self, project_id: str, session_id: str, title: str) -> None:
        if title.strip():
            self.pending[(project_id, session_id)] = title.strip()[:20_000]


class Http:
    """A small JSON-over-HTTP caller on the standard library: the hook runs once per agent
    turn, and a client library's import time would be most of its budget."""

    def __init__(self, url: str, api_key: str | None = None, timeout_s: float = 60.0):
        self.url = url.rstrip("/")
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.timeout_s = timeout_s

    def call(self, method: str, path: str, body: Any = None, params: dict | None = None) -> tuple[int, Any]:
        import json
        import urllib.error
        import urllib.request
        from urllib.parse import urlencode

        url = f"{self.url}{path}" + (f"?{urlencode(params, doseq=True)}" if params else "")
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method, headers=self.headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except (OSError, ValueError) as exc:
            raise SinkError(f"cannot reach {self.url}: {exc}") from None
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, {"error": raw[:300].decode(errors="replace")}

    def json(self, method: str, path: str, body: Any = None, params: dict | None = None) -> Any:
        status, answer = self.call(method, path, body, params)
        if status >= 400:
            raise SinkError(f"{self.url} answered {status} to {method} {path}: {_error(answer)}")
        return answer


def _error(answer: Any) -> str:
    if isinstance(answer, dict):
        return str(answer.get("error") or answer)[:300]
    return str(answer)[:300]


class HttpSink:
    """POST /v1/events to a ctxsearch server; idempotent, so a retried import stores nothing twice."""

    def __init__(self, http: Http):
        self.http = http
        self.problems: list[str] = []
        self.titles = _Titles()

    def send(self, events: list[dict]) -> SendResult:
        out = SendResult(0, 0, 0)
        for i in range(0, len(events), MAX_BATCH):
            self._send(events[i : i + MAX_BATCH], out)
        return out

    def _send(self, batch: list[dict], out: SendResult) -> None:
        status, body = self.http.call("POST", "/v1/events", {"events": batch})
        if status in (413, 422) and len(batch) > 1:
            # One bad event refuses its batch: send one by one to store the rest.
            for e in batch:
                self._send([e], out)
            return
        if status in (413, 422):
            self.problems.append(f"event {batch[0].get('id')}: refused: {_error(body)}")
            return
        if status != 202:
            raise SinkError(f"{self.http.url} answered {status}: {_error(body)}")
        out.accepted += body.get("accepted", 0)
        out.duplicates += body.get("duplicates", 0)
        out.redactions += body.get("redactions", 0)

    def set_title(self, project_id: str, session_id: str, title: str) -> None:
        self.titles.add(project_id, session_id, title)

    def finish(self) -> None:
        for (project_id, session_id), title in self.titles.pending.items():
            status, body = self.http.call(
                "PUT",
                f"/v1/sessions/{quote(session_id, safe='')}/summary",
                {"project_id": project_id, "summary": title},
            )
            if status != 200:
                self.problems.append(f"session {session_id}: title not stored: {_error(body)}")
        self.titles.pending.clear()

    def close(self) -> None:
        pass


class ServiceSink:
    """Straight into the store through the service (the same path as POST /v1/events)."""

    def __init__(self, service: Any):
        self.service = service
        self.problems: list[str] = []
        self.titles = _Titles()

    def send(self, events: list[dict]) -> SendResult:
        from pydantic import ValidationError

        from ctxsearch.schemas import EventIn
        from ctxsearch.validation import validation_message

        valid = []
        for e in events:
            try:
                valid.append(EventIn.model_validate(e))
            except ValidationError as exc:
                self.problems.append(f"event {e.get('id')}: refused: {validation_message(exc.errors())}")
        out = SendResult(0, 0, 0)
        for i in range(0, len(valid), MAX_BATCH):
            r = self.service.ingest(valid[i : i + MAX_BATCH])
            out.accepted += r.accepted
            out.duplicates += r.duplicates
            out.redactions += r.redactions
        return out

    def set_title(self, project_id: str, session_id: str, title: str) -> None:
        self.titles.add(project_id, session_id, title)

    def finish(self) -> None:
        for (project_id, session_id), title in self.titles.pending.items():
            self.service.put_summary(project_id, session_id, title)
        self.titles.pending.clear()

    def close(self) -> None:
        pass


def state_path(kind: str, *, data_dir: Path | None = None, url: str | None = None) -> Path:
    """Where an import remembers how far it read each file, per destination: inside the data
    dir for a local store (a fresh data dir starts over), else per server URL in the user's
    state dir."""
    if url is None:
        assert data_dir is not None
        return Path(data_dir) / "capture" / f"{kind}.json"
    import platformdirs

    digest = hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]
    return Path(platformdirs.user_state_dir("ctxsearch")) / "capture" / digest / f"{kind}.json"
