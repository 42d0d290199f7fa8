"""Past context for an agent: what `ctxsearch hook claude-code` prints on `SessionStart` and
`UserPromptSubmit` for Claude Code to inject, within a token budget, and nothing when
nothing stored is relevant."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# Claude Code cuts injected hook context beyond 10,000 characters.
MAX_CONTEXT_CHARS = 9_500
DEFAULT_BUDGET_TOKENS = 2_000

# A hit is worth injecting at this confidence (the search's calibrated probability that it is
# relevant). A prompt carries words no stored event has ("is this happening again?"), which
# lower the text arm's share of the query matched, so the bar sits below a search's 0.5. On
# the dev agent sessions' queries wrapped in such prompts (README, Relevance), 0.25 kept the
# right top hit for most prompts in their own project and let few of those run in another
# project through.
MIN_CONFIDENCE = 0.25
MIN_PROMPT_CHARS = 8

Search = Callable[[dict], dict]  # a search request body -> the search API's JSON answer
Sessions = Callable[[str, int], dict]  # (project_id, limit) -> GET /v1/projects/{id}/sessions JSON


@dataclass(frozen=True)
class Budget:
    tokens: int = DEFAULT_BUDGET_TOKENS

    @property
    def chars(self) -> int:
        # ~4 characters a token for the agent's tokenizer, and never past Claude Code's cut.
        return min(MAX_CONTEXT_CHARS, self.tokens * 4)


def is_relevant(hit: dict) -> bool:
    return (hit.get("confidence") or 0.0) >= MIN_CONFIDENCE


_TAGS = re.compile(r"</?b>")


def _line(hit: dict) -> str:
    when = str(hit.get("timestamp", ""))[:10]
    where = f" ({', '.join(hit['files'][:3])})" if hit.get("files") else ""
    snippet = " ".join(_TAGS.sub("", hit.get("snippet") or "").split())
    kind = "session summary" if hit.get("kind") == "summary" else hit.get("type", "event")
    return f"- [{when} · session {hit.get('session_id')} · {kind}]{where} {snippet}"


def _fit(header: str, lines: list[str], budget: Budget) -> str | None:
    out, used = [header], len(header) + 1
    for line in lines:
        if used + len(line) + 1 > budget.chars:
            room = budget.chars - used - 2
            if room > 80:
                out.append(line[:room] + "…")
            break
        out.append(line)
        used += len(line) + 1
    return "\n".join(out) if len(out) > 1 else None


def prompt_context(
    *, search: Search, project_id: str, prompt: str, session_id: str | None, budget: Budget = Budget(), limit: int = 8
) -> str | None:
    """Stored context relevant to the user's prompt (other sessions of the project), or None."""
    prompt = " ".join(prompt.split())
    if len(prompt) < MIN_PROMPT_CHARS:
        return None
    answer = search({"query": prompt[:2000], "project_id": project_id, "limit": limit, "max_tokens": budget.tokens})
    hits = [h for h in answer.get("results", []) if h.get("session_id") != session_id and is_relevant(h)]
    if not hits:
        return None
    header = f"Relevant past context from ctxsearch (project {project_id}); `search_context` finds more:"
    return _fit(header, [_line(h) for h in hits], budget)


def session_start_context(
    *, sessions: Sessions, project_id: str, session_id: str | None, budget: Budget = Budget(), limit: int = 5
) -> str | None:
    """The project's most recent other sessions with their summaries, or None when there are none."""
    listed = sessions(project_id, limit + 1).get("sessions", [])
    lines = []
    for s in listed:
        if s.get("session_id") == session_id or not s.get("summary"):
            continue
        when = str(s.get("ended_at") or s.get("started_at") or "")[:10]
        lines.append(
            f"- [{when} · session {s['session_id']} · {s.get('event_count', 0)} events] "
            + " ".join(str(s["summary"]).split())
        )
    if not lines:
        return None
    header = f"Recent sessions of project {project_id} in ctxsearch (search them with `search_context`):"
    return _fit(header, lines[:limit], budget)
