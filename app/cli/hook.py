"""`ctxsearch hook claude-code`, kept lean: it runs on every agent turn, so it loads neither
the settings machinery nor the HTTP client, the database driver or the model unless it has
to open the local store itself (no `ctxsearch serve` running on the data dir)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ctxsearch.cli.options import data_dir_option, url_option


@click.group()
def hook() -> None:
    """Hooks that agents run on their events."""


@hook.command("claude-code")
@data_dir_option
@url_option
@click.option(
    "--budget-tokens",
    type=click.IntRange(min=100, max=2500),
    default=2000,
    show_default=True,
    help="At most this much context on SessionStart / UserPromptSubmit (Claude Code cuts past 10 KB).",
)
def hook_claude_code(data_dir: Path | None, url: str | None, budget_tokens: int) -> None:
    """Read Claude Code's hook JSON on stdin: import the transcript's new lines (PostToolUse, Stop,
    SubagentStop, PreCompact, SessionEnd) or print relevant past context (SessionStart,
    UserPromptSubmit). Always exits 0; failures go to the hook log."""
    import logging

    import platformdirs

    from ctxsearch.capture.hook import log_to

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        log_to(Path(platformdirs.user_log_dir("ctxsearch")) / "hook.log")
    except OSError:
        pass
    try:
        _hook(sys.stdin.read(), data_dir, url, budget_tokens)
    except BaseException as exc:  # noqa: BLE001 - the agent must never see a hook fail
        if not isinstance(exc, KeyboardInterrupt | SystemExit):
            logging.getLogger("ctxsearch.hook").exception("hook failed: %s", exc)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    raise SystemExit(0)


def _hook(raw: str, data_dir: Path | None, url: str | None, budget_tokens: int) -> None:
    import logging

    from ctxsearch.capture.context import Budget
    from ctxsearch.capture.destination import Destination, Target, run_import
    from ctxsearch.capture.hook import HookInput, build_context, context_output, wants_context, wants_import
    from ctxsearch.capture.importer import excluded
    from ctxsearch.capture.mapping import project_id_from_cwd

    hook = HookInput.parse(raw)
    if not (wants_import(hook.event) or wants_context(hook.event)):
        return
    target = Target.from_env(data_dir, url)
    project_id = project_id_from_cwd(hook.cwd) if hook.cwd else None
    if excluded(project_id or "", hook.cwd, target.exclude):
        return
    dest = Destination(target)
    try:
        if wants_import(hook.event):
            if hook.transcript_path is None or not hook.transcript_path.exists():
                return
            report = run_import(
                "claude-code",
                hook.transcript_path.parent,
                dest=dest,
                project=None,
                full=False,
                only=hook.transcript_path,
            )
            for p in report.problems:
                logging.getLogger("ctxsearch.hook").warning("%s", p)
        elif project_id:
            text = build_context(
                hook, project_id=project_id, search=dest.search, sessions=dest.sessions, budget=Budget(budget_tokens)
            )
            if text:
                sys.stdout.write(context_output(hook.event, text) + "\n")
    finally:
        dest.close()
