"""The incremental JSONL reading both transcript readers share.

A read starts at a byte offset and consumes complete lines only (a line is complete once its
`\\n` is written). Tool calls are paired with their results, which may come many lines later.
A call whose result has not arrived when the read reaches the end of the file is *held*: the read
returns an offset that stops before the line of the earliest held call, together with the small
`state` the reader had at that line, and leaves out every event that comes from that line or
later. The next read starts there again and produces those events once, with their results.
Re-reading is safe because event ids are derived from the lines themselves.

A call is given up on (emitted without a result) when the conversation has clearly moved on
(a later model response or user prompt in the same chain), or when the caller says the file is
final (e.g. it has not changed for a while).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .mapping import (
    DEFAULT_MAX_CONTENT_CHARS,
    MAX_TOOL_CHARS,
    cap_payload,
    clean_files,
    clean_id,
    clean_text,
    cut_middle,
    normalize_timestamp,
)

CHUNK_BYTES = 4 << 20
MAX_PROBLEMS_PER_FILE = 50


@dataclass
class ReadResult:
    """One read of one transcript file."""

    path: str
    events: list[dict]
    offset: int  # where the next read should start (bytes)
    lines: int  # complete lines before `offset`
    state: dict  # what the next read needs to continue (small, JSON)
    session_id: str | None = None
    project_id: str | None = None
    cwd: str | None = None
    title: str | None = None  # the transcript's own title (Claude Code summary line), if any
    skipped: int = 0  # lines skipped: unknown types and malformed lines
    problems: list[str] = field(default_factory=list)  # "file:line: reason"
    held: int = 0  # tool calls waiting for their result (their events come with a later read)
    end: int = 0  # bytes of complete lines examined
    unknown_types: dict[str, int] = field(default_factory=dict)


class ShapeError(ValueError):
    """A line that is JSON but not of the shape its type promises."""


def iter_lines(fh, start: int, chunk: int = CHUNK_BYTES):
    """(offset, line bytes without the newline) for each complete line from `start`."""
    fh.seek(start)
    pos = start
    buf = b""
    while True:
        data = fh.read(chunk)
        if not data:
            return
        buf = buf + data if buf else data
        begin = 0
        while True:
            nl = buf.find(b"\n", begin)
            if nl < 0:
                break
            yield pos, buf[begin:nl]
            pos += nl - begin + 1
            begin = nl + 1
        buf = buf[begin:]


def copy_state(state: dict) -> dict:
    return json.loads(json.dumps(state))


class TranscriptReader:
    """Base of the Claude Code and Codex readers: the line loop, malformed-line reporting,
    held tool calls, the cut, and the construction of clean events."""

    kind = "transcript"

    def __init__(
        self,
        path: str | Path,
        *,
        state: dict | None = None,
        project: str | None = None,
        max_content_chars: int = DEFAULT_MAX_CONTENT_CHARS,
    ):
        self.path = str(path)
        self.state: dict = copy_state(state) if state else {}
        self.state.setdefault("line", 0)
        self.project_override = project
        self.max_content = max_content_chars
        self._items: list[tuple[tuple, dict]] = []
        self.pending: dict[str, dict] = {}
        self._problems: list[tuple[int, str]] = []
        self._skipped: list[int] = []
        self._unknown: list[tuple[int, str]] = []
        self._checkpoint: tuple[int, int, dict] | None = None
        self.line_no = self.state["line"]
        self.line_off = 0
        self.title: str | None = None

    # -- hooks ---------------------------------------------------------------------------------

    def handle(self, obj: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def finish_call(self, record: dict, result: dict | None) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def cwd(self) -> str | None:
        return self.state.get("cwd")

    @property
    def project_id(self) -> str | None:
        return self.state.get("project")

    @property
    def session_id(self) -> str | None:
        return self.state.get("session")

    # -- bookkeeping -----------------------------------------------------------------------------

    def problem(self, reason: str) -> None:
        self._problems.append((self.line_no, reason))
        self._skipped.append(self.line_no)

    def unknown(self, what: str) -> None:
        self._unknown.append((self.line_no, what))
        self._skipped.append(self.line_no)

    def checkpoint(self) -> None:
        """Call first thing when a line may start a tool call: the state as of this line's start."""
        if self._checkpoint is None or self._checkpoint[0] != self.line_no:
            self._checkpoint = (self.line_no, self.line_off, copy_state(self.state))

    def hold(self, key: str, record: dict) -> None:
        """A tool call waiting for its result."""
        if self._checkpoint is None or self._checkpoint[0] != self.line_no:
            self.checkpoint()
        record["_line"], record["_offset"], record["_state"] = self._checkpoint
        self.pending[key] = record

    def resolve(self, key: str, result: dict | None) -> bool:
        record = self.pending.pop(key, None)
        if record is None:
            return False
        self.finish_call(record, result)
        return True

    def give_up(self, chain=None, before_line: int | None = None) -> None:
        """Emit the held calls of `chain` (all chains if None) without a result."""
        for key in [
            k
            for k, r in self.pending.items()
            if (chain is None or r.get("_chain") == chain) and (before_line is None or r["_line"] < before_line)
        ]:
            record = self.pending.pop(key)
            self.finish_call(record, None)

    def add(self, origin: tuple, event: dict | None) -> None:
        if event is not None:
            self._items.append((origin, event))

    # -- events ----------------------------------------------------------------------------------

    def event(
        self,
        eid: str,
        session_id: str | None,
        timestamp,
        type_: str,
        content: str,
        *,
        tool: str | None = None,
        files=(),
        tokens: int | None = None,
        payload: dict | None = None,
    ) -> dict | None:
        session = clean_id(session_id or self.session_id or Path(self.path).stem)
        ts = normalize_timestamp(timestamp) or self.state.get("ts")
        if not ts:
            return None
        self.state["ts"] = ts
        text = cut_middle(clean_text(content or ""), self.max_content)
        ev = {
            "id": clean_id(eid),
            "project_id": self.project_id or "unknown",
            "session_id": session,
            "timestamp": ts,
            "type": type_,
            "content": text,
            "tool": clean_id(tool, MAX_TOOL_CHARS) or None if tool else None,
            "files": clean_files(files, self.cwd) if files else [],
            "tokens": tokens
            if isinstance(tokens, int) and not isinstance(tokens, bool) and 0 <= tokens <= 100_000_000
            else None,
            "payload": cap_payload({k: v for k, v in payload.items() if v is not None}) if payload else None,
        }
        if ev["payload"] == {}:
            ev["payload"] = None
        return ev

    # -- the loop ----------------------------------------------------------------------------------

    def read(self, offset: int = 0, *, final: bool = False) -> ReadResult:
        end = offset
        with open(self.path, "rb") as fh:
            for line_off, raw in iter_lines(fh, offset):
                self.line_no += 1
                self.line_off = line_off
                end = line_off + len(raw) + 1
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw)
                except ValueError as exc:
                    self.problem(f"invalid JSON ({getattr(exc, 'msg', exc)})")
                    continue
                if not isinstance(obj, dict):
                    self.problem(f"not a JSON object ({type(obj).__name__})")
                    continue
                try:
                    self.handle(obj)
                except ShapeError as exc:
                    self.problem(str(exc))
                except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
                    self.problem(f"unexpected shape ({type(exc).__name__}: {exc})")
        self.line_off = end
        if final:
            self.give_up()
        cut_line = None
        state = self.state
        next_offset = end
        lines = self.line_no
        if self.pending:
            first = min(self.pending.values(), key=lambda r: r["_line"])
            cut_line, next_offset, state = first["_line"], first["_offset"], first["_state"]
            lines = cut_line - 1
            state["line"] = lines
        else:
            state["line"] = lines
        items = self._items if cut_line is None else [it for it in self._items if it[0][0] < cut_line]
        items.sort(key=lambda it: it[0])
        keep = (lambda n: True) if cut_line is None else (lambda n: n < cut_line)
        problems = [f"{self.path}:{n}: {reason}" for n, reason in self._problems if keep(n)]
        if len(problems) > MAX_PROBLEMS_PER_FILE:
            extra = len(problems) - MAX_PROBLEMS_PER_FILE
            problems = problems[:MAX_PROBLEMS_PER_FILE] + [f"{self.path}: {extra} more malformed lines"]
        unknown: dict[str, int] = {}
        for n, what in self._unknown:
            if keep(n):
                unknown[what] = unknown.get(what, 0) + 1
        return ReadResult(
            path=self.path,
            events=[ev for _, ev in items],
            offset=next_offset,
            lines=lines,
            state=state,
            session_id=self.session_id,
            project_id=self.project_id,
            cwd=self.cwd,
            title=self.title,
            skipped=sum(1 for n in self._skipped if keep(n)),
            problems=problems,
            held=len(self.pending),
            end=end,
            unknown_types=unknown,
        )


def read_first_object(path: str | Path, want, max_lines: int = 200, max_bytes: int = 64 << 20):
    """The first parsed line for which `want(obj)` is true (for cheap identity peeks)."""
    try:
        with open(path, "rb") as fh:
            read = 0
            for n, (_, raw) in enumerate(iter_lines(fh, 0, 1 << 20)):
                read += len(raw)
                if n >= max_lines or read > max_bytes:
                    return None
                try:
                    obj = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(obj, dict) and want(obj):
                    return obj
    except OSError:
        return None
    return None
