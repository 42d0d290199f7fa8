"""Condense a session: metrics, an importance score per event, key events and a summary."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# How much an event of each type tends to matter when someone returns to a session.
TYPE_WEIGHT = {
    "decision": 0.90,
    "error": 0.75,
    "commit": 0.70,
    "test_run": 0.45,
    "file_edit": 0.45,
    "note": 0.50,
    "message": 0.35,
    "tool_call": 0.20,
}
# Matched against lowercased text: without IGNORECASE the scan is over twice as fast.
_SIGNAL = re.compile(
    r"\b(because|decid\w*|chose|instead|root cause|fix(?:ed|es)?|workaround|regression|"
    r"bug|broke|fail\w*|crash\w*|revert\w*|migrat\w*|todo|must|never|always)\b",
)
_FAILED_COUNT = re.compile(r"\b(\d+) (?:failed|errors?)\b", re.IGNORECASE)
_PASSED_COUNT = re.compile(r"\b(\d+) passed\b", re.IGNORECASE)


def event_importance(type_: str, content: str, files: list[str], payload: dict | None) -> float:
    """A context-free importance in [0, 1]: type, signal words, substance."""
    score = TYPE_WEIGHT.get(type_, 0.3)
    if _SIGNAL.search(content[:4000].lower()):
        score += 0.1
    score += min(len(content), 600) / 600 * 0.08
    if files:
        score += 0.04
    if type_ == "test_run" and run_outcome(content, payload) is False:
        score += 0.25
    return round(min(score, 1.0), 4)


def run_outcome(content: str, payload: dict | None) -> bool | None:
    """True if a test run passed, False if it failed, None if it does not say."""
    p = payload or {}
    for key in ("passed", "ok", "success"):
        if isinstance(p.get(key), bool):
            return p[key]
    if isinstance(p.get("failed"), int):
        return p["failed"] == 0
    if isinstance(p.get("exit_code"), int):
        return p["exit_code"] == 0
    status = str(p.get("status", "")).lower()
    if status in ("passed", "pass", "ok", "success", "green"):
        return True
    if status in ("failed", "fail", "error", "red"):
        return False
    m = _FAILED_COUNT.search(content)
    if m:
        return int(m.group(1)) == 0
    if _PASSED_COUNT.search(content) or re.search(r"\ball (tests )?pass", content, re.I):
        return True
    if re.search(r"\bfail", content, re.I):
        return False
    return None


@dataclass
class SessionEvent:
    id: str
    ts: datetime
    type: str
    tool: str | None
    files: list[str]
    tokens: int | None
    content: str
    payload: dict | None
    importance: float = 0.0


def first_sentence(text: str, limit: int = 220) -> str:
    """The text's first sentence, at most `limit` characters (cut with an ellipsis)."""
    text = " ".join(text.split())
    m = re.match(r"(.{20,}?[.!?])(\s|$)", text)
    out = m.group(1) if m and len(m.group(1)) <= limit else text[:limit]
    if len(out) < len(text) and not out.endswith((".", "!", "?")):
        out = out.rstrip() + "…"
    return out


_LEAD = re.compile(r"^(?:decided|decision|we decided|i decided)\s*(?:to\b|that\b|:)?\s*", re.IGNORECASE)


def _clause(text: str, limit: int = 200) -> str:
    """A sentence fit to follow a heading such as "Decided:"."""
    s = first_sentence(_LEAD.sub("", text.strip()) or text, limit).rstrip(".")
    return s[:1].lower() + s[1:] if s[:1].isupper() and not s[1:2].isupper() else s


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{int(seconds)} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def score_events(events: list[SessionEvent]) -> None:
    """Importance in session context: resolved errors, the opening request and fixes weigh more."""
    seen: Counter[str] = Counter()
    for i, e in enumerate(events):
        s = event_importance(e.type, e.content, e.files, e.payload)
        if e.type == "message" and i < 3 and len(e.content) > 20:
            s += 0.3  # the request that opened the session states its goal
        if e.type == "error":
            later = events[i + 1 : i + 40]
            if any(x.type == "commit" or (x.type == "test_run" and run_outcome(x.content, x.payload)) for x in later):
                s += 0.1  # an error that was later fixed tells the story of the session
        key = " ".join(e.content.split())[:300]
        if seen[key]:
            s *= 0.5  # a repeat adds little
        seen[key] += 1
        e.importance = round(min(s, 1.0), 4)


def key_events(events: list[SessionEvent], n: int) -> list[SessionEvent]:
    """The n most important events, no type taking more than ~half, in time order."""
    cap = max(2, (n + 1) // 2)
    chosen: list[SessionEvent] = []
    per_type: Counter[str] = Counter()
    for e in sorted(events, key=lambda x: (-x.importance, x.ts)):
        if len(chosen) >= n:
            break
        if per_type[e.type] >= cap or not e.content.strip():
            continue
        chosen.append(e)
        per_type[e.type] += 1
    return sorted(chosen, key=lambda x: x.ts)


def session_metrics(events: list[SessionEvent]) -> dict[str, Any]:
    by_type = Counter(e.type for e in events)
    tools = Counter(e.tool for e in events if e.type == "tool_call" and e.tool)
    files = Counter(f for e in events for f in e.files)
    tests = [run_outcome(e.content, e.payload) for e in events if e.type == "test_run"]
    started, ended = events[0].ts, events[-1].ts
    return {
        "events": len(events),
        "by_type": dict(by_type),
        "tool_calls": dict(tools.most_common()),
        "files_touched": len(files),
        "top_files": [{"path": p, "events": c} for p, c in files.most_common(20)],
        "decisions": by_type.get("decision", 0),
        "errors": by_type.get("error", 0),
        "error_rate": round(by_type.get("error", 0) / len(events), 4),
        "test_runs": {"total": len(tests), "passed": tests.count(True), "failed": tests.count(False)},
        "commits": by_type.get("commit", 0),
        "tokens": sum(e.tokens or 0 for e in events),
        "duration_s": round((ended - started).total_seconds(), 3),
    }


def extract_summary(
    events: list[SessionEvent], metrics: dict[str, Any], keys: list[SessionEvent], max_chars: int
) -> str:
    """A few plain sentences: the goal, what was done, decided, broken and fixed."""
    parts: list[str] = []
    opener = next((e for e in events if e.type == "message" and len(e.content.strip()) > 10), None)
    if opener:
        parts.append(f"Goal: {first_sentence(opener.content)}")
    span = f"{metrics['events']} events over {_duration(metrics['duration_s'])}"
    files = [f["path"] for f in metrics["top_files"][:5]]
    if files:
        more = metrics["files_touched"] - len(files)
        span += f", touching {_join(files)}" + (f" and {more} more files" if more > 0 else "")
    parts.append(span[0].upper() + span[1:] + ".")
    decisions = [e for e in keys if e.type == "decision"] or [e for e in events if e.type == "decision"][:3]
    if decisions:
        parts.append("Decisions: " + "; ".join(_clause(e.content) for e in decisions[:4]) + ".")
    errors = [e for e in keys if e.type == "error"] or [e for e in events if e.type == "error"][:2]
    if errors:
        parts.append("Errors: " + "; ".join(first_sentence(e.content, 200).rstrip(".") for e in errors[:3]) + ".")
    t = metrics["test_runs"]
    if t["total"]:
        last = next((run_outcome(e.content, e.payload) for e in reversed(events) if e.type == "test_run"), None)
        state = {True: "passing", False: "failing", None: "of unknown outcome"}[last]
        times = "once" if t["total"] == 1 else f"{t['total']} times"
        parts.append(f"Tests ran {times} ({t['passed']} passed, {t['failed']} failed), last {state}.")
    commits = [e for e in events if e.type == "commit"]
    if commits:
        parts.append("Committed: " + "; ".join(first_sentence(e.content, 160).rstrip(".") for e in commits[-3:]) + ".")
    if metrics["tool_calls"]:
        top = [f"{k} ({v})" for k, v in list(metrics["tool_calls"].items())[:4]]
        parts.append(f"Tools: {_join(top)}.")
    notes = [e for e in keys if e.type in ("note", "file_edit", "message") and e is not opener][:2]
    for e in notes:
        parts.append(first_sentence(e.content, 200))
    text = " ".join(parts)
    return text if len(text) <= max_chars else text[: max_chars - 1].rstrip() + "…"
