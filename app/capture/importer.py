"""The import driver: find transcripts, read what is new in each, send the events to a sink.

Storage-agnostic: a `Sink` takes event batches (and session titles); the caller decides whether
that is the HTTP client, the service in-process, or a counter. Progress is kept in an
`ImportState` JSON file, one entry per transcript file:

    {"version": 1, "files": {"<path>": {"offset", "size", "mtime_ns", "inode", "dev",
                                         "session_id", "project_id", "cwd", "title", "state"}}}

`offset` is where the next read starts; `state` is the reader's small carry at that offset (see
reader.py). A file whose inode/device changed, or that became shorter than what was read, is
read again from 0 (event ids are stable, so the store drops what it already has). An entry is
updated only after all events of that read were accepted by the sink, so an interrupted import
re-sends rather than loses.
"""

from __future__ import annotations

import fnmatch
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from . import claude_code, codex
from .mapping import DEFAULT_MAX_CONTENT_CHARS, normalize_project_id, project_id_from_cwd
from .reader import ReadResult

IGNORE_FILE = ".ctxsearch-ignore"
STATE_VERSION = 1
DEFAULT_SETTLE_SECONDS = 2 * 3600


@dataclass
class SendResult:
    accepted: int
    duplicates: int
    redactions: int = 0


class Sink(Protocol):
    def send(self, events: list[dict]) -> SendResult: ...

    def set_title(self, project_id: str, session_id: str, title: str) -> None: ...


@dataclass
class ImportReport:
    files: int = 0  # transcript files read (new bytes found)
    sessions: int = 0  # distinct (project, session) pairs with events in this import
    events: int = 0  # events read and sent
    accepted: int = 0
    duplicates: int = 0
    skipped_lines: int = 0  # unknown line types and malformed lines
    redactions: int = 0
    excluded_projects: int = 0  # distinct projects skipped by `exclude` or a .ctxsearch-ignore file
    problems: list[str] = field(default_factory=list)
    held: int = 0  # tool calls still waiting for their result (read again next time)


class ImportState:
    """Per-file read positions, kept in a JSON file (written atomically)."""

    def __init__(self, path: str | Path | None = None, files: dict | None = None):
        self.path = Path(path) if path is not None else None
        self.files: dict[str, dict] = files or {}
        self.problems: list[str] = []

    @classmethod
    def load(cls, path: str | Path) -> ImportState:
        """The state in `path`; an empty one when the file is missing or unreadable (the
        unreadable file is then reported in `problems` and replaced on save)."""
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(p)
        except (OSError, ValueError) as exc:
            st = cls(p)
            st.problems.append(f"{p}: unreadable import state, starting over ({exc})")
            return st
        files = data.get("files") if isinstance(data, dict) else None
        if not isinstance(files, dict):
            st = cls(p)
            st.problems.append(f"{p}: import state without 'files', starting over")
            return st
        return cls(p, {k: v for k, v in files.items() if isinstance(v, dict)})

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps({"version": STATE_VERSION, "files": self.files}, ensure_ascii=False, separators=(",", ":"))
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    @staticmethod
    def key(path: str | Path) -> str:
        return str(Path(path).absolute())

    def get(self, path: str | Path) -> dict | None:
        return self.files.get(self.key(path))

    def put(self, path: str | Path, entry: dict) -> None:
        self.files[self.key(path)] = entry

    def start(self, path: str | Path, st: os.stat_result) -> tuple[int, dict | None, dict | None]:
        """(offset, reader state, previous entry) to read `path` from, after the reset rules:
        a replaced file (inode/device changed) or one shorter than before starts over."""
        entry = self.get(path)
        if not entry:
            return 0, None, None
        if entry.get("inode") != st.st_ino or entry.get("dev") != st.st_dev:
            return 0, None, None
        offset = entry.get("offset", 0)
        if not isinstance(offset, int) or offset < 0 or st.st_size < offset or st.st_size < entry.get("size", 0):
            return 0, None, None
        return offset, entry.get("state") if isinstance(entry.get("state"), dict) else None, entry


def ignored_dir(cwd: str | None) -> bool:
    """True when `cwd`, or a folder above it, holds a .ctxsearch-ignore file."""
    return _ignored_dir(cwd, {})


def excluded(project_id: str, cwd: str | None, patterns: Iterable[str], cache: dict[str, bool] | None = None) -> bool:
    """Whether a session is kept out: its project matches an exclusion glob (as written or
    lowercased, since project ids are), or its cwd holds a .ctxsearch-ignore file."""
    if any(fnmatch.fnmatchcase(project_id, p) or fnmatch.fnmatchcase(project_id, p.lower()) for p in patterns):
        return True
    return _ignored_dir(cwd, {} if cache is None else cache)


def _ignored_dir(cwd: str | None, cache: dict[str, bool]) -> bool:
    """True when cwd, or a folder above it, holds a .ctxsearch-ignore file."""
    if not cwd:
        return False
    p = Path(cwd)
    chain = [p, *p.parents]
    for d in chain:
        key = str(d)
        if key not in cache:
            try:
                cache[key] = (d / IGNORE_FILE).exists()
            except OSError:
                cache[key] = False
        if cache[key]:
            return True
    return False


class _Batcher:
    """Events of several files, sent in order in batches; a file's state is committed once
    every one of its events was accepted.

    Batches are sent on two sender threads while the next is read, so reading, the server's
    work and PostgreSQL's overlap on the cores there are. Batches end at a file boundary where
    they can, and two batches of one session are never in flight at once: an event's
    context is the event before it, which must be stored first.
    """

    IN_FLIGHT = 2

    def __init__(self, sink: Sink, size: int, report: ImportReport, on_commit: Callable[[Callable], None]):
        from concurrent.futures import ThreadPoolExecutor

        self.sink = sink
        self.size = max(1, int(size))
        self.report = report
        self.buf: list[dict] = []
        self.added = 0
        self.sent = 0  # events handed to a sender
        self.done = 0  # events the sink answered for, in order
        self.bounds: list[int] = []  # where each file's events end (counted like `added`)
        self.waiting: list[tuple[int, Callable[[], None]]] = []
        self.on_commit = on_commit
        self.pool = ThreadPoolExecutor(max_workers=self.IN_FLIGHT, thread_name_prefix="ctxsearch-import")
        self.pending: list = []  # (future, n, sessions), oldest first

    def add(self, events: list[dict], commit: Callable[[], None]) -> None:
        self.buf.extend(events)
        self.added += len(events)
        self.bounds.append(self.added)
        self.waiting.append((self.added, commit))
        while len(self.buf) >= self.size:
            self._send(self.size)
        self._collect(block=False)
        self._commit_ready()

    def _send(self, n: int) -> None:
        ends = [b - self.sent for b in self.bounds if 0 < b - self.sent <= n]
        n = max(ends) if ends else n
        self.bounds = [b for b in self.bounds if b - self.sent > n]
        batch = self.buf[:n]
        del self.buf[:n]
        self.sent += n
        sessions = {(e.get("project_id"), e.get("session_id")) for e in batch}
        while self.pending and (len(self.pending) >= self.IN_FLIGHT or any(sessions & p[2] for p in self.pending)):
            self._collect_one()
        self.pending.append((self.pool.submit(self.sink.send, batch), n, sessions))

    def _collect_one(self) -> None:
        future, n, _ = self.pending.pop(0)
        res = future.result()  # a sink's failure surfaces here, in order
        self.report.accepted += int(getattr(res, "accepted", 0) or 0)
        self.report.duplicates += int(getattr(res, "duplicates", 0) or 0)
        self.report.redactions += int(getattr(res, "redactions", 0) or 0)
        self.done += n

    def _collect(self, *, block: bool) -> None:
        while self.pending and (block or self.pending[0][0].done()):
            self._collect_one()

    def _commit_ready(self) -> None:
        while self.waiting and self.waiting[0][0] <= self.done:
            _, commit = self.waiting.pop(0)
            self.on_commit(commit)

    def flush(self) -> None:
        while self.buf:
            self._send(min(self.size, len(self.buf)))
        self._collect(block=True)
        self._commit_ready()

    def close(self) -> None:
        """Wait for the batches in flight (after a failure, their results no longer count)."""
        self.pool.shutdown(wait=True, cancel_futures=True)


class _Import:
    def __init__(
        self,
        kind: str,
        sink: Sink,
        state: ImportState,
        project: str | None,
        exclude: Iterable[str],
        batch_size: int,
        progress: Callable | None,
        max_content_chars: int,
        settle_seconds: float,
    ):
        self.kind = kind
        self.reader = claude_code.read_claude_code if kind == "claude_code" else codex.read_codex
        self.peek = claude_code.peek_identity if kind == "claude_code" else codex.peek_identity
        self.sink = sink
        self.state = state
        self.project = normalize_project_id(project) if project else None
        self.exclude = [e for e in (exclude or ()) if e]
        self.progress = progress
        self.max_content = max_content_chars
        self.settle = settle_seconds
        self.report = ImportReport()  # state.problems (an unreadable state file) stay on the state
        self.sessions: set[tuple[str, str]] = set()
        self.excluded: set[str] = set()
        self.ignore_cache: dict[str, bool] = {}
        self.commits = 0
        self.batcher = _Batcher(sink, batch_size, self.report, self._committed)
        self.now = time.time()

    def _committed(self, commit: Callable[[], None]) -> None:
        commit()
        self.commits += 1
        if self.commits % 200 == 0:
            self.state.save()

    def excluded_identity(self, project_id: str | None, cwd: str | None) -> str | None:
        """The project id that excludes this session, or None."""
        pid = self.project or project_id or project_id_from_cwd(cwd)
        return pid if excluded(pid, cwd, self.exclude, self.ignore_cache) else None

    def identity(self, path: Path) -> tuple[str | None, str | None]:
        """(project id, cwd) of a transcript, from the saved state or its first lines."""
        entry = self.state.get(path)
        if entry and entry.get("cwd"):
            return entry.get("project_id"), entry.get("cwd")
        _, cwd = self.peek(path)
        return (project_id_from_cwd(cwd) if cwd else None), cwd

    def read_file(self, path: Path, parent: ReadResult | dict | None = None) -> ReadResult | None:
        """Read what is new in one file and queue its events; None when nothing was read."""
        try:
            st = path.stat()
        except OSError as exc:
            self.report.problems.append(f"{path}: cannot read ({exc.strerror or exc})")
            return None
        offset, carry, entry = self.state.start(path, st)
        unchanged = entry is not None and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns
        settled = self.now - st.st_mtime > self.settle
        if unchanged and (offset >= st.st_size or not settled):
            if entry and offset < st.st_size:
                self.report.held += 1
            return None
        if carry is None and parent is not None:
            base = parent if isinstance(parent, dict) else {"cwd": parent.cwd, "project": parent.project_id}
            carry = {k: v for k, v in base.items() if v}
        try:
            result = self.reader(
                path,
                offset=offset,
                state=carry,
                project=self.project,
                max_content_chars=self.max_content,
                final=settled,
            )
        except OSError as exc:
            self.report.problems.append(f"{path}: cannot read ({exc.strerror or exc})")
            return None
        except Exception as exc:  # a reader bug must not stop the import of other files
            self.report.problems.append(f"{path}: read failed ({type(exc).__name__}: {exc})")
            return None
        self.report.files += 1
        self.report.skipped_lines += result.skipped
        self.report.problems.extend(result.problems)
        self.report.held += result.held
        self.report.events += len(result.events)
        for ev in result.events:
            self.sessions.add((ev["project_id"], ev["session_id"]))
        old_title = entry.get("title") if entry else None
        new_entry = {
            "offset": result.offset,
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "inode": st.st_ino,
            "dev": st.st_dev,
            "session_id": result.session_id,
            "project_id": result.project_id,
            "cwd": result.cwd,
            "title": result.title or old_title,
            "state": result.state,
        }

        def commit() -> None:
            if result.title and result.title != old_title and result.project_id and result.session_id:
                try:
                    self.sink.set_title(result.project_id, result.session_id, result.title)
                except Exception as exc:  # the title is a nicety; the events are in
                    self.report.problems.append(f"{path}: title not set ({type(exc).__name__}: {exc})")
                    new_entry["title"] = old_title
            self.state.put(path, new_entry)

        self.batcher.add(result.events, commit)
        return result

    def finish(self, ok: bool) -> ImportReport:
        """Send what is left (unless the sink already failed) and save the state either way."""
        try:
            if ok:
                self.batcher.flush()
        finally:
            self.batcher.close()
            self.state.save()
        self.report.sessions = len(self.sessions)
        self.report.excluded_projects = len(self.excluded)
        return self.report


def import_claude_code(
    root: str | Path,
    *,
    sink: Sink,
    state: ImportState,
    project: str | None = None,
    exclude: Iterable[str] = (),
    batch_size: int = 500,
    progress: Callable | None = None,
    only: str | Path | None = None,
    max_content_chars: int = DEFAULT_MAX_CONTENT_CHARS,
    settle_seconds: float = DEFAULT_SETTLE_SECONDS,
) -> ImportReport:
    """Import Claude Code transcripts under `root` (`~/.claude` or `~/.claude/projects`).

    `only`: one session transcript (e.g. a hook's `transcript_path`), read together with its
    subagent files. `project` overrides every project id; `exclude` holds fnmatch globs of project
    ids to skip; a session whose cwd or a folder above it holds `.ctxsearch-ignore` is skipped too.
    `progress(done, total, report)` is called after each session. A file unchanged for
    `settle_seconds` is read as final: calls still without a result are emitted without one.
    """
    job = _Import("claude_code", sink, state, project, exclude, batch_size, progress, max_content_chars, settle_seconds)
    if only is not None:
        only = Path(only)
        groups = [(only, claude_code.subagent_files(only))]
    else:
        groups = claude_code.find_sessions(root)
    ok = False
    try:
        for done, (main, subs) in enumerate(groups, 1):
            pid, cwd = job.identity(main)
            if cwd is None and subs:
                pid, cwd = job.identity(subs[0])
            bad = job.excluded_identity(pid, cwd)
            if bad is not None:
                job.excluded.add(bad)
            else:
                result = job.read_file(main)
                parent = (
                    result
                    if result is not None
                    else ({"cwd": cwd, "project": job.project or (state.get(main) or {}).get("project_id") or pid})
                )
                for sub in subs:
                    job.read_file(sub, parent=parent)
            if progress:
                progress(done, len(groups), job.report)
        ok = True
    finally:
        report = job.finish(ok)
    return report


def import_codex(
    root: str | Path,
    *,
    sink: Sink,
    state: ImportState,
    project: str | None = None,
    exclude: Iterable[str] = (),
    batch_size: int = 500,
    progress: Callable | None = None,
    only: str | Path | None = None,
    max_content_chars: int = DEFAULT_MAX_CONTENT_CHARS,
    settle_seconds: float = DEFAULT_SETTLE_SECONDS,
) -> ImportReport:
    """Import Codex rollouts under `root` (`~/.codex` or `~/.codex/sessions`); arguments as for
    import_claude_code (`only`: one rollout file)."""
    job = _Import("codex", sink, state, project, exclude, batch_size, progress, max_content_chars, settle_seconds)
    files = [Path(only)] if only is not None else codex.find_rollouts(root)
    ok = False
    try:
        for done, path in enumerate(files, 1):
            pid, cwd = job.identity(path)
            bad = job.excluded_identity(pid, cwd)
            if bad is not None:
                job.excluded.add(bad)
            else:
                job.read_file(path)
            if progress:
                progress(done, len(files), job.report)
        ok = True
    finally:
        report = job.finish(ok)
    return report


class CountingSink:
    """A sink that only counts (for dry runs and benchmarks); every event is 'accepted' once."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, str]] = set()
        self.batches = 0
        self.events = 0
        self.titles: dict[tuple[str, str], str] = {}

    def send(self, events: list[dict]) -> SendResult:
        self.batches += 1
        self.events += len(events)
        new = 0
        for ev in events:
            key = (ev["project_id"], ev["id"])
            if key not in self.seen:
                self.seen.add(key)
                new += 1
        return SendResult(accepted=new, duplicates=len(events) - new, redactions=0)

    def set_title(self, project_id: str, session_id: str, title: str) -> None:
        self.titles[(project_id, session_id)] = title


__all__ = [
    "CountingSink",
    "ImportReport",
    "ImportState",
    "SendResult",
    "Sink",
    "excluded",
    "ignored_dir",
    "import_claude_code",
    "import_codex",
]
