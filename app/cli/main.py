"""`ctxsearch`: serve, work, ingest and search from the terminal."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from types import UnionType
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

import click

from ctxsearch.config import Settings

if TYPE_CHECKING:
    from ctxsearch.schemas import SearchRequest, SearchResponse


from ctxsearch.cli.common import _fail, _is_loopback, _logging, _needs, _settings, data_dir_option


class _Commands(click.Group):
    """Errors every command can meet (the database refuses, a migration was altered) become one
    clear line and exit 2, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Exception as exc:
            # Imported only on failure: a command that succeeds does not pay for the driver.
            import psycopg

            from ctxsearch.store.db import DatabaseUnavailable, DiskFull
            from ctxsearch.store.migrations import MigrationError, MissingExtension

            if isinstance(exc, MigrationError | MissingExtension | DatabaseUnavailable | DiskFull):
                raise click.UsageError(str(exc)) from None
            if isinstance(exc, psycopg.OperationalError):
                first = (str(exc).strip().splitlines() or ["connection failed"])[0]
                raise click.UsageError(f"cannot reach the database: {first}") from None
            raise


@click.group(cls=_Commands)
@click.version_option(package_name="ctxsearch")
def main() -> None:
    """ctxsearch: context search for coding agents."""


def _check_database(settings: Settings) -> None:
    """Fail with a clear message (exit 2) when the database cannot serve ctxsearch."""
    import psycopg

    from ctxsearch.store.db import MissingExtension, release_embedded, resolve_database_url, safe_url
    from ctxsearch.store.migrations import MigrationError
    from ctxsearch.store.migrations import migrate as run_migrations

    try:
        # The embedded server too (a changed migration is refused there as well): started for
        # the check and let go again; the app joins it anew.
        run_migrations(resolve_database_url(settings))
    except (MissingExtension, MigrationError) as exc:
        _fail(str(exc))
    except psycopg.OperationalError as exc:
        if not settings.database_url:
            raise
        _fail(f"cannot reach the database at {safe_url(settings.database_url)}: {str(exc).strip().splitlines()[0]}")
    finally:
        if not settings.database_url:
            release_embedded(settings.data_dir)


@main.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to bind (default 8080).")
@data_dir_option
@click.option("--no-worker", is_flag=True, help="Do not run the embed worker in this process.")
@click.option(
    "--allow-unauthenticated",
    is_flag=True,
    default=None,
    help="Bind a non-loopback address with no API keys set (CTXSEARCH_ALLOW_UNAUTHENTICATED).",
)
def serve(
    host: str | None, port: int | None, data_dir: Path | None, no_worker: bool, allow_unauthenticated: bool | None
) -> None:
    """Run the HTTP API (and an embed worker). With no CTXSEARCH_DATABASE_URL an embedded
    PostgreSQL with pgvector is started in the data dir. With CTXSEARCH_API_KEYS set every
    /v1 and /mcp request needs a key; without, only a loopback address may be bound."""
    import uvicorn

    from ctxsearch.http.app import create_app
    from ctxsearch.http.server import server_config

    settings = _settings(
        data_dir,
        host=host,
        port=port,
        run_worker=False if no_worker else None,
        allow_unauthenticated=allow_unauthenticated,
    )
    if settings.api_keys:
        auth = f"{len(settings.api_keys)} API keys; every /v1 and /mcp request needs one"
    elif _is_loopback(settings.host):
        auth = "no API keys (CTXSEARCH_API_KEYS unset): open to local callers only"
    elif settings.allow_unauthenticated:
        auth = f"no API keys and --allow-unauthenticated: anyone who can reach {settings.host} may use every project"
    else:
        _fail(
            f"refusing to bind {settings.host} with no API keys: set CTXSEARCH_API_KEYS, bind 127.0.0.1, "
            "or pass --allow-unauthenticated"
        )
    _logging(settings)
    _check_database(settings)
    click.echo(
        f"ctxsearch serving on http://{settings.host}:{settings.port} "
        f"(worker {'on' if settings.run_worker else 'off'}); auth: {auth}",
        err=True,
    )
    from ctxsearch.discovery import announce, local_url

    # Importers and the hook on this data dir find this server through it (see discovery).
    with announce(settings.data_dir, local_url(settings.host, settings.port)):
        uvicorn.Server(server_config(create_app(settings), settings)).run()


@main.command()
@data_dir_option
@click.option("--no-worker", is_flag=True, help="Do not run the embed worker in this process.")
def mcp(data_dir: Path | None, no_worker: bool) -> None:
    """Serve the MCP tools (search_context, get_session, record_events) over stdio, with the
    same settings as `serve`. Beside a running `serve` on the same data dir, both share
    one embedded PostgreSQL."""
    import atexit
    import os
    import signal

    from ctxsearch.mcp.server import run_stdio
    from ctxsearch.store.migrations import MigrationError

    settings = _settings(data_dir, run_worker=False if no_worker else None)
    _logging(settings)  # to stderr: stdout carries the protocol

    def stop(*_: object) -> None:
        # A client that stops the server with SIGTERM: tell the shared embedded PostgreSQL
        # that this process is done with it (atexit), then leave at once rather than wait
        # for a thread blocked reading stdin.
        atexit._run_exitfuncs()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        run_stdio(settings)
    except MigrationError as exc:
        _fail(str(exc))
    except Exception as exc:  # startup: say what failed, on stderr, without a traceback
        raise click.ClickException(f"cannot start the MCP server: {exc}") from None


@main.command()
@data_dir_option
def worker(data_dir: Path | None) -> None:
    """Run an embed worker on its own (condense, embed, rebuild the warm tier)."""
    import signal
    import threading

    from ctxsearch.service.facade import Service
    from ctxsearch.store.migrations import MigrationError

    settings = _settings(data_dir)
    _logging(settings)
    try:
        svc = Service.start(settings, run_worker=True)
    except MigrationError as exc:
        _fail(str(exc))
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    click.echo("worker running; Ctrl-C to stop", err=True)
    done.wait()
    svc.close()


@main.command()
@data_dir_option
def migrate(data_dir: Path | None) -> None:
    """Apply pending database migrations and exit."""
    from ctxsearch.store.db import MissingExtension, resolve_database_url
    from ctxsearch.store.migrations import MigrationError
    from ctxsearch.store.migrations import migrate as run_migrations

    try:
        applied = run_migrations(resolve_database_url(_settings(data_dir)))
    except (MissingExtension, MigrationError) as exc:
        _fail(str(exc))
    click.echo(f"applied {len(applied)} migrations" + (f": {', '.join(applied)}" if applied else ""))


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@data_dir_option
@click.option("--batch-size", type=int, default=500, show_default=True)
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until everything is embedded.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.option("--atomic", is_flag=True, help="Check every line before storing any: one bad line and nothing is stored.")
def ingest(file: Path, data_dir: Path | None, batch_size: int, wait: bool, as_json: bool, atomic: bool) -> None:
    """Bulk-load events from a JSON Lines file (one event object per line).

    Lines are stored a batch at a time. At a bad line nothing more is stored and the command
    says which lines were (run it again once the line is fixed: stored lines count as
    duplicates); with --atomic every line is checked first and a bad one stores nothing."""
    from pydantic import ValidationError
    from tqdm import tqdm

    from ctxsearch.schemas import EventIn
    from ctxsearch.validation import validation_message

    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"{file}: cannot be read as UTF-8 text ({exc})")

    def parse(n: int, line: str) -> EventIn:
        try:
            return EventIn.model_validate_json(line)
        except ValidationError as exc:
            raise _BadLine(n, validation_message(exc.errors())) from None

    numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    if atomic:
        bad = []
        for n, line in numbered:
            try:
                parse(n, line)
            except _BadLine as exc:
                bad.append(exc)
        if bad:
            shown = "; ".join(f"{file}:{b.line}: {b.reason}" for b in bad[:5])
            more = f" (and {len(bad) - 5} more bad lines)" if len(bad) > 5 else ""
            _fail(f"{shown}{more}; nothing was stored (--atomic)")

    from ctxsearch.service.facade import Service

    # The model only to embed what was stored, when asked to wait for that.
    svc = Service.start(_settings(data_dir), run_worker=False, load_model=wait)
    accepted = duplicates = stored_through = 0
    try:
        with tqdm(total=len(numbered), unit="ev", disable=as_json or not sys.stderr.isatty(), desc="ingest") as bar:
            for start in range(0, len(numbered), batch_size):
                chunk = numbered[start : start + batch_size]
                try:
                    batch = [parse(n, line) for n, line in chunk]
                except _BadLine as exc:
                    stored = f"lines 1-{stored_through} were stored" if stored_through else "no line was stored"
                    _fail(
                        f"{file}:{exc.line}: {exc.reason}; {stored} (accepted {accepted}, duplicates "
                        f"{duplicates}) and none from line {stored_through + 1} on: fix the line and run "
                        "again (stored lines count as duplicates), or use --atomic"
                    )
                r = svc.ingest(batch)
                accepted, duplicates = accepted + r.accepted, duplicates + r.duplicates
                stored_through = chunk[-1][0]
                bar.update(len(chunk))
        if wait:
            svc.worker.drain(timeout_s=24 * 3600)
    finally:
        svc.close()
    out = {"accepted": accepted, "duplicates": duplicates}
    click.echo(json.dumps(out) if as_json else f"accepted {accepted}, duplicates {duplicates}")


class _BadLine(Exception):
    def __init__(self, line: int, reason: str):
        super().__init__(f"line {line}: {reason}")
        self.line, self.reason = line, reason


# `ctxsearch search` takes SearchRequest's fields: the query as its argument, the rest as
# options, under these names where the field's own would read badly; a list field's option
# repeats (`--type error --type decision`), a nested model's fields are options of their own
# (`--weight-vector`, `--weight-text`).
_SEARCH_OPTIONS = {
    "project_id": "project",
    "session_id": "session",
    "types": "type",
    "files": "file",
    "kinds": "kind",
    "weights": "weight",
}


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """The type under Optional/Annotated, and whether it is a list (of that type)."""
    is_list = False
    while True:
        origin, args = get_origin(annotation), get_args(annotation)
        if origin in (Union, UnionType):
            annotation = next(a for a in args if a is not type(None))
        elif origin is Annotated:
            annotation = args[0]
        elif origin is list:
            annotation, is_list = args[0], True
        else:
            return annotation, is_list


def _click_type(annotation: Any) -> Any:
    if get_origin(annotation) is Literal:
        return click.Choice([str(a) for a in get_args(annotation)])
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return click.Choice([e.value for e in annotation])
    return annotation if annotation in (int, float) else str  # the model parses times and checks bounds


def search_request_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add an argument or option per SearchRequest field to a command; it gets `req`, validated."""
    from pydantic import BaseModel

    from ctxsearch.schemas import SearchRequest

    fields: dict[str, tuple[str, ...]] = {}  # click's name of each value -> its place in the request
    options: dict[str, str] = {}  # field path -> what the user typed, for error messages
    decorators = []

    def add(path: tuple[str, ...], field: Any, opt: str, help: str | None) -> None:
        dest = "__".join(path)
        kind, is_list = _unwrap(field.annotation)
        fields[dest] = path
        if path == ("query",):
            options[path[0]] = "QUERY"
            decorators.append(click.argument(dest))
            return
        options[".".join(path)] = f"--{opt}"
        # A nested model's fields have no default of their own: with none given, the model is
        # left out and the server's settings apply (the server's weights, not 1.0 each).
        default = None if field.is_required() or len(path) > 1 else field.get_default()
        if kind is bool:
            decl = f"--{opt}/--no-{opt}" if default else f"--{opt}"
            decorators.append(click.option(decl, dest, is_flag=True, default=bool(default), help=help))
        else:
            decorators.append(
                click.option(
                    f"--{opt}",
                    dest,
                    type=_click_type(kind),
                    multiple=is_list,
                    required=field.is_required(),
                    default=() if is_list else default,
                    show_default=default is not None,
                    help=help,
                )
            )

    for name, field in SearchRequest.model_fields.items():
        opt = _SEARCH_OPTIONS.get(name, name).replace("_", "-")
        nested, _ = _unwrap(field.annotation)
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            for sub, sub_field in nested.model_fields.items():
                add(
                    (name, sub),
                    sub_field,
                    f"{opt}-{sub.replace('_', '-')}",
                    f"{sub_field.description or ''} {field.description or ''}".strip(),
                )
        else:
            add((name,), field, opt, field.description)

    def where(loc: tuple) -> tuple:
        # Errors name the option the user typed: `--limit`, `--weight-vector`, `--type[0]`.
        if not loc:  # the one check across fields: the time window
            return ("--since",)
        for n in (2, 1):
            if ".".join(map(str, loc[:n])) in options:
                return (options[".".join(map(str, loc[:n]))], *loc[n:])
        return loc

    @functools.wraps(fn)
    def command(**kwargs: Any) -> Any:
        from pydantic import ValidationError

        from ctxsearch.validation import validation_message

        data: dict[str, Any] = {}
        for dest, path in fields.items():
            value = kwargs.pop(dest)
            if value is None or value == ():
                continue  # not given: the model's default
            target = data
            for key in path[:-1]:
                target = target.setdefault(key, {})
            target[path[-1]] = list(value) if isinstance(value, tuple) else value
        try:
            req = SearchRequest.model_validate(data)
        except ValidationError as exc:
            _fail(validation_message([{**e, "loc": where(tuple(e["loc"]))} for e in exc.errors()]))
        return fn(req=req, **kwargs)

    for decorator in reversed(decorators):  # --help lists them in the model's order
        command = decorator(command)
    return command


@main.command()
@search_request_options
@data_dir_option
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object per hit (with --group session: per session), then one with next_cursor and truncated.",
)
def search(req: SearchRequest, data_dir: Path | None, as_json: bool) -> None:
    """Search a project's context."""
    from ctxsearch.service.facade import NotFound, Service
    from ctxsearch.service.paging import InvalidCursor

    svc = Service.start(_settings(data_dir), run_worker=False)
    try:
        svc.require_project(req.project_id)
        resp = svc.search(req)
    except (InvalidCursor, NotFound) as exc:
        _fail(str(exc))
    finally:
        svc.close()
    if as_json:
        for item in resp.sessions if resp.sessions is not None else resp.results:
            click.echo(item.model_dump_json())
        end = {"next_cursor": resp.next_cursor, "truncated": resp.truncated, "mode": resp.mode}
        click.echo(json.dumps({**end, "fusion": resp.fusion, "took_ms": round(resp.took_ms, 3)}))
        return
    if resp.next_cursor:
        click.echo(
            f"next page: --cursor {resp.next_cursor}" + (" (cut to the token budget)" if resp.truncated else ""),
            err=True,
        )
    if resp.sessions is not None:
        _print_sessions(resp, req.explain)
        return
    if not resp.results:
        click.echo("no results")
    for n, hit in enumerate(resp.results, 1):
        ranks = f"  [vector {hit.ranks.vector}, text {hit.ranks.text}]" if req.explain else ""
        click.echo(
            f"{n:>2}. {hit.score:.4f}  {hit.kind}:{hit.id}  session {hit.session_id}  {hit.timestamp:%Y-%m-%d %H:%M}{ranks}"
        )
        click.echo(f"    {hit.title}")
        click.echo(f"    {_bold_snippet(hit.snippet)}")
    click.echo(f"({len(resp.results)} results, {resp.took_ms:.1f} ms)", err=True)


def _bold_snippet(snippet: str) -> str:
    snippet = snippet.replace("<b>", click.style("", bold=True, reset=False)).replace(
        "</b>", click.style("", reset=True)
    )
    return " ".join(snippet.split())


def _print_sessions(resp: SearchResponse, explain: bool) -> None:
    """`--group session`: each session, then its evidence hits indented."""
    if not resp.sessions:
        click.echo("no results")
    for n, session in enumerate(resp.sessions, 1):
        when = f"{session.started_at:%Y-%m-%d %H:%M}" if session.started_at else f"{session.timestamp:%Y-%m-%d %H:%M}"
        click.echo(f"{n:>2}. {session.score:.4f}  session {session.session_id}  {when}  ({session.matched} matched)")
        click.echo(f"    {session.title}")
        for hit in session.hits:
            ranks = f"  [vector {hit.ranks.vector}, text {hit.ranks.text}]" if explain else ""
            click.echo(f"    - {hit.score:.4f}  {hit.kind}:{hit.id}  {hit.timestamp:%Y-%m-%d %H:%M}{ranks}")
            click.echo(f"      {_bold_snippet(hit.snippet)}")
    click.echo(f"({len(resp.sessions)} sessions, {resp.took_ms:.1f} ms)", err=True)


def _refuse_user_data_dir(data_dir: Path) -> None:
    """Exit 2 when `data_dir` is the data dir the user's settings name: bench and eval corpora
    must never land among the user's projects."""
    if data_dir.expanduser().resolve() == _settings().data_dir.expanduser().resolve():
        _fail(
            f"--data-dir: {data_dir} is your ctxsearch data dir (CTXSEARCH_DATA_DIR or the default); "
            "bench and eval load their corpora into a scratch data dir of their own: pick another"
        )


def _eval_data_dir(data_dir: Path | None) -> Path:
    """Where evals keep their embedded server: `--data-dir`, else the user cache dir; never the
    user's data dir, whatever CTXSEARCH_DATABASE_URL or CTXSEARCH_DATA_DIR say."""
    if data_dir is None:
        import platformdirs

        data_dir = Path(platformdirs.user_cache_dir("ctxsearch")) / "evals"
    _refuse_user_data_dir(data_dir)
    return data_dir


def _scratch_dir_option(default: str) -> Callable[[Callable], Callable]:
    """`--data-dir` of bench and eval: a scratch dir, where the other commands' is the user's."""
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help=f"A scratch data dir for an embedded PostgreSQL of its own (default: {default}); never the "
        "user's data dir. CTXSEARCH_DATABASE_URL and CTXSEARCH_DATA_DIR are ignored.",
    )


@main.command("eval")
@click.argument("dataset")
@click.option(
    "--split",
    type=click.Choice(["train", "test", "dev"]),
    default=None,
    help="BEIR judgments to score against (default: test if present, else the first).",
)
@click.option(
    "--modes",
    default="text,vector,hybrid,bm25",
    show_default=True,
    help="Comma-separated: text, vector, hybrid (the search API) and bm25 (rank-bm25 reference).",
)
@click.option("--max-queries", type=click.IntRange(min=1), default=None, help="Score only the first N queries.")
@click.option("--no-rebuild", is_flag=True, help="Search the hot tier as loaded, without a warm-tier rebuild.")
@click.option(
    "--group",
    type=click.Choice(["event", "session"]),
    default="event",
    show_default=True,
    help="How session-level figures are ranked: the hits collapsed to their sessions (event), or "
    "the API's sessions as answers (session: group=session).",
)
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write DATASET.md, DATASET.png (and DATASET-kinds.png) and DATASET.json into this folder.",
)
@_scratch_dir_option("the user cache dir's ctxsearch/evals")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def eval_(
    dataset: str,
    split: str | None,
    modes: str,
    max_queries: int | None,
    no_rebuild: bool,
    group: str,
    report_dir: Path | None,
    data_dir: Path | None,
    as_json: bool,
) -> None:
    """Score the search on a relevance dataset: a BEIR folder, a LoCoMo JSON file, an
    agent-sessions folder (events.jsonl + queries.jsonl), or the short names `scifact` /
    `locomo` / `agent-sessions` (from ../shared/datasets). The data goes in through the ingest
    path and is searched through the search API's SQL; a loaded dataset is reused."""
    from functools import partial

    from tqdm import tqdm

    _needs("eval", "ranx", "rank_bm25", "matplotlib")
    from ctxsearch.evals import datasets, report, runner
    from ctxsearch.service.facade import Service

    try:
        mode_list = runner.parse_modes(modes)
        ds = datasets.load(dataset, split)
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    # database_url=None: the embedded server in the eval's own data dir, even where the
    # environment or a .env name the user's database.
    settings = _settings(_eval_data_dir(data_dir), log_level="WARNING").model_copy(update={"database_url": None})
    quiet = as_json or not sys.stderr.isatty()
    progress = partial(tqdm, disable=quiet, leave=False, dynamic_ncols=True)
    opts = runner.EvalOptions(
        modes=mode_list, max_queries=max_queries, split=ds.split, rebuild=not no_rebuild, group=group
    )
    svc = Service.start(settings, run_worker=False)
    try:
        result = runner.run(svc, ds, opts, progress)
    finally:
        svc.close()
    if report_dir is not None:
        result["report"] = [str(p) for p in report.write_report(result, report_dir)]
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(
        f"{result['dataset']}: {result['documents']} documents, {result['queries']} queries"
        + (f", split {result['split']}" if result.get("split") else "")
        + f" ({result['seconds']} s)"
    )
    click.echo(report.table(result))
    if note := report.spread_note(result):
        click.echo(note)
    if result.get("per_category"):
        click.echo("")
        click.echo(report.category_table(result))
    if result.get("per_kind"):
        click.echo("")
        click.echo(report.kind_table(result))
    if result.get("cross_project"):
        click.echo("")
        click.echo("Each query in the other projects, where nothing is relevant:")
        click.echo(report.cross_project_table(result))
    for path in result.get("report", []):
        click.echo(f"wrote {path}", err=True)


@main.command()
@click.option("--scifact", default="scifact", show_default=True, help="A BEIR folder (its train judgments are used).")
@click.option("--locomo", default="locomo", show_default=True, help="A LoCoMo JSON file.")
@click.option(
    "--agent-sessions",
    "agent_sessions",
    default="agent-sessions",
    show_default=True,
    help="A folder with events.jsonl and queries.jsonl.",
)
@_scratch_dir_option("the user cache dir's ctxsearch/evals")
@click.option(
    "--output", type=click.Path(file_okay=False, path_type=Path), default=None, help="Write tune.json and tune.md here."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
def tune(
    scifact: str, locomo: str, agent_sessions: str, data_dir: Path | None, output: Path | None, as_json: bool
) -> None:
    """Choose the fusion weight and fit the confidence calibration by cross-validation over the
    dev units (SciFact folds, LoCoMo conversations, agent-session projects); print the held-out
    figures beside each arm and RRF. The data goes in as `eval` loads it and is reused."""
    from functools import partial

    from tqdm import tqdm

    _needs("eval", "ranx")
    from ctxsearch.evals import datasets, runner
    from ctxsearch.evals import tune as tuning
    from ctxsearch.service.facade import Service

    try:
        sets = [
            datasets.load(scifact, "train"),
            datasets.load(locomo),
            datasets.load(agent_sessions),
        ]
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    settings = _settings(_eval_data_dir(data_dir), log_level="WARNING").model_copy(update={"database_url": None})
    quiet = as_json or not sys.stderr.isatty()
    progress = partial(tqdm, disable=quiet, leave=False, dynamic_ncols=True)
    svc = Service.start(settings, run_worker=False)
    try:
        for ds in sets:
            for corpus in ds.corpora:
                runner.load_corpus(svc, corpus, progress)
        runner.refresh_warm(svc)
        with progress(total=sum(len(c.queries) for ds in sets for c in ds.corpora), desc="search", unit="q") as bar:
            result = tuning.run(svc, sets, progress=bar)
    finally:
        svc.close()
    text = tuning.markdown(result)
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        (output / "tune.json").write_text(json.dumps(result, indent=1))
        (output / "tune.md").write_text(text + "\n")
    click.echo(json.dumps(result) if as_json else text)


@main.command()
@click.option(
    "--docs",
    type=click.IntRange(min=100),
    default=100_000,
    show_default=True,
    help="Searchable documents to build (measured at 10k, 100k, ... on the way).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="The higher concurrency for search latency (1 is always measured).",
)
@click.option("--steps", default=None, help="Comma-separated sizes to measure on the way (default 10k, 100k, ...).")
@click.option(
    "--seed-texts",
    type=click.IntRange(min=10),
    default=3000,
    show_default=True,
    help="Texts embedded with the real model; the rest of the corpus derives from them.",
)
@click.option(
    "--queries",
    type=click.IntRange(min=10),
    default=200,
    show_default=True,
    help="Searches per mode at concurrency 1 (twice as many at the higher concurrency).",
)
@click.option("--recall-queries", type=click.IntRange(min=10), default=100, show_default=True)
@click.option(
    "--ingest-events",
    type=click.IntRange(min=500),
    default=None,
    help="Events posted over HTTP for the ingest rate (default docs/10, 5,000 to 50,000).",
)
@click.option(
    "--freshness-s",
    type=click.FloatRange(min=1),
    default=20.0,
    show_default=True,
    help="How long to post 100 events/s for the freshness measurement.",
)
@click.option("--embed-backend", type=click.Choice(["torch", "onnx", "onnx-int8"]), default=None)
@click.option("--vector-index", type=click.Choice(["ivfflat", "hnsw"]), default=None)
@click.option("--probes", "ivfflat_probes", type=click.IntRange(min=1), default=None, help="ivfflat.probes.")
@click.option("--project-index-min-rows", type=click.IntRange(min=0), default=None)
@_scratch_dir_option("a temporary dir, deleted after")
@click.option("--keep", is_flag=True, help="Keep the bench data dir (default: a temporary dir, deleted after).")
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write report.md, bench.json and PNG plots here.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object at the end, nothing else.")
@click.option(
    "--soak",
    "soak_minutes",
    type=click.FloatRange(min=0.1),
    default=None,
    metavar="MINUTES",
    help="Instead of the corpus bench: a soak of MINUTES (mixed ingest and search with faults; see above).",
)
@click.option(
    "--clients", type=click.IntRange(1, 256), default=8, show_default=True, help="Soak: concurrent client threads."
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0.1),
    default=20.0,
    show_default=True,
    help="Soak: requests/s of all clients together (about 70% hybrid searches, 30% ingest batches).",
)
@click.option(
    "--kills",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Soak: times the embedded PostgreSQL is killed (SIGKILL), evenly spread.",
)
@click.option(
    "--rebuilds",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Soak: warm-tier rebuilds forced between the kills.",
)
@click.option(
    "--seed-docs",
    type=click.IntRange(min=10),
    default=2000,
    show_default=True,
    help="Soak: events loaded (and embedded) before the load starts.",
)
def bench(
    docs,
    concurrency,
    steps,
    seed_texts,
    queries,
    recall_queries,
    ingest_events,
    freshness_s,
    embed_backend,
    vector_index,
    ivfflat_probes,
    project_index_min_rows,
    data_dir,
    keep,
    report_dir,
    as_json,
    soak_minutes,
    clients,
    rate,
    kills,
    rebuilds,
    seed_docs,
) -> None:
    """Build a corpus of DOCS searchable documents and measure ingest, embedding, freshness,
    search latency, vector recall, storage and index build times.

    With --soak MINUTES: a `ctxsearch serve` of its own takes mixed ingest and hybrid search
    from --clients threads at --rate requests/s while its embedded PostgreSQL is killed
    --kills times and the warm tier rebuilt --rebuilds times. It reports the answers by status
    (503s, shed or database unavailable, are expected), admitted search p50/p99 and RSS per
    10 s window, each kill's recovery time (until /readyz is 200 again) and acknowledged
    events lost. Exit code 1 when an acknowledged event is missing, any answer was a 5xx other
    than 503, a request timed out or could not connect, a recovery took over 10 s, a planned
    fault did not run, or the embed queue did not drain afterwards."""
    if soak_minutes is not None:
        _soak(
            soak_minutes, clients, rate, kills, rebuilds, seed_docs, data_dir, keep, report_dir, as_json, embed_backend
        )
        return
    if report_dir is not None:
        _needs("bench", "matplotlib")
    from ctxsearch.bench.runner import Bench, BenchOptions, write_report

    try:
        step_list = [int(x) for x in steps.split(",")] if steps else []
    except ValueError:
        _fail("--steps: expected comma-separated integers, e.g. 10000,100000")
    if any(s < 100 for s in step_list):
        _fail("--steps: every size must be at least 100")
    if data_dir is not None:
        _refuse_user_data_dir(data_dir)
        if data_dir.exists() and any(data_dir.iterdir()):
            _fail(f"--data-dir: {data_dir} is not empty; the bench needs a fresh data dir")
    logging.basicConfig(level="WARNING")
    quiet = as_json or not sys.stderr.isatty()
    opts = BenchOptions(
        docs=docs,
        concurrency=concurrency,
        seed_texts=seed_texts,
        queries=queries,
        recall_queries=recall_queries,
        ingest_events=ingest_events,
        freshness_s=freshness_s,
        steps=step_list,
        data_dir=data_dir,
        keep=keep,
        show_progress=not quiet,
        settings={
            "embed_backend": embed_backend,
            "vector_index": vector_index,
            "ivfflat_probes": ivfflat_probes,
            "project_index_min_rows": project_index_min_rows,
        },
    )
    runner = Bench(opts, log=(lambda m: None) if as_json else (lambda m: click.echo(m, err=True)))
    try:
        result = runner.run()
    finally:
        runner.close()
    if report_dir is not None:
        write_report(result, report_dir)
    if as_json:
        click.echo(
            json.dumps(
                {k: v for k, v in result.items() if k != "details"} | {"details": result["details"]}, default=str
            )
        )
        return
    for key in (
        "docs",
        "search_p50_ms",
        "search_p99_ms",
        "vector_recall_at_10",
        "vector_recall_at_10_unfiltered",
        "ingest_events_per_s",
        "bulk_load_events_per_s",
        "embed_docs_per_s",
        "embed_speedup_vs_torch",
        "freshness_p50_s",
        "freshness_p99_s",
        "bytes_per_event",
        "bytes_per_document",
        "warm_build_s",
        "warm_refresh_s",
    ):
        value = result.get(key)
        click.echo(f"{key:32} {value:,.3f}" if isinstance(value, float) else f"{key:32} {value}")
    if report_dir is not None:
        click.echo(f"report written to {report_dir}", err=True)


def _soak(minutes, clients, rate, kills, rebuilds, seed_docs, data_dir, keep, report_dir, as_json, embed_backend):
    from ctxsearch.bench.soak import SoakOptions, run_soak, text_report

    if data_dir is not None:
        _refuse_user_data_dir(data_dir)
        if data_dir.exists() and any(data_dir.iterdir()):
            _fail(f"--data-dir: {data_dir} is not empty; the soak needs a fresh data dir")
    logging.basicConfig(level="WARNING")
    opts = SoakOptions(
        minutes=minutes,
        clients=clients,
        rate=rate,
        kills=kills,
        rebuilds=rebuilds,
        seed_docs=seed_docs,
        data_dir=data_dir,
        keep=keep,
        settings={"embed_backend": embed_backend} if embed_backend else {},
    )
    result = run_soak(opts, log=(lambda m: None) if as_json else (lambda m: click.echo(m, err=True)))
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / "soak.json").write_text(json.dumps(result, indent=1))
    click.echo(json.dumps(result) if as_json else text_report(result))
    if not result["ok"]:
        sys.exit(1)


@main.command("bench-embeddings")
@click.argument("dataset", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--backends",
    default="torch,onnx-int8",
    show_default=True,
    help="Comma-separated backends; deltas are against the first.",
)
@click.option("--max-queries", type=click.IntRange(min=1), default=300, show_default=True)
@click.option(
    "--distractors",
    type=click.IntRange(min=0),
    default=1500,
    show_default=True,
    help="Unjudged documents added to the judged ones.",
)
@click.option("--full-corpus", is_flag=True, help="Rank against the whole corpus (slow on 2 cores).")
@data_dir_option
def bench_embeddings(
    dataset: Path, backends: str, max_queries: int, distractors: int, full_corpus: bool, data_dir: Path | None
) -> None:
    """Vector-only nDCG@10 of each embedding backend on a BEIR folder (e.g. SciFact), as one JSON object."""
    from ctxsearch.bench.quality import embedding_quality
    from ctxsearch.embeddings.model import BACKENDS

    names = [b.strip() for b in backends.split(",") if b.strip()]
    bad = [b for b in names if b not in BACKENDS]
    if not names or bad:
        _fail(f"--backends: choose from {', '.join(BACKENDS)}")
    if not (dataset / "corpus.jsonl").exists() or not (dataset / "qrels").is_dir():
        _fail(f"DATASET: {dataset} is not a BEIR folder (corpus.jsonl, queries.jsonl, qrels/)")
    result = embedding_quality(
        dataset,
        names,
        max_queries=max_queries,
        distractors=None if full_corpus else distractors,
        models_dir=_settings(data_dir).models_dir,
    )
    click.echo(json.dumps(result))


def _register_commands() -> None:
    from ctxsearch.cli import browse, capture

    for command in [*capture.commands, *browse.commands]:
        main.add_command(command)


_register_commands()


if __name__ == "__main__":
    main()
