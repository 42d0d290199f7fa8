"""`ctxsearch install claude-code|codex`: register the hook and the MCP server in the
agents' own settings files, idempotently, with a backup and a dry run.

Claude Code reads hooks from `~/.claude/settings.json` (user scope) and user-scope MCP
servers from the top-level `mcpServers` of `~/.claude.json`; Codex reads MCP servers from
`[mcp_servers.<name>]` tables in `~/.codex/config.toml`. Only ctxsearch's own entries are
added or replaced: everything else in those files is kept as it was.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

SERVER_NAME = "ctxsearch"
# Events after which the transcript has new lines to import, and the two that inject context.
IMPORT_EVENTS = ("PostToolUse", "Stop", "SubagentStop", "PreCompact", "SessionEnd")
CONTEXT_EVENTS = ("SessionStart", "UserPromptSubmit")
# Events whose hooks Claude Code filters by tool name: they need a matcher.
_MATCHED = {"PostToolUse", "PreToolUse"}
HOOK_TIMEOUT_S = 10


@dataclass
class FileChange:
    path: Path
    before: str
    after: str
    backup: Path | None = None

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def diff(self) -> str:
        return "".join(
            difflib.unified_diff(
                self.before.splitlines(True),
                self.after.splitlines(True),
                fromfile=str(self.path),
                tofile=f"{self.path} (new)",
            )
        )


@dataclass
class InstallPlan:
    changes: list[FileChange] = field(default_factory=list)

    def apply(self) -> None:
        """Write each changed file (atomically), after a timestamped backup of its old content."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for c in self.changes:
            if not c.changed:
                continue
            c.path.parent.mkdir(parents=True, exist_ok=True)
            if c.path.exists():
                c.backup = c.path.with_name(f"{c.path.name}.bak-{stamp}")
                shutil.copy2(c.path, c.backup)
            _write_atomic(c.path, c.after)


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> tuple[str, dict]:
    if not path.exists():
        return "", {}
    text = path.read_text()
    if not text.strip():
        return text, {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); fix or move it, then run install again") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object at the top")
    return text, data


def _is_ours(hook: dict, command: str) -> bool:
    # Ours: this command, or an earlier ctxsearch hook (another path or other flags).
    cmd = str(hook.get("command", ""))
    return cmd == command or ("ctxsearch" in cmd and " hook claude-code" in cmd)


def merge_claude_hooks(settings: dict, command: str) -> dict:
    """settings with one ctxsearch hook on each event (replacing an older ctxsearch entry)."""
    out = json.loads(json.dumps(settings))
    hooks = out.setdefault("hooks", {})
    if not isinstance(hooks, dict):
        raise ValueError("settings.json: `hooks` is not an object")
    for event in (*IMPORT_EVENTS, *CONTEXT_EVENTS):
        groups = hooks.setdefault(event, [])
        if not isinstance(groups, list):
            raise ValueError(f"settings.json: hooks.{event} is not a list")
        kept = []
        for group in groups:
            inner = [h for h in group.get("hooks", []) if not _is_ours(h, command)] if isinstance(group, dict) else None
            if inner is None:
                kept.append(group)
            elif inner:
                kept.append({**group, "hooks": inner})
        entry: dict = {"hooks": [{"type": "command", "command": command, "timeout": HOOK_TIMEOUT_S}]}
        if event in _MATCHED:
            entry = {"matcher": "*", **entry}
        hooks[event] = [*kept, entry]
    return out


def merge_mcp_server(config: dict, command: str, env: dict[str, str]) -> dict:
    out = json.loads(json.dumps(config))
    servers = out.setdefault("mcpServers", {})
    if not isinstance(servers, dict):
        raise ValueError("~/.claude.json: `mcpServers` is not an object")
    servers[SERVER_NAME] = {"type": "stdio", "command": command, "args": ["mcp"], "env": env}
    return out


def _dump(data: dict) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def plan_claude_code(
    *, executable: str, home: Path, env: dict[str, str] | None = None, hook_command: str | None = None
) -> InstallPlan:
    """The changes to Claude Code's user settings: hooks in ~/.claude/settings.json and the
    MCP server in ~/.claude.json."""
    hook_command = hook_command or f"{_quote(executable)} hook claude-code"
    settings_path = home / ".claude" / "settings.json"
    before, settings = _read_json(settings_path)
    merged = merge_claude_hooks(settings, hook_command)
    after = before if merged == settings else _dump(merged)
    config_path = home / ".claude.json"
    cbefore, config = _read_json(config_path)
    cmerged = merge_mcp_server(config, executable, env or {})
    cafter = cbefore if cmerged == config else _dump(cmerged)
    return InstallPlan([FileChange(settings_path, before, after), FileChange(config_path, cbefore, cafter)])


def plan_codex(*, executable: str, home: Path, env: dict[str, str] | None = None) -> InstallPlan:
    """The change to ~/.codex/config.toml: an `[mcp_servers.ctxsearch]` table (replaced if present)."""
    path = home / ".codex" / "config.toml"
    before = path.read_text() if path.exists() else ""
    try:
        tomllib.loads(before)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc}); fix it, then run install again") from None
    lines = [f"[mcp_servers.{SERVER_NAME}]", f"command = {json.dumps(executable)}", 'args = ["mcp"]']
    if env:
        lines.append("env = { " + ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in env.items()) + " }")
    table = "\n".join(lines) + "\n"
    after = _replace_table(before, f"mcp_servers.{SERVER_NAME}", table)
    parsed = tomllib.loads(after)["mcp_servers"][SERVER_NAME]
    assert parsed["command"] == executable  # the text we wrote reads back as meant
    return InstallPlan([FileChange(path, before, after)])


def _replace_table(text: str, name: str, table: str) -> str:
    """text with the TOML table `name` (up to the next table header) replaced by `table`, or
    `table` appended; comments and other tables stay as they were."""
    out: list[str] = []
    skipping = False
    replaced = False
    for line in text.splitlines(True):
        stripped = line.strip()
        if stripped.startswith("["):
            header = stripped.strip("[]").strip()
            if header == name or header.startswith(name + "."):
                if not replaced:
                    out.append(table)
                    replaced = True
                skipping = True
                continue
            skipping = False
        if not skipping:
            out.append(line)
    if not replaced:
        if out and not out[-1].endswith("\n"):
            out.append("\n")
        if out and out[-1].strip():
            out.append("\n")
        out.append(table)
    return "".join(out)


def _quote(path: str) -> str:
    import shlex

    return shlex.quote(path)
