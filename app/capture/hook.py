"""`ctxsearch hook claude-code`: what Claude Code runs on its hook events.

It reads the hook's JSON on stdin (`session_id`, `transcript_path`, `cwd`,
`hook_event_name`, and `prompt` on UserPromptSubmit). After a tool call, a turn, a
subagent, before compaction and at the end it imports what is new in the transcript;
on SessionStart and UserPromptSubmit it answers with the project's relevant past context
(Claude Code adds a hook's `additionalContext` to the conversation), and with nothing
when nothing stored is relevant. It never disturbs the agent: it always exits 0, and a
failure goes to a log file.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .context import Budget, prompt_context, session_start_context
from .install import CONTEXT_EVENTS, IMPORT_EVENTS

log = logging.getLogger("ctxsearch.hook")


@dataclass
class HookInput:
    event: str
    session_id: str | None
    transcript_path: Path | None
    cwd: str | None
    prompt: str | None
    source: str | None

    @classmethod
    def parse(cls, raw: str) -> HookInput:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("hook input is not a JSON object")
        path = data.get("transcript_path")
        return cls(
            event=str(data.get("hook_event_name") or ""),
            session_id=data.get("session_id") if isinstance(data.get("session_id"), str) else None,
            transcript_path=Path(path).expanduser() if isinstance(path, str) and path else None,
            cwd=data.get("cwd") if isinstance(data.get("cwd"), str) else None,
            prompt=data.get("prompt") if isinstance(data.get("prompt"), str) else None,
            source=data.get("source") if isinstance(data.get("source"), str) else None,
        )


def wants_import(event: str) -> bool:
    return event in IMPORT_EVENTS


def wants_context(event: str) -> bool:
    return event in CONTEXT_EVENTS


def context_output(event: str, text: str) -> str:
    """The JSON Claude Code reads from a SessionStart / UserPromptSubmit hook's stdout."""
    return json.dumps({"hookSpecificOutput": {"hookEventName": event, "additionalContext": text}})


def build_context(hook: HookInput, *, project_id: str, search: Any, sessions: Any, budget: Budget) -> str | None:
    if hook.event == "UserPromptSubmit":
        return prompt_context(
            search=search, project_id=project_id, prompt=hook.prompt or "", session_id=hook.session_id, budget=budget
        )
    if hook.event == "SessionStart":
        return session_start_context(
            sessions=sessions, project_id=project_id, session_id=hook.session_id, budget=budget
        )
    return None


def log_to(path: Path) -> None:
    """Hook failures go to `path` (rotated), never to the agent's screen."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=1 << 20, backupCount=2)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    log.setLevel(logging.INFO)
