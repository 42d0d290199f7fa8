"""Codex rollout files -> ctxsearch events.

Codex CLI writes one JSONL "rollout" per session at
`~/.codex/sessions/YYYY/MM/DD/rollout-<timestamp>-<uuid>.jsonl` (older builds: directly under
`sessions/`). Current lines are `{"timestamp", "type", "payload"}` with type

- `session_meta` (payload: id, timestamp, cwd, originator, cli_version, git {...}): identity;
- `response_item`: what the model saw and said - `message` (role user/assistant/developer,
  content `input_text`/`output_text`/`input_image`), `reasoning` (summary / content;
  `encrypted_content` is ignored), `function_call` (name `shell`, `exec_command`,
  `shell_command`, `apply_patch`, `write_stdin`, `update_plan`, MCP tools...; `arguments` is a
  JSON string; `call_id`), `function_call_output` (call_id, output: plain text, a JSON string
  {"output", "metadata": {"exit_code"}}, "Exit code: N\\nWall time: ...\\nOutput:\\n..." or a
  list of content items), `custom_tool_call`/`custom_tool_call_output` (freeform apply_patch),
  `local_shell_call` (action.exec.command argv), `web_search_call`;
- `event_msg`: UI events - `user_message`, `agent_message`, `agent_reasoning` (copies of the
  response items), `token_count`, `exec_command_end`, `patch_apply_end`, `turn_aborted`,
  `task_started`/`task_complete`, `error`, ...;
- `turn_context` (cwd, model, policies), `compacted` (the summary a compaction left).

The oldest rollouts (2025) have no wrapper: a first line `{"id", "timestamp", "instructions"}`,
`{"record_type": "state"}` lines and bare items (`{"type": "message", ...}`); both are read.

Mapping: as for Claude Code (see claude_code.py): user/assistant text -> `message` (or
`decision`), reasoning -> `note` {"thinking": true}; a shell command with its output is ONE
event (`tool_call`/`test_run`/`commit`/`file_edit`) plus an `error` event when it failed;
apply_patch -> `file_edit` with the patched files relative to the cwd and the patch as the diff.
A message that appears both as a response item and as an event_msg is emitted once (the first
copy; the other is recognised by its text). Injected context (`<environment_context>`, AGENTS.md
and permission instructions, developer messages) is skipped.

Ids: Codex lines carry no id, so they are derived from the session id and the line's byte offset
(`<session>:<offset>`) or, for tool calls, the call id (`<session>:<call_id>`) - stable when
the file is appended to and read again.
"""

from __future__ import annotations

import json
import posixpath
import re
from pathlib import Path

from .mapping import (
    argv_to_command,
    content_text,
    cut_middle,
    error_files,
    error_text,
    exception_lines,
    hash_key,
    is_decision,
    normalize_timestamp,
    patch_files,
    project_id_from_cwd,
    render_value,
    shell_result,
)
from .reader import ReadResult, ShapeError, TranscriptReader, read_first_object

WRAPPED = frozenset({"session_meta", "response_item", "event_msg", "turn_context", "compacted"})
ITEM_TYPES = frozenset(
    {
        "message",
        "reasoning",
        "function_call",
        "function_call_output",
        "custom_tool_call",
        "custom_tool_call_output",
        "local_shell_call",
        "local_shell_call_output",
        "web_search_call",
        "image_generation_call",
        "tool_search_call",
        "tool_search_output",
    }
)
SHELL_TOOLS = frozenset(
    {"shell", "container.exec", "shell_command", "exec_command", "local_shell", "exec", "bash", "run_command"}
)
CONTINUE_TOOLS = frozenset({"write_stdin", "wait", "read_output"})
_INJECTED = (
    "<environment_context>",
    "<user_instructions>",
    "# AGENTS.md instructions",
    "<INSTRUCTIONS>",
    "<permissions instructions>",
    "<user_info>",
    "<collaboration_mode>",
    "<skills_instructions>",
    "<turn_aborted>",
    "<subagent_notification>",
    "<personality_spec>",
)
_HEADER = re.compile(
    r"^(Exit code|Wall time|Duration|Process exited with code|Process running with session ID|"
    r"Chunk ID|Original token count|Total output lines|Script running with cell ID)\b:? ?(.*)$"
)
_UUID = re.compile(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})", re.I)
_DEDUP_WINDOW = 8
_CONTEXT_CWD = re.compile(r"<cwd>([^<]+)</cwd>|Current working directory: ([^\n]+)")


def parse_output(output) -> tuple[str, int | None, str | None]:
    """(text, exit code, running process/cell id) of a function_call_output's `output`."""
    running = None
    if isinstance(output, list):
        output = content_text(output)
    elif isinstance(output, dict):
        inner = output.get("output", output.get("content", ""))
        code = output.get("exit_code")
        meta = output.get("metadata")
        if code is None and isinstance(meta, dict):
            code = meta.get("exit_code")
        if code is None and output.get("success") is False:
            code = 1
        if isinstance(inner, str) and not inner.lstrip().startswith("{"):
            text, inner_code = inner, None
        else:
            text, inner_code, running = parse_output(inner)
        ok = isinstance(code, int) and not isinstance(code, bool)
        return text, code if ok else inner_code, running
    if not isinstance(output, str):
        return (json.dumps(output) if output is not None else ""), None, None
    text = output
    s = text.lstrip()
    if s.startswith("{") and s.rstrip().endswith("}"):
        try:
            d = json.loads(s)
        except ValueError:
            d = None
        if isinstance(d, dict) and ("output" in d or "metadata" in d or "exit_code" in d):
            return parse_output(d)
    lines = text.split("\n")
    code = None
    if lines and _HEADER.match(lines[0]):
        i = 0
        while i < len(lines) and i < 12:
            line = lines[i]
            if line.strip() == "Output:":
                i += 1
                break
            m = _HEADER.match(line)
            if not m:
                break
            key, val = m.group(1), m.group(2).strip()
            if key in ("Exit code", "Process exited with code"):
                try:
                    code = int(val.split()[0])
                except (ValueError, IndexError):
                    pass
            elif key in ("Process running with session ID", "Script running with cell ID"):
                running = val.split()[0] if val else None
            i += 1
        text = "\n".join(lines[i:])
    return text, code, running


def _apply_patch_text(text: str) -> str | None:
    if "*** Begin Patch" not in text:
        return None
    start = text.index("*** Begin Patch")
    end = text.find("*** End Patch", start)
    return text[start : end + len("*** End Patch")] if end >= 0 else text[start:]


class CodexReader(TranscriptReader):
    kind = "codex"

    def __init__(self, path, **kw):
        super().__init__(path, **kw)
        self.state.setdefault("dedup", {})
        self.state.setdefault("running", {})

    # -- identity ----------------------------------------------------------------------------

    def _meta(self, p: dict, ts) -> None:
        if self.state.get("session"):
            return  # the first session_meta owns identity (forks and resumes repeat it)
        sid = p.get("id") if isinstance(p.get("id"), str) and p.get("id") else None
        if not sid:
            m = _UUID.search(Path(self.path).name)
            sid = m.group(1) if m else Path(self.path).stem
        self.state["session"] = sid
        cwd = p.get("cwd")
        if isinstance(cwd, str) and cwd:
            self.state["cwd"] = cwd
        self.state["project"] = self.project_override or project_id_from_cwd(self.state.get("cwd") or "")
        for k in ("cli_version", "originator"):
            if isinstance(p.get(k), str):
                self.state[k] = p[k]
        ts = ts or p.get("timestamp")
        if ts:
            self.state["ts"] = self._ts(ts)

    def _ts(self, ts):
        return normalize_timestamp(ts) or self.state.get("ts")

    def _ensure_identity(self) -> None:
        if not self.state.get("session"):
            self._meta({}, None)

    def _cwd_from_context(self, text: str) -> None:
        if not self.state.get("cwd"):
            m = _CONTEXT_CWD.search(text)
            if m:
                self.state["cwd"] = (m.group(1) or m.group(2)).strip()
                if not self.project_override:
                    self.state["project"] = project_id_from_cwd(self.state["cwd"])

    # -- dispatch ------------------------------------------------------------------------------

    def handle(self, obj: dict) -> None:
        t = obj.get("type")
        if t in WRAPPED and "payload" in obj:
            p = obj["payload"]
            if not isinstance(p, dict):
                raise ShapeError(f"{t} line whose payload is not an object")
            ts = obj.get("timestamp")
            if t == "session_meta":
                self._meta(p, ts)
                return
            self._ensure_identity()
            if t == "response_item":
                self._item(p, ts)
            elif t == "event_msg":
                self._event_msg(p, ts)
            elif t == "turn_context":
                if isinstance(p.get("model"), str):
                    self.state["model"] = p["model"]
                self.give_up(before_line=self.line_no)
            else:  # compacted
                text = p.get("message") if isinstance(p.get("message"), str) else ""
                if text.strip():
                    self.add(
                        (self.line_no, 0, 0),
                        self.event(self._line_eid(), None, ts, "note", text.strip(), payload={"compact_summary": True}),
                    )
        elif "record_type" in obj:
            return  # legacy state line
        elif t is None and isinstance(obj.get("id"), str) and ("instructions" in obj or "timestamp" in obj):
            self._meta(obj, obj.get("timestamp"))  # legacy first line
        elif t in ITEM_TYPES:
            self._ensure_identity()
            self._item(obj, obj.get("timestamp"))  # legacy bare item
        elif isinstance(t, str):
            self.unknown(t)
        else:
            self.problem("line without a string 'type'")

    def _line_eid(self) -> str:
        return f"{self.session_id}:{self.line_off}"

    # -- messages ------------------------------------------------------------------------------

    def _candidate(self, role: str, source: str, text: str, ts, *, images: int = 0) -> None:
        """Emit a message unless it is the other representation (response item vs event_msg) of
        one already emitted."""
        text = text.strip()
        if not text and not images:
            return
        key = hash_key(" ".join(text.split()))
        window = self.state["dedup"].setdefault(role, [])
        for i, (src, k) in enumerate(window):
            if k == key and src != source:
                del window[i]
                return
        window.append([source, key])
        if len(window) > _DEDUP_WINDOW:
            del window[0]
        origin = (self.line_no, 0, 0)
        eid = self._line_eid()
        if role == "reasoning":
            payload = {"thinking": True, "role": "assistant", "model": self.state.get("model")}
            self.add(origin, self.event(eid, None, ts, "note", text, payload=payload))
            return
        if role == "user":
            self.give_up(before_line=self.line_no)
            payload = {"role": "user"}
            if images:
                payload["images"] = images
                text = (text + "\n" if text else "") + " ".join(["[image]"] * images)
            if text.startswith("<user_shell_command>"):
                inner = re.sub(r"</?(?:user_shell_command|command|result)>", "\n", text).strip()
                self.add(origin, self.event(eid, None, ts, "note", f"$ {inner}", payload={"user_shell": True}))
                return
            self.add(origin, self.event(eid, None, ts, "message", text, payload=payload))
            return
        type_ = "decision" if is_decision(text) else "message"
        self.add(
            origin,
            self.event(eid, None, ts, type_, text, payload={"role": "assistant", "model": self.state.get("model")}),
        )

    def _item(self, p: dict, ts) -> None:
        it = p.get("type")
        if it == "message":
            role = p.get("role")
            content = p.get("content")
            if isinstance(content, str):
                content = [{"type": "input_text" if role == "user" else "output_text", "text": content}]
            if not isinstance(content, list):
                raise ShapeError("message item whose content is not a list")
            text = content_text(content, image_marker="")
            images = sum(1 for b in content if isinstance(b, dict) and b.get("type") in ("input_image", "image"))
            if role == "user":
                stripped = text.lstrip()
                if stripped.startswith(_INJECTED):
                    self._cwd_from_context(stripped)
                    return
                self._candidate("user", "item", text, ts, images=images)
            elif role == "assistant":
                self._candidate("assistant", "item", text, ts)
            return  # developer / system: instructions, not conversation
        if it == "reasoning":
            parts = [b.get("text") for b in (p.get("summary") or []) if isinstance(b, dict)]
            if not any(parts) and isinstance(p.get("content"), list):
                parts = [b.get("text") for b in p["content"] if isinstance(b, dict)]
            text = "\n\n".join(x for x in parts if isinstance(x, str) and x.strip())
            if text:
                self._candidate("reasoning", "item", text, ts)
            return
        if it in ("function_call", "custom_tool_call", "local_shell_call"):
            self.checkpoint()
            call_id = p.get("call_id") or p.get("id")
            name = (
                p.get("name")
                if isinstance(p.get("name"), str)
                else ("local_shell" if it == "local_shell_call" else "tool")
            )
            if it == "function_call":
                raw = p.get("arguments")
                try:
                    args = json.loads(raw) if isinstance(raw, str) else (raw if isinstance(raw, dict) else {})
                except ValueError:
                    args = {"input": raw}
                if not isinstance(args, dict):
                    args = {"input": args}
            elif it == "custom_tool_call":
                args = {"input": p.get("input") if isinstance(p.get("input"), str) else ""}
            else:
                action = p.get("action") if isinstance(p.get("action"), dict) else {}
                args = {"command": action.get("command"), "workdir": action.get("working_directory")}
            record = {
                "id": f"{self.session_id}:{call_id}" if call_id else self._line_eid(),
                "ts": ts,
                "name": name,
                "args": args,
                "call_id": call_id,
                "origin": (self.line_no, 0),
                "_chain": "main",
                "model": self.state.get("model"),
            }
            if isinstance(call_id, str) and call_id:
                self.hold(call_id, record)
            else:
                self.finish_call(record, None)
            return
        if it in ("function_call_output", "custom_tool_call_output", "local_shell_call_output", "tool_search_output"):
            call_id = p.get("call_id")
            self.resolve(str(call_id), {"output": p.get("output"), "ts": ts})
            return
        if it == "web_search_call":
            action = p.get("action") if isinstance(p.get("action"), dict) else {}
            query = action.get("query") or action.get("url") or render_value(action, 500)
            self.add(
                (self.line_no, 0, 0),
                self.event(
                    self._line_eid(),
                    None,
                    ts,
                    "tool_call",
                    f"web search: {query}",
                    tool="web_search",
                    payload={"status": p.get("status")},
                ),
            )

    def _event_msg(self, p: dict, ts) -> None:
        et = p.get("type")
        if et == "user_message":
            msg = p.get("message") if isinstance(p.get("message"), str) else ""
            images = (
                len(p.get("images") or []) + len(p.get("local_images") or [])
                if isinstance(p.get("images") or [], list) and isinstance(p.get("local_images") or [], list)
                else 0
            )
            self._candidate("user", "event", msg, ts, images=images)
        elif et == "agent_message":
            if isinstance(p.get("message"), str):
                self._candidate("assistant", "event", p["message"], ts)
        elif et == "agent_reasoning":
            if isinstance(p.get("text"), str):
                self._candidate("reasoning", "event", p["text"], ts)
        elif et == "token_count":
            self._tokens(p)
        elif et == "exec_command_end":
            rec = self.pending.get(str(p.get("call_id")))
            if rec is not None:
                rec["exec_end"] = {
                    "exit_code": p.get("exit_code"),
                    "output": p.get("aggregated_output") if isinstance(p.get("aggregated_output"), str) else None,
                }
        elif et == "patch_apply_end":
            rec = self.pending.get(str(p.get("call_id")))
            if rec is not None:
                rec["patch_end"] = {"success": p.get("success"), "stderr": p.get("stderr")}
        elif et == "turn_aborted":
            self.give_up(before_line=self.line_no)
            reason = p.get("reason") or "aborted"
            self.add(
                (self.line_no, 0, 0),
                self.event(
                    self._line_eid(),
                    None,
                    ts,
                    "note",
                    f"Turn aborted ({reason})",
                    payload={"interrupted": True, "reason": reason},
                ),
            )
        elif et in ("task_complete", "task_started"):
            self.give_up(before_line=self.line_no)
        elif et == "error" and isinstance(p.get("message"), str):
            self.add(
                (self.line_no, 0, 0),
                self.event(self._line_eid(), None, ts, "error", p["message"], payload={"codex_error": True}),
            )
        # other event_msg kinds are UI telemetry: ignored

    def _tokens(self, p: dict) -> None:
        info = p.get("info") if isinstance(p.get("info"), dict) else {}
        total = (
            (info.get("total_token_usage") or {}).get("total_tokens")
            if isinstance(info.get("total_token_usage"), dict)
            else None
        )
        if not isinstance(total, int):
            return
        delta = total - int(self.state.get("tok", 0))
        self.state["tok"] = total
        if delta <= 0:
            return
        if self._items:  # the response this count closes is the last event read
            last = self._items[-1][1]
            if last["tokens"] is None and last["type"] != "note":
                last["tokens"] = delta
                return
        self.state["tok_pending"] = int(self.state.get("tok_pending", 0)) + delta

    def event(self, eid, session_id, timestamp, type_, content, **kw):
        if type_ != "note" and kw.get("tokens") is None and self.state.get("tok_pending"):
            kw["tokens"] = self.state.pop("tok_pending")
        return super().event(eid, session_id, timestamp, type_, content, **kw)

    # -- tool calls ------------------------------------------------------------------------------

    def finish_call(self, rec: dict, res: dict | None) -> None:
        name = rec["name"]
        args = rec["args"]
        payload = {"call_id": rec.get("call_id"), "model": rec.get("model")}
        if res is None:
            text, code, running = "", None, None
            payload["result"] = "missing"
        else:
            text, code, running = parse_output(res.get("output"))
        end = rec.get("exec_end") or {}
        if code is None and isinstance(end.get("exit_code"), int):
            code = end["exit_code"]
        if not text and isinstance(end.get("output"), str):
            text = end["output"]
        patch = None
        if name == "apply_patch":
            patch = args.get("input") if isinstance(args.get("input"), str) else args.get("patch")
        command = ""
        if name in SHELL_TOOLS or name.endswith(".exec"):
            command = argv_to_command(args.get("command") if "command" in args else args.get("cmd"))
            if isinstance(args.get("command"), list) and args["command"][:1] == ["apply_patch"]:
                patch = args["command"][1] if len(args["command"]) > 1 else ""
            elif "*** Begin Patch" in command:
                patch = _apply_patch_text(command)
        if isinstance(patch, str):
            self._patch(rec, patch, text, code, res, payload)
            return
        if command or name in SHELL_TOOLS:
            self._shell(rec, command, text, code, running, res, payload, args)
            return
        if name in CONTINUE_TOOLS:
            key = str(args.get("session_id") or args.get("cell_id") or "")
            proc = self.state["running"].get(key)
            if proc:
                if code is not None or res is None:
                    self.state["running"].pop(key, None)
                cont = {**payload, "continues": proc.get("id"), "process": key}
                self._shell(rec, proc.get("cmd", ""), text, code, running, res, cont, {}, continued=True)
                return
        self._generic(rec, name, args, text, code, res, payload)

    def _emit(self, rec, type_, content, *, files=(), payload=None, tool=None, sub=0):
        eid = rec["id"] if sub == 0 else f"{rec['id']}:error"
        self.add(
            (*rec["origin"], sub),
            self.event(eid, None, rec["ts"], type_, content, tool=tool or rec["name"], files=files, payload=payload),
        )

    def _resolve_paths(self, paths, workdir):
        if not workdir or not isinstance(workdir, str):
            return list(paths)
        return [p if p.startswith("/") else posixpath.join(workdir, p) for p in paths]

    def _shell(self, rec, command, text, code, running, res, payload, args, continued=False):
        workdir = args.get("workdir") if isinstance(args, dict) else None
        if isinstance(workdir, str) and workdir:
            payload["workdir"] = workdir
        if running is not None and res is not None:
            payload["running"] = True
            payload["process"] = running
            self.state["running"][running] = {"cmd": command, "id": rec["id"]}
            self._emit(
                rec,
                "tool_call",
                f"$ {command}\n{text}".rstrip(),
                payload={**payload, "exit_code": None},
                files=self._resolve_paths(shell_result(command, "", None, has_result=False).files, workdir),
            )
            return
        sr = shell_result(command, text, code, has_result=res is not None)
        payload.update(sr.payload)
        content = sr.content
        if continued:
            content = f"$ {command}\n[continued]\n{text}".rstrip()
        self._emit(rec, sr.type, content, files=self._resolve_paths(sr.files, workdir), payload=payload)
        if sr.error:
            body, files, n_exc = sr.error
            self._emit(
                rec,
                "error",
                body,
                files=self._resolve_paths(files, workdir),
                payload={"call_id": rec.get("call_id"), "exit_code": code, "source": rec["id"], "exceptions": n_exc},
                sub=1,
            )

    def _patch(self, rec, patch, text, code, res, payload):
        """apply_patch -> `file_edit`: the patched files relative to the cwd, the patch as diff."""
        files = [p for _, p in patch_files(patch)]
        ops: dict[str, int] = {}
        for op, _ in patch_files(patch):
            ops[op] = ops.get(op, 0) + 1
        end = rec.get("patch_end") or {}
        failed = res is not None and (
            code not in (None, 0)
            or end.get("success") is False
            or bool(re.match(r"\s*(apply_patch verification failed|Failed to|error)", text, re.I))
        )
        if code is not None:
            payload["exit_code"] = code
        payload["patch"] = ops
        if failed:
            payload["is_error"] = True
        type_ = "tool_call" if failed else "file_edit"
        head = "apply_patch " + ", ".join(files[:20]) if files else "apply_patch"
        result = f"\n---\n{cut_middle(text.strip(), 2000)}" if text.strip() else ""
        self._emit(rec, type_, f"{head}\n{patch}{result}", files=files, payload=payload, tool="apply_patch")
        if failed:
            exc = exception_lines(text)
            self._emit(
                rec,
                "error",
                error_text(exc or [text.strip().split("\n")[0][:300]], "apply_patch", text),
                files=files,
                payload={"call_id": rec.get("call_id"), "source": rec["id"]},
                sub=1,
            )

    def _generic(self, rec, name, args, text, code, res, payload):
        files = [args[k] for k in ("path", "file_path", "file") if isinstance(args.get(k), str)]
        if name == "update_plan":
            plan = args.get("plan") if isinstance(args.get("plan"), list) else []
            marks = {"completed": "[x]", "in_progress": "[~]", "pending": "[ ]"}
            lines = [f"{marks.get(s.get('status'), '[ ]')} {s.get('step')}" for s in plan if isinstance(s, dict)]
            expl = f"{args['explanation']}\n" if isinstance(args.get("explanation"), str) else ""
            content = f"Plan:\n{expl}" + "\n".join(lines)
        else:
            content = f"{name}\n{render_value(args, 2000)}\n---\n{cut_middle(text, 8000)}"
        if code is not None:
            payload["exit_code"] = code
        self._emit(rec, "tool_call", content.rstrip(), files=files, payload=payload)
        exc = exception_lines(text) if code not in (None, 0) else []
        if exc:
            self._emit(
                rec,
                "error",
                error_text(exc, name, text),
                files=files + error_files(text),
                payload={"call_id": rec.get("call_id"), "source": rec["id"]},
                sub=1,
            )


def read_codex(
    path: str | Path,
    *,
    offset: int = 0,
    state: dict | None = None,
    project: str | None = None,
    max_content_chars: int = 100_000,
    final: bool = False,
) -> ReadResult:
    """Read one Codex rollout from `offset` (see read_claude_code for the arguments)."""
    reader = CodexReader(path, state=state, project=project, max_content_chars=max_content_chars)
    return reader.read(offset, final=final)


def sessions_root(root: str | Path) -> Path:
    """`~/.codex` or `~/.codex/sessions` -> the sessions folder."""
    root = Path(root).expanduser()
    if (root / "sessions").is_dir():
        return root / "sessions"
    return root


def find_rollouts(root: str | Path) -> list[Path]:
    base = sessions_root(root)
    if not base.is_dir():
        return []
    # rollout-<timestamp>-<uuid>.jsonl: by name is by start time, whatever the folder layout
    return sorted(
        (p for p in base.rglob("*.jsonl") if p.is_file() and p.name.startswith("rollout-")),
        key=lambda p: (p.name, str(p)),
    )


def peek_identity(path: str | Path) -> tuple[str | None, str | None]:
    """(session id, cwd) from the rollout's first lines."""
    obj = read_first_object(
        path,
        lambda o: o.get("type") == "session_meta" or (o.get("type") is None and isinstance(o.get("id"), str)),
        max_lines=5,
    )
    if not obj:
        return None, None
    p = obj.get("payload") if isinstance(obj.get("payload"), dict) else obj
    cwd = p.get("cwd") if isinstance(p.get("cwd"), str) else None
    if cwd is None:  # legacy rollouts name the cwd in the environment context

        def context_text(o: dict) -> str:
            item = o.get("payload") if isinstance(o.get("payload"), dict) else o
            return content_text(item.get("content")) if item.get("type") == "message" else ""

        ctx = read_first_object(path, lambda o: "environment_context" in context_text(o), max_lines=10)
        if ctx:
            m = _CONTEXT_CWD.search(context_text(ctx))
            if m:
                cwd = (m.group(1) or m.group(2)).strip()
    return p.get("id"), cwd


__all__ = ["CodexReader", "find_rollouts", "parse_output", "peek_identity", "read_codex", "sessions_root"]
