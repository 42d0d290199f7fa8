"""Privacy before storage: every write path hands its events here first, so no credential
an agent printed is stored, embedded, summarised or returned, and `<private>` spans never
leave the machine that wrote them."""

from __future__ import annotations

from collections import Counter

from ctxsearch.domain.redact import redact_text, redact_value
from ctxsearch.schemas import MAX_CONTENT_CHARS, EventIn

_CUT = "…"


def redact_event(event: EventIn) -> tuple[EventIn, Counter[str]]:
    """The event with credentials replaced by `[REDACTED:<kind>]` in its content, tool,
    file names and payload (keys and values), and the count per kind."""
    counts: Counter[str] = Counter()

    def text(value: str) -> str:
        r = redact_text(value)
        counts.update(r.counts)
        return r.value

    changes: dict = {}
    content = text(event.content)
    if content != event.content:
        # A replacement can be longer than what it replaced: keep within the content bound.
        changes["content"] = content if len(content) <= MAX_CONTENT_CHARS else content[: MAX_CONTENT_CHARS - 1] + _CUT
    # Tool and file names go through the value walk, which remembers short strings it has seen.
    if event.tool:
        r = redact_value(event.tool)
        counts.update(r.counts)
        if r.value != event.tool:
            changes["tool"] = r.value[:200]
    if event.files:
        r = redact_value(list(event.files))
        counts.update(r.counts)
        if r.value != event.files:
            changes["files"] = [f for f in r.value if f]
    if event.payload:
        r = redact_value(event.payload)
        counts.update(r.counts)
        if r.value != event.payload:
            changes["payload"] = r.value
    return (event.model_copy(update=changes) if changes else event), counts


def redact_events(events: list[EventIn]) -> tuple[list[EventIn], Counter[str]]:
    total: Counter[str] = Counter()
    out = []
    for e in events:
        clean, counts = redact_event(e)
        out.append(clean)
        total.update(counts)
    return out, total


def redact_summary(summary: str) -> tuple[str, Counter[str]]:
    r = redact_text(summary)
    return r.value, Counter(r.counts)
