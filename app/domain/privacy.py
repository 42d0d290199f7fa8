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

    def clean(value):
        # redact_value walks JSON and remembers the short strings it has seen (tool and file
        # names, payload keys repeat from event to event); a string is redacted as redact_text does.
        r = redact_value(value)
        counts.update(r.counts)
        return r.value

    changes: dict = {}
    content = clean(event.content)
    if content != event.content:
        # A replacement can be longer than what it replaced: keep within the content bound.
        changes["content"] = content if len(content) <= MAX_CONTENT_CHARS else content[: MAX_CONTENT_CHARS - 1] + _CUT
    if event.tool and (tool := clean(event.tool)) != event.tool:
        changes["tool"] = tool[:200]
    if event.files and (files := clean(list(event.files))) != event.files:
        changes["files"] = [f for f in files if f]
    if event.payload and (payload := clean(event.payload)) != event.payload:
        changes["payload"] = payload
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
