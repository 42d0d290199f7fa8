"""Commands that bring a developer's agent history in and let it go again:
`import claude-code|codex`, `hook claude-code`, `install claude-code|codex`, `forget`."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import click

from ctxsearch.capture.destination import Destination, Target, run_import
from ctxsearch.cli.common import _fail, _settings, data_dir_option, url_option
from ctxsearch.cli.hook import hook


def _default_root(kind: str) -> Path:
    return Path.home() / (".claude/projects" if kind == "claude-code" else ".codex/sessions")


@contextmanager
def _progress(enabled: bool) -> Iterator:
    if not enabled:
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(total=0, unit="session", dynamic_ncols=True, leave=False)

    def update(done: int, total: int, report) -> None:
        bar.total = total
        bar.n = done
        bar.set_postfix(events=report.events, refresh=False)
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()


@click.group("import")
def import_() -> None:
    """Import the agent history already on disk (read again, it stores nothing twice)."""


def _import_command(kind: str, what: str):
    @import_.command(
        kind,
        help=f"Import {what}: every session with its subagents, project from the working directory's name; "
        "a second run reads only what was appended.",
    )
    @click.argument("path", required=False, type=click.Path(path_type=Path))
    @click.option(
        "--project",
        default=None,
        help="Store every session under this project id (default: the basename of each session's working directory).",
    )
    @click.option("--full", is_flag=True, help="Read every file from the start, ignoring what was imported before.")
    @data_dir_option
    @url_option
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object (the counts and problems).")
    def command(
        path: Path | None, project: str | None, full: bool, data_dir: Path | None, url: str | None, as_json: bool
    ) -> None:
        root = (path or _default_root(kind)).expanduser()
        if not root.exists():
            _fail(f"PATH: {root} does not exist" + ("" if path else f" (no {kind} history here; pass its folder)"))
        settings = _settings(data_dir, log_level="WARNING")
        dest = Destination(Target.from_settings(settings, url), lambda: settings)
        quiet = as_json or not sys.stderr.isatty()
        t0 = time.perf_counter()
        try:
            with _progress(not quiet) as progress:
                report = run_import(
                    kind,
                    root,
                    dest=dest,
                    project=project,
                    full=full,
                    progress=progress,
                    max_content_chars=settings.max_content_chars,
                )
        except Exception as exc:  # noqa: BLE001 - a user-facing command: one clear line, exit 2
            _fail(f"import failed: {exc}")
        finally:
            dest.close()
        seconds = time.perf_counter() - t0
        out = asdict(report) | {"seconds": round(seconds, 3), "destination": dest.url or str(settings.data_dir)}
        if as_json:
            click.echo(json.dumps(out))
            return
        for p in report.problems:
            click.echo(p, err=True)
        click.echo(
            f"{report.sessions} sessions, {report.events} events ({report.accepted} new, "
            f"{report.duplicates} already stored), {report.skipped_lines} skipped lines, "
            f"{report.redactions} redactions"
            + (f", {report.excluded_projects} excluded projects" if report.excluded_projects else "")
            + f" in {seconds:.1f} s"
        )
        if not dest.remote and report.accepted:
            click.echo(
                "searchable once embedded by `ctxsearch serve` (or `ctxsearch worker`) on this data dir", err=True
            )

    return command


_import_command("claude-code", "Claude Code transcripts (default ~/.claude/projects)")
_import_command("codex", "Codex sessions (default ~/.codex/sessions)")


@click.group()
def install() -> None:
    """Register ctxsearch with an agent (hooks and the MCP server)."""


def _executable() -> str:
    import shutil

    found = shutil.which("ctxsearch")
    here = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    if here is not None and here.name == "ctxsearch" and here.exists():
        return str(here)
    return found or "ctxsearch"


def _env_for_agent(data_dir: Path | None, url: str | None) -> dict[str, str]:
    env = {}
    if data_dir is not None:
        env["CTXSEARCH_DATA_DIR"] = str(data_dir.expanduser().resolve())
    if url:
        env["CTXSEARCH_URL"] = url
    return env


def _apply(plan, dry_run: bool, as_json: bool) -> None:
    changed = [c for c in plan.changes if c.changed]
    if dry_run:
        if as_json:
            click.echo(json.dumps({"changes": [{"path": str(c.path), "diff": c.diff()} for c in changed]}))
        else:
            click.echo("".join(c.diff() for c in changed) or "nothing to change", nl=False if changed else True)
        return
    plan.apply()
    if as_json:
        click.echo(
            json.dumps(
                {"changed": [{"path": str(c.path), "backup": str(c.backup) if c.backup else None} for c in changed]}
            )
        )
        return
    for c in changed:
        click.echo(f"updated {c.path}" + (f" (backup: {c.backup})" if c.backup else ""))
    if not changed:
        click.echo("already installed; nothing changed")


@install.command("claude-code")
@click.option("--dry-run", is_flag=True, help="Show the change as a diff; write nothing.")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), default=None, hidden=True)
@data_dir_option
@url_option
@click.option("--json", "as_json", is_flag=True)
def install_claude_code(
    dry_run: bool, home: Path | None, data_dir: Path | None, url: str | None, as_json: bool
) -> None:
    """Add the ctxsearch hooks to ~/.claude/settings.json and the MCP server (`ctxsearch mcp`) to
    ~/.claude.json; idempotent, with a backup of each file it changes."""
    import shlex

    from ctxsearch.capture.install import plan_claude_code

    exe = _executable()
    env = _env_for_agent(data_dir, url)
    # Hooks run with Claude Code's environment, not this shell's: the destination goes on the command line.
    flags = "".join(
        f" --{name} {shlex.quote(env[var])}"
        for name, var in (("data-dir", "CTXSEARCH_DATA_DIR"), ("url", "CTXSEARCH_URL"))
        if var in env
    )
    try:
        plan = plan_claude_code(
            executable=exe,
            home=home or Path.home(),
            env=env,
            hook_command=f"{shlex.quote(exe)} hook claude-code{flags}",
        )
    except ValueError as exc:
        _fail(str(exc))
    _apply(plan, dry_run, as_json)


@install.command("codex")
@click.option("--dry-run", is_flag=True, help="Show the change as a diff; write nothing.")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), default=None, hidden=True)
@data_dir_option
@url_option
@click.option("--json", "as_json", is_flag=True)
def install_codex(dry_run: bool, home: Path | None, data_dir: Path | None, url: str | None, as_json: bool) -> None:
    """Register the MCP server (`ctxsearch mcp`) in ~/.codex/config.toml; idempotent, with a backup.
    Import Codex history with `ctxsearch import codex` (Codex has no hooks to run it)."""
    from ctxsearch.capture.install import plan_codex

    try:
        plan = plan_codex(executable=_executable(), home=home or Path.home(), env=_env_for_agent(data_dir, url))
    except ValueError as exc:
        _fail(str(exc))
    _apply(plan, dry_run, as_json)


@click.command()
@click.option("--project", "project_id", required=True, help="The project to erase from.")
@click.option("--session", "session_id", default=None, help="Erase only this session (default: the whole project).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@data_dir_option
@url_option
@click.option("--json", "as_json", is_flag=True)
def forget(
    project_id: str, session_id: str | None, yes: bool, data_dir: Path | None, url: str | None, as_json: bool
) -> None:
    """Erase a session or a whole project: events, documents, vectors, summaries and text
    statistics, in both tiers. With a server's key, only that key's projects."""
    what = (
        f"session {session_id!r} of project {project_id!r}" if session_id else f"everything of project {project_id!r}"
    )
    if not yes and not click.confirm(f"Erase {what}?", default=False, err=True):
        _fail("not confirmed; nothing erased (pass --yes to skip the question)")
    settings = _settings(data_dir, log_level="WARNING")
    dest = Destination(Target.from_settings(settings, url), lambda: settings)
    try:
        if dest.remote:
            from ctxsearch.client import Client, CtxsearchError, NotFound

            try:
                headers = {"Authorization": f"Bearer {dest.target.api_key}"} if dest.target.api_key else None
                with Client(dest.url, headers=headers) as c:
                    erased = c.forget_session(project_id, session_id) if session_id else c.forget_project(project_id)
            except NotFound as exc:
                _fail(str(exc))
            except CtxsearchError as exc:
                _fail(str(exc))
        else:
            from ctxsearch.service.facade import NotFound as Missing

            svc = dest.service(load_model=False)
            try:
                erased = svc.forget_session(project_id, session_id) if session_id else svc.forget_project(project_id)
            except Missing as exc:
                _fail(str(exc))
    finally:
        dest.close()
    if as_json:
        click.echo(erased.model_dump_json())
    else:
        click.echo(f"erased {what}: {erased.sessions} sessions, {erased.events} events, {erased.documents} documents")


@click.command("bench-capture")
@click.argument("projects", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--copies",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Import this many copies of the folder (fresh session ids), for a long enough run.",
)
@click.option("--hook-runs", type=click.IntRange(min=5), default=30, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def bench_capture(projects: Path, copies: int, hook_runs: int, as_json: bool) -> None:
    """Measure capture on a Claude Code projects folder, against a scratch server of its own:
    import rate before embedding, and the hook's latency per turn and with context."""
    from ctxsearch.bench.capture import bench_capture as run

    result = run(
        projects,
        copies=copies,
        hook_runs=hook_runs,
        log=(lambda m: None) if as_json else (lambda m: click.echo(m, err=True)),
    )
    click.echo(json.dumps(result) if as_json else "\n".join(f"{k:28} {v}" for k, v in result.items()))


commands = [import_, hook, install, forget, bench_capture]
