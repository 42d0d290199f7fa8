"""Claude Code transcripts -> ctxsearch events.

Claude Code 2.x writes one JSONL file per session at
`~/.claude/projects/<encoded cwd>/<sessionId>.jsonl`, and each subagent's transcript at
`<encoded cwd>/<sessionId>/subagents/agent-<id>.jsonl` (lines with `isSidechain: true` and the
parent's `sessionId`, so they join the parent session). Older versions wrote subagents as
`agent-<id>.jsonl` next to the session file, or inline with `isSidechain: true`.

Line types read: `user` (prompts as a string or content blocks, tool results with the top-level
`toolUseResult`), `assistant` (one content block per line is usual - `text`, `thinking`,
`tool_use` - several lines share a `message.id` and repeat its `usage`), `system`
(compact boundaries, local slash-command output, API errors), `summary` / `custom-title` /
`ai-title` (the session's title). Bookkeeping lines (`file-history-snapshot`, `queue-operation`,
`last-prompt`, `permission-mode`, `progress`, `attachment`, ...) are ignored; any other type is
skipped and counted.

Mapping (the rules are in the docstrings of the handlers below and in mapping.py):

- user prompt -> `message`; `isMeta` lines (caveats, hook feedback, skill bodies) are skipped;
  slash commands become a `message` "/cmd args", their local output a `note`; a compaction
  summary (`isCompactSummary`) a `note`; "[Request interrupted by user]" a `note`.
- assistant text -> `message`, or `decision` when it opens by stating a choice
  (mapping.is_decision).
- thinking -> `note` with payload {"thinking": true}: searchable, but kept apart from what was
  said (filters on `message` do not drown in reasoning, and condense weighs notes above messages).
- a tool call and its result are ONE event, id = the tool_use line's uuid: Bash -> `tool_call`,
  `test_run` (with the parsed outcome), `commit` (`git commit`), or `file_edit` (sed -i,
  redirects); Edit/MultiEdit/Write/NotebookEdit -> `file_edit` with a compact diff; anything
  else -> `tool_call` with a compact rendering of input and result. A failed Bash command (or
  any result holding an exception line) adds an `error` event, id `<uuid>:error`, that leads
  with the exception lines.
- tokens: the message's usage (input + cache + output) once per `message.id`, on its first event.
"""

from __future__ import annotations

import re
from pathlib import Path

from .mapping import (
    compact_diff,
    content_text,
    cut_middle,
    error_files,
    error_text,
    exception_lines,
    hash_key,
    is_decision,
    project_id_from_cwd,
    relativize,
    render_structured_patch,
    render_value,
    shell_result,
    split_exit_prefix,
    strip_system_reminders,
)
from .reader import ReadResult, ShapeError, TranscriptReader, read_first_object

IGNORED_TYPES = frozenset(
    {
        "file-history-snapshot",
        "queue-operation",
        "last-prompt",
        "permission-mode",
        "mode",
        "cost-state",
        "attachment",
        "progress",
        "turn_end",
        "pr-link",
        "tag",
        "agent-name",
        "agent-setting",
        "worktree-state",
    }
)
EDIT_TOOLS = frozenset({"Edit", "MultiEdit", "Write", "NotebookEdit"})
TITLE_RANK = {"ai-title": 1, "summary": 2, "custom-title": 3}
_REJECTED = (
    "The user doesn't want to proceed with this tool use",
    "The user doesn't want to take this action",
    "Permission to use ",
    "[Request interrupted by user",
)
_INTERRUPTED = re.compile(r"^\[Request interrupted by user[^\]]*\]$|^\[Interrupted by the user\]$")
_TAG = re.compile(r"<([\w-]+)>(.*?)</\1>", re.DOTALL)
_RECENT_MESSAGES = 6
READ_RESULT_CHARS = 4000
OTHER_RESULT_CHARS = 8000


def _usage_tokens(usage) -> tuple[int | None, dict | None]:
    if not isinstance(usage, dict):
        return None, None
    keys = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
    vals = {k: usage[k] for k in keys if isinstance(usage.get(k), int) and not isinstance(usage.get(k), bool)}
    if not vals:
        return None, None
    return sum(vals.values()), vals


def _tags(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in _TAG.finditer(text)}


class ClaudeCodeReader(TranscriptReader):
    kind = "claude_code"

    def __init__(self, path, **kw):
        super().__init__(path, **kw)
        self.title = self.state.get("title")
        self.state.setdefault("mids", [])

    # -- identity ----------------------------------------------------------------------------

    def _identity(self, obj: dict) -> None:
        if not self.state.get("session"):
            sid = obj.get("sessionId")
            self.state["session"] = sid if isinstance(sid, str) and sid else Path(self.path).stem
        if not self.state.get("cwd"):
            cwd = obj.get("cwd")
            if isinstance(cwd, str) and cwd:
                self.state["cwd"] = cwd
        if not self.state.get("project"):
            if self.project_override:
                self.state["project"] = self.project_override
            elif self.state.get("cwd"):
                self.state["project"] = project_id_from_cwd(self.state["cwd"])
            else:  # no cwd on any line yet: the encoded project folder's name
                folder = Path(self.path).parent
                if folder.name == "subagents":
                    folder = folder.parent.parent
                self.state["project"] = project_id_from_cwd(folder.name.lstrip("-") or "unknown")

    @staticmethod
    def _chain(obj: dict) -> str:
        if obj.get("isSidechain"):
            return f"side:{obj.get('agentId') or ''}"
        return "main"

    @staticmethod
    def _side(obj: dict) -> dict:
        if not obj.get("isSidechain"):
            return {}
        out = {"sidechain": True}
        if isinstance(obj.get("agentId"), str):
            out["agent_id"] = obj["agentId"]
        return out

    def _line_id(self, obj: dict) -> str:
        uuid = obj.get("uuid")
        if isinstance(uuid, str) and uuid:
            return uuid
        return f"{self.session_id}:{self.line_off}"

    # -- dispatch ----------------------------------------------------------------------------

    def handle(self, obj: dict) -> None:
        t = obj.get("type")
        if t == "assistant":
            self._identity(obj)
            self._assistant(obj)
        elif t == "user":
            self._identity(obj)
            self._user(obj)
        elif t in TITLE_RANK:
            self._title(t, obj)
        elif t == "system":
            self._identity(obj)
            self._system(obj)
        elif (
            t == "attachment"
            and isinstance(obj.get("attachment"), dict)
            and obj["attachment"].get("type") == "queued_command"
        ):
            self._identity(obj)
            self._queued(obj)
        elif t in IGNORED_TYPES:
            return
        elif isinstance(t, str):
            self.unknown(t)
        else:
            self.problem("line without a string 'type'")

    def _title(self, t: str, obj: dict) -> None:
        """`summary` lines name the session (Claude Code writes them at the top of the file);
        a user-set `custom-title` wins over them, an `ai-title` is the fallback."""
        key = {"summary": "summary", "custom-title": "customTitle", "ai-title": "aiTitle"}[t]
        text = obj.get(key)
        if not isinstance(text, str) or not text.strip():
            if key not in obj:
                raise ShapeError(f"{t} line without '{key}'")
            return
        rank = TITLE_RANK[t]
        if rank >= self.state.get("title_rank", 0):
            self.state["title"] = text.strip()[:500]
            self.state["title_rank"] = rank
            self.title = self.state["title"]

    # -- assistant -----------------------------------------------------------------------------

    def _message_entry(self, mid: str) -> list:
        mids = self.state["mids"]
        for entry in mids:
            if entry[0] == mid:
                return entry
        entry = [mid, [], False]
        mids.append(entry)
        if len(mids) > _RECENT_MESSAGES:
            del mids[0]
        return entry

    def _assistant(self, obj: dict) -> None:
        msg = obj.get("message")
        if not isinstance(msg, dict):
            raise ShapeError("assistant line without a 'message' object")
        content = msg.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        if not isinstance(content, list):
            raise ShapeError("assistant message content is neither a list nor a string")
        chain = self._chain(obj)
        uuid = self._line_id(obj)
        mid = msg.get("id") if isinstance(msg.get("id"), str) else (obj.get("requestId") or uuid)
        # A response with another message id means the previous one's tool calls got their
        # results (the API requires them before the next request); give up on any that did not.
        if any(r["_chain"] == chain and r["_mid"] != mid for r in self.pending.values()):
            for key in [k for k, r in self.pending.items() if r["_chain"] == chain and r["_mid"] != mid]:
                self.resolve(key, None)
        if any(isinstance(b, dict) and b.get("type") == "tool_use" for b in content):
            self.checkpoint()
        entry = self._message_entry(mid)
        sid = obj.get("sessionId") if isinstance(obj.get("sessionId"), str) else None
        ts = obj.get("timestamp")
        model = msg.get("model") if isinstance(msg.get("model"), str) else None
        side = self._side(obj)
        multi = len(content) > 1
        synthetic = model == "<synthetic>" or bool(obj.get("isApiErrorMessage"))
        for idx, block in enumerate(content):
            if not isinstance(block, dict):
                raise ShapeError("assistant content block is not an object")
            btype = block.get("type")
            eid = f"{uuid}:{idx}" if multi else uuid
            if btype == "text":
                text = block.get("text")
                if not isinstance(text, str) or not text.strip():
                    continue
                key = "t" + hash_key(text)
            elif btype == "thinking":
                text = block.get("thinking")
                if not isinstance(text, str) or not text.strip():
                    continue
                key = "h" + hash_key(text)
            elif btype == "tool_use":
                key = "u" + str(block.get("id"))
            else:  # redacted_thinking, server tool blocks: nothing searchable
                continue
            if key in entry[1]:
                continue  # the same block written again for the same message
            entry[1].append(key)
            tokens = usage = None
            if not entry[2]:
                tokens, usage = _usage_tokens(msg.get("usage"))
                entry[2] = tokens is not None
            base = {"role": "assistant", "model": model, **side}
            if usage:
                base["usage"] = usage
            if btype == "text":
                text = text.strip()
                if synthetic:
                    if text == "No response requested.":
                        continue
                    self.add(
                        (self.line_no, idx, 0),
                        self.event(eid, sid, ts, "error", text, tokens=tokens, payload={**base, "api_error": True}),
                    )
                    continue
                type_ = "decision" if is_decision(text) else "message"
                self.add((self.line_no, idx, 0), self.event(eid, sid, ts, type_, text, tokens=tokens, payload=base))
            elif btype == "thinking":
                self.add(
                    (self.line_no, idx, 0),
                    self.event(eid, sid, ts, "note", text.strip(), tokens=tokens, payload={**base, "thinking": True}),
                )
            else:
                name = block.get("name") if isinstance(block.get("name"), str) else "tool"
                record = {
                    "_chain": chain,
                    "_mid": mid,
                    "id": eid,
                    "session": sid,
                    "ts": ts,
                    "name": name,
                    "input": block.get("input") if isinstance(block.get("input"), dict) else {},
                    "tool_use_id": block.get("id"),
                    "tokens": tokens,
                    "base": base,
                    "origin": (self.line_no, idx),
                }
                if isinstance(block.get("id"), str):
                    self.hold(block["id"], record)
                else:
                    record["_line"] = self.line_no
                    self.finish_call(record, None)

    # -- user ------------------------------------------------------------------------------------

    def _user(self, obj: dict) -> None:
        msg = obj.get("message")
        if not isinstance(msg, dict):
            raise ShapeError("user line without a 'message' object")
        content = msg.get("content")
        if isinstance(content, str):
            blocks = [{"type": "text", "text": content}]
        elif isinstance(content, list):
            blocks = content
        else:
            raise ShapeError("user message content is neither a list nor a string")
        sid = obj.get("sessionId") if isinstance(obj.get("sessionId"), str) else None
        ts = obj.get("timestamp")
        uuid = self._line_id(obj)
        side = self._side(obj)
        if obj.get("isCompactSummary"):
            text = content_text(blocks).strip()
            if text:
                self.add(
                    (self.line_no, 0, 0),
                    self.event(uuid, sid, ts, "note", text, payload={"compact_summary": True, **side}),
                )
            return
        texts: list[str] = []
        images = 0
        results = []
        for b in blocks:
            if isinstance(b, str):
                texts.append(b)
                continue
            if not isinstance(b, dict):
                raise ShapeError("user content block is not an object")
            btype = b.get("type")
            if btype == "tool_result":
                results.append(b)
            elif btype == "text" and isinstance(b.get("text"), str):
                texts.append(b["text"])
            elif btype == "image":
                images += 1
            elif btype == "document":
                texts.append("[document]")
        extra = obj.get("toolUseResult", obj.get("tool_use_result"))
        for b in results:
            result = {
                "content": b.get("content"),
                "is_error": b.get("is_error") is True,
                "extra": extra if len(results) == 1 else None,
                "ts": ts,
            }
            self.resolve(str(b.get("tool_use_id")), result)  # unknown ids: already handled or orphan
        if obj.get("isMeta"):
            return  # injected by Claude Code (caveats, hook feedback, skill bodies), not typed
        text = strip_system_reminders("\n".join(texts)).strip()
        if not text and not images:
            return
        self._user_text(obj, uuid, sid, ts, text, images, side)

    def _user_text(self, obj, uuid, sid, ts, text, images, side) -> None:
        origin = (self.line_no, 0, 0)
        if _INTERRUPTED.match(text):
            self.add(
                origin,
                self.event(uuid, sid, ts, "note", "Request interrupted by user", payload={"interrupted": True, **side}),
            )
            return
        if text.startswith("<") and (
            "<command-name>" in text
            or "<local-command-" in text
            or "<bash-" in text
            or "<task-notification>" in text
            or "<user-memory-input>" in text
        ):
            self._tagged(uuid, sid, ts, text, side)
            return
        # A typed prompt means the model's earlier calls in this chain are over.
        self.give_up(self._chain(obj), before_line=self.line_no)
        payload = {"role": "user", **side}
        if images:
            payload["images"] = images
            text = (text + "\n" if text else "") + " ".join(["[image]"] * images)
        self.add(origin, self.event(uuid, sid, ts, "message", text, payload=payload))

    def _tagged(self, uuid, sid, ts, text, side) -> None:
        """Slash commands (`<command-name>`), their output (`<local-command-stdout>`), `!` shell
        commands (`<bash-input>`, `<bash-stdout>`) and background-task notifications."""
        tags = _tags(text)
        origin = (self.line_no, 0, 0)
        if "command-name" in tags:
            cmd = tags["command-name"].strip()
            args = tags.get("command-args", "").strip()
            line = f"{cmd} {args}".strip()
            self.add(
                origin,
                self.event(uuid, sid, ts, "message", line, payload={"role": "user", "slash_command": cmd, **side}),
            )
        elif "local-command-caveat" in tags:
            return
        elif "local-command-stdout" in tags or "local-command-stderr" in tags:
            out = "\n".join(
                x for x in (tags.get("local-command-stdout", ""), tags.get("local-command-stderr", "")) if x.strip()
            ).strip()
            if out:
                self.add(origin, self.event(uuid, sid, ts, "note", out, payload={"local_command_output": True, **side}))
        elif "bash-input" in tags:
            self.add(
                origin,
                self.event(
                    uuid, sid, ts, "note", f"$ {tags['bash-input'].strip()}", payload={"user_shell": True, **side}
                ),
            )
        elif "bash-stdout" in tags or "bash-stderr" in tags:
            out = "\n".join(x for x in (tags.get("bash-stdout", ""), tags.get("bash-stderr", "")) if x.strip())
            if out.strip():
                self.add(origin, self.event(uuid, sid, ts, "note", out.strip(), payload={"user_shell": True, **side}))
        else:
            self.add(
                origin, self.event(uuid, sid, ts, "note", re.sub(r"</?[\w-]+>", "", text).strip(), payload=side or None)
            )

    def _queued(self, obj: dict) -> None:
        """A prompt typed while the model was busy reaches the transcript only as an attachment
        (`queued_command`, commandMode "prompt"); it is a user `message` like any other. Queued
        task notifications are not."""
        a = obj["attachment"]
        origin = a.get("origin") if isinstance(a.get("origin"), dict) else {}
        if a.get("commandMode", "prompt") != "prompt" or origin.get("kind", "human") != "human":
            return
        text = strip_system_reminders(content_text(a.get("prompt"))).strip()
        if not text:
            return
        sid = obj.get("sessionId") if isinstance(obj.get("sessionId"), str) else None
        self.add(
            (self.line_no, 0, 0),
            self.event(
                self._line_id(obj),
                sid,
                obj.get("timestamp") or a.get("timestamp"),
                "message",
                text,
                payload={"role": "user", "queued": True, **self._side(obj)},
            ),
        )

    # -- system ----------------------------------------------------------------------------------

    def _system(self, obj: dict) -> None:
        """Compact boundaries -> a short `note`; local slash-command lines as for user lines;
        API errors (level "error") -> `error`. Other system lines (turn durations, hook
        summaries, informational notices) are ignored."""
        sub = obj.get("subtype")
        sid = obj.get("sessionId") if isinstance(obj.get("sessionId"), str) else None
        ts = obj.get("timestamp")
        uuid = self._line_id(obj)
        side = self._side(obj)
        content = obj.get("content") if isinstance(obj.get("content"), str) else ""
        if sub == "compact_boundary":
            meta = obj.get("compactMetadata") if isinstance(obj.get("compactMetadata"), dict) else {}
            payload = {
                "compact_boundary": True,
                "trigger": meta.get("trigger"),
                "pre_tokens": meta.get("preTokens"),
                **side,
            }
            self.add(
                (self.line_no, 0, 0),
                self.event(uuid, sid, ts, "note", content or "Conversation compacted", payload=payload),
            )
        elif sub == "local_command" and content:
            self._tagged(uuid, sid, ts, content, side)
        elif obj.get("level") == "error" or sub == "api_error":
            err = obj.get("error")
            text = content or (render_value(err, 2000) if err else "") or f"system error ({sub})"
            self.add(
                (self.line_no, 0, 0),
                self.event(uuid, sid, ts, "error", text, payload={"system": sub or "error", **side}),
            )

    # -- tool calls ------------------------------------------------------------------------------

    def finish_call(self, rec: dict, res: dict | None) -> None:
        name = rec["name"]
        inp = rec["input"]
        payload = {**rec["base"], "tool_use_id": rec.get("tool_use_id")}
        if res is None:
            text, is_error, extra = "", False, None
            payload["result"] = "missing"
        else:
            text = strip_system_reminders(content_text(res.get("content")))
            is_error = bool(res.get("is_error"))
            extra = res.get("extra")
            if is_error:
                payload["is_error"] = True
        rejected = is_error and text.lstrip().startswith(_REJECTED)
        if rejected:
            payload["rejected"] = True
        if name == "Bash":
            self._bash(rec, inp, text, is_error, extra, res, payload, rejected)
        elif name in EDIT_TOOLS:
            self._edit(rec, name, inp, text, is_error, extra, payload)
        else:
            self._generic(rec, name, inp, text, is_error, extra, payload, rejected)

    def _emit(self, rec, type_, content, *, files=(), payload=None, tool=None, sub=0):
        origin = (*rec["origin"], sub)
        ts = rec["ts"]
        self.add(
            origin,
            self.event(
                rec["id"] if sub == 0 else f"{rec['id']}:error",
                rec["session"],
                ts,
                type_,
                content,
                tool=tool or rec["name"],
                files=files,
                tokens=rec["tokens"] if sub == 0 else None,
                payload=payload,
            ),
        )

    def _bash(self, rec, inp, text, is_error, extra, res, payload, rejected):
        """One event per command: `$ <command>\\n<output>`, typed by mapping.classify_command;
        plus an `error` event when it failed or printed an exception."""
        command = inp.get("command") if isinstance(inp.get("command"), str) else ""
        exit_code, output = split_exit_prefix(text)
        if isinstance(extra, dict):
            if not output.strip() and (extra.get("stdout") or extra.get("stderr")):
                output = "\n".join(x for x in (extra.get("stdout"), extra.get("stderr")) if isinstance(x, str) and x)
            if extra.get("interrupted"):
                payload["interrupted"] = True
            if extra.get("backgroundTaskId"):
                payload["background_task"] = str(extra["backgroundTaskId"])
            if isinstance(extra.get("returnCodeInterpretation"), str):
                payload["exit_meaning"] = extra["returnCodeInterpretation"][:200]
        elif isinstance(extra, str) and exit_code is None:
            exit_code, _ = split_exit_prefix(extra)
        if exit_code is None and res is not None and not is_error and not payload.get("interrupted"):
            exit_code = 0
        desc = inp.get("description")
        if isinstance(desc, str) and desc.strip():
            payload["description"] = desc.strip()[:300]
        if inp.get("run_in_background"):
            payload["background"] = True
        sr = shell_result(command, output, exit_code, failed=res is not None and is_error, has_result=res is not None)
        payload.update(sr.payload)
        self._emit(rec, sr.type, sr.content, files=sr.files, payload=payload)
        if sr.error and not rejected:
            content, files, n_exc = sr.error
            epayload = {
                "tool_use_id": rec.get("tool_use_id"),
                "exit_code": exit_code,
                "source": rec["id"],
                "exceptions": n_exc,
                **({"sidechain": True} if payload.get("sidechain") else {}),
            }
            self._emit(rec, "error", content, files=files, payload=epayload, sub=1)

    def _edit(self, rec, name, inp, text, is_error, extra, payload):
        """Edit/MultiEdit/Write/NotebookEdit -> `file_edit` with the file relative to the cwd and a
        compact unified diff (toolUseResult.structuredPatch when present, else difflib on
        old/new strings; Write: the head of the new file). A failed edit is a `tool_call`."""
        extra = extra if isinstance(extra, dict) else {}
        path = inp.get("file_path") or inp.get("notebook_path") or extra.get("filePath") or ""
        path = path if isinstance(path, str) else ""
        rel = relativize(path, self.cwd) if path else "(unknown file)"
        hunks = extra.get("structuredPatch") if isinstance(extra.get("structuredPatch"), list) else None
        original = extra.get("originalFile") if isinstance(extra.get("originalFile"), str) else None
        if name == "Edit":
            if hunks:
                body = render_structured_patch(rel, hunks, original)
            else:
                body = compact_diff(
                    str(inp.get("old_string") or ""), str(inp.get("new_string") or ""), rel, original=original
                )
            if inp.get("replace_all"):
                payload["replace_all"] = True
            head = f"Edit {rel}"
        elif name == "MultiEdit":
            edits = inp.get("edits") if isinstance(inp.get("edits"), list) else []
            if hunks:
                body = render_structured_patch(rel, hunks, original)
            else:
                body = "\n".join(
                    compact_diff(str(e.get("old_string") or ""), str(e.get("new_string") or ""), rel, original=original)
                    for e in edits
                    if isinstance(e, dict)
                )
            payload["edits"] = len(edits)
            head = f"MultiEdit {rel} ({len(edits)} edits)"
        elif name == "Write":
            new = inp.get("content") if isinstance(inp.get("content"), str) else ""
            kind = extra.get("type")
            if kind == "update" and hunks:
                body = render_structured_patch(rel, hunks, original)
            else:
                n = new.count("\n") + (1 if new and not new.endswith("\n") else 0)
                body = f"({n} lines)\n" + (new[:3000] + ("\n…" if len(new) > 3000 else ""))
            if kind in ("create", "update"):
                payload["write"] = kind
            head = f"Write {rel}"
        else:  # NotebookEdit
            src = inp.get("new_source") if isinstance(inp.get("new_source"), str) else ""
            head = f"NotebookEdit {rel} cell {inp.get('cell_id') or '?'} ({inp.get('edit_mode') or 'replace'})"
            body = src[:3000]
        type_ = "file_edit"
        content = f"{head}\n{body}"
        if is_error:
            type_ = "tool_call"
            content = f"{head} (failed)\n{cut_middle(text, 2000)}\n{body}"
        self._emit(rec, type_, content, files=[path] if path else [], payload=payload)
        exc = exception_lines(text) if is_error else []
        if exc:
            self._emit(
                rec,
                "error",
                error_text(exc, f"{name} {rel}", text),
                files=[path] if path else [],
                payload={"tool_use_id": rec.get("tool_use_id"), "source": rec["id"]},
                sub=1,
            )

    def _generic(self, rec, name, inp, text, is_error, extra, payload, rejected):
        """Read/Grep/Glob/LS/WebFetch/WebSearch/Task/TodoWrite/MCP tools and the rest ->
        `tool_call` with their files (Read's file_path, Grep/Glob/LS's path) and a compact
        rendering of input and result. An approved ExitPlanMode plan is a `decision`."""
        files: list[str] = []
        type_ = "tool_call"
        extra_d = extra if isinstance(extra, dict) else {}
        if name == "Read":
            path = inp.get("file_path") if isinstance(inp.get("file_path"), str) else ""
            files = [path] if path else []
            rng = ""
            if inp.get("offset") or inp.get("limit"):
                rng = f" (offset {inp.get('offset') or 0}, limit {inp.get('limit') or '-'})"
            f = extra_d.get("file") if isinstance(extra_d.get("file"), dict) else {}
            body = f.get("content") if isinstance(f.get("content"), str) else text
            content = f"Read {relativize(path, self.cwd)}{rng}\n{cut_middle(body, READ_RESULT_CHARS)}"
        elif name in ("Grep", "Glob", "LS"):
            path = inp.get("path") if isinstance(inp.get("path"), str) else ""
            files = [path] if path else []
            what = str(inp.get("pattern") or "")
            where = f"in {relativize(path, self.cwd)}" if path else ""
            flt = f"({inp.get('glob') or inp.get('type')})" if inp.get("glob") or inp.get("type") else ""
            head = " ".join(x for x in (name, what, where, flt) if x)
            content = f"{head}\n{cut_middle(text, READ_RESULT_CHARS)}"
        elif name in ("Task", "Agent"):
            kind = inp.get("subagent_type") or "agent"
            prompt = inp.get("prompt") if isinstance(inp.get("prompt"), str) else ""
            content = (
                f"{name} ({kind}): {inp.get('description') or ''}\n{cut_middle(prompt, 3000)}\n"
                f"--- result ---\n{cut_middle(text, OTHER_RESULT_CHARS)}"
            )
            payload["subagent_type"] = kind
            if isinstance(extra_d.get("agentId"), str):
                payload["agent_id"] = extra_d["agentId"]
        elif name == "TodoWrite":
            todos = inp.get("todos") if isinstance(inp.get("todos"), list) else []
            marks = {"completed": "[x]", "in_progress": "[~]", "pending": "[ ]"}
            lines = [f"{marks.get(t.get('status'), '[ ]')} {t.get('content')}" for t in todos if isinstance(t, dict)]
            content = "Todos:\n" + "\n".join(lines)
        elif name == "ExitPlanMode":
            plan = inp.get("plan") if isinstance(inp.get("plan"), str) else render_value(inp)
            if not is_error and payload.get("result") != "missing":
                type_ = "decision"
                content = f"Plan approved:\n{plan}"
            else:
                content = f"Plan proposed:\n{plan}\n---\n{cut_middle(text, 2000)}"
        elif name in ("WebFetch", "WebSearch"):
            head = inp.get("url") or inp.get("query") or ""
            prompt = f"\n{inp['prompt']}" if isinstance(inp.get("prompt"), str) else ""
            content = f"{name} {head}{prompt}\n---\n{cut_middle(text, OTHER_RESULT_CHARS)}"
        elif name.startswith("mcp__"):
            parts = name.split("__")
            server, tool = (parts[1], "__".join(parts[2:])) if len(parts) >= 3 else (name, "")
            payload["mcp_server"], payload["mcp_tool"] = server, tool
            content = f"MCP {server}.{tool}\n{render_value(inp, 2000)}\n---\n{cut_middle(text, OTHER_RESULT_CHARS)}"
        else:
            for k in ("file_path", "path", "notebook_path"):
                if isinstance(inp.get(k), str):
                    files.append(inp[k])
            content = f"{name}\n{render_value(inp, 2000)}\n---\n{cut_middle(text, OTHER_RESULT_CHARS)}"
        self._emit(rec, type_, content.rstrip(), files=files, payload=payload)
        exc = exception_lines(text) if is_error and not rejected else []
        if exc:
            self._emit(
                rec,
                "error",
                error_text(exc, name, text),
                files=files + error_files(text),
                payload={"tool_use_id": rec.get("tool_use_id"), "source": rec["id"]},
                sub=1,
            )


def read_claude_code(
    path: str | Path,
    *,
    offset: int = 0,
    state: dict | None = None,
    project: str | None = None,
    max_content_chars: int = 100_000,
    final: bool = False,
) -> ReadResult:
    """Read one Claude Code transcript (session or subagent file) from `offset`.

    `state` is the ReadResult.state of the previous read of this file (None for a first read);
    a subagent file may start with {"cwd": ..., "project": ...} of its parent session so that its
    events land in the same project with paths relative to the same cwd. `project` overrides the
    project id. `final=True` gives up on tool calls still waiting for a result (use it for a file
    that no longer changes); otherwise such calls are held (see reader.py).
    """
    reader = ClaudeCodeReader(path, state=state, project=project, max_content_chars=max_content_chars)
    return reader.read(offset, final=final)


# -- discovery -------------------------------------------------------------------------------------


def projects_root(root: str | Path) -> Path:
    """`~/.claude` or `~/.claude/projects` -> the projects folder."""
    root = Path(root).expanduser()
    if (root / "projects").is_dir() and not any(root.glob("*.jsonl")):
        return root / "projects"
    return root


def subagent_files(transcript: str | Path) -> list[Path]:
    """A session's subagent transcripts: `<dir>/<sessionId>/**/*.jsonl`, and legacy
    `agent-*.jsonl` siblings whose lines carry the session's id."""
    transcript = Path(transcript)
    out: list[Path] = []
    folder = transcript.parent / transcript.stem
    if folder.is_dir():
        out += sorted(p for p in folder.rglob("*.jsonl") if p.is_file())
    session = transcript.stem
    for p in sorted(transcript.parent.glob("agent-*.jsonl")):
        obj = read_first_object(p, lambda o: isinstance(o.get("sessionId"), str), max_lines=20)
        if obj and obj.get("sessionId") == session:
            out.append(p)
    return out


def find_sessions(root: str | Path) -> list[tuple[Path, list[Path]]]:
    """Every session transcript under a projects folder with its subagent files, main file first."""
    base = projects_root(root)
    if not base.is_dir():
        return []
    sessions: list[tuple[Path, list[Path]]] = []
    claimed: set[Path] = set()
    mains = sorted(
        p
        for p in base.rglob("*.jsonl")
        if p.is_file() and not p.name.startswith("agent-") and "subagents" not in p.parts[len(base.parts) :]
    )
    # a file inside another session's folder (<sessionId>/...) is that session's, not a session
    main_set = {p.parent / p.stem for p in mains}
    mains = [p for p in mains if not any(parent in main_set for parent in p.parents)]
    for p in mains:
        subs = subagent_files(p)
        claimed.update(subs)
        sessions.append((p, subs))
    # legacy agent files whose parent session file is gone: read them on their own
    for p in sorted(base.rglob("agent-*.jsonl")):
        if p not in claimed and p.is_file():
            sessions.append((p, []))
    return sessions


def peek_identity(path: str | Path) -> tuple[str | None, str | None]:
    """(sessionId, cwd) from the first lines that carry them, without reading the whole file."""
    obj = read_first_object(
        path, lambda o: isinstance(o.get("cwd"), str) and o.get("type") in ("user", "assistant", "system")
    )
    if not obj:
        return None, None
    return obj.get("sessionId"), obj.get("cwd")


__all__ = ["ClaudeCodeReader", "find_sessions", "peek_identity", "projects_root", "read_claude_code", "subagent_files"]
