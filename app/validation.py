"""Validation errors as one message that names each field (`events[3].timestamp: ...`),
for the HTTP API, the MCP tools and the CLI alike."""

from __future__ import annotations

from ctxsearch.schemas import ID_PATTERN


def field_path(loc: tuple) -> str:
    # The first element says where the value was (body, query, path, header).
    parts = [str(p) for p in (loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc)]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or "body"


def validation_message(errors: list[dict]) -> str:
    msgs = []
    for e in errors[:5]:
        msg = e.get("msg", "invalid").removeprefix("Value error, ")
        if e.get("type") == "string_pattern_mismatch" and (e.get("ctx") or {}).get("pattern") == ID_PATTERN:
            msg = "must not contain control characters"
        msgs.append(f"{field_path(tuple(e.get('loc', ())))}: {msg}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(msgs) + more


# Too much data (a batch, an event's content or payload, a summary) is answered 413 like an
# oversized body; other bounds (query length, ids, limit) are plain 422 validation errors.
_SIZE_ERRORS = {"string_too_long", "too_long", "too_large"}
_SIZE_FIELDS = {"events", "content", "payload", "summary"}


def validation_status(errors: list[dict]) -> int:
    def is_size(e: dict) -> bool:
        loc = e.get("loc", ())
        return e.get("type") in _SIZE_ERRORS and bool(loc) and loc[-1] in _SIZE_FIELDS

    return 413 if errors and all(is_size(e) for e in errors) else 422
