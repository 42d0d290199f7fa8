"""`ctxsearch`: serve, work, ingest and search from the terminal."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from app.config import Settings


def _settings(data_dir: Path | None = None, **overrides) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    return Settings(**values)


def _fail(message: str) -> None:
    raise click.UsageError(message)


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Where the embedded PostgreSQL keeps its data (default: CTXSEARCH_DATA_DIR, else the user data dir).",
)


@click.group()
@click.version_option(package_name="ctxsearch")
def main() -> None:
    """ctxsearch: context search for coding agents."""


@main.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to bind (default 8080).")
@data_dir_option
@click.option("--no-worker", is_flag=True, help="Do not run the embed worker in this process.")
def serve(host: str | None, port: int | None, data_dir: Path | None, no_worker: bool) -> None:
    """Run the HTTP API (and an embed worker). With no CTXSEARCH_DATABASE_URL an embedded
    PostgreSQL with pgvector is started in the data dir."""
    import uvicorn

    from app.api import create_app

    settings = _settings(data_dir, host=host, port=port, run_worker=False if no_worker else None)
    _logging(settings.log_level)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level.lower())


@main.command()
@data_dir_option
def worker(data_dir: Path | None) -> None:
    """Run an embed worker on its own (condense, embed, rebuild the warm tier)."""
    import signal
    import threading

    from app.service import Service

    settings = _settings(data_dir)
    _logging(settings.log_level)
    svc = Service.start(settings, run_worker=True)
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
    from app.db import migrate as run_migrations
    from app.db import resolve_database_url

    applied = run_migrations(resolve_database_url(_settings(data_dir)))
    click.echo(f"applied {len(applied)} migrations" + (f": {', '.join(applied)}" if applied else ""))


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@data_dir_option
@click.option("--batch-size", type=int, default=500, show_default=True)
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until everything is embedded.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def ingest(file: Path, data_dir: Path | None, batch_size: int, wait: bool, as_json: bool) -> None:
    """Bulk-load events from a JSON Lines file (one event object per line)."""
    from pydantic import ValidationError
    from tqdm import tqdm

    from app.api import validation_message
    from app.schemas import EventIn
    from app.service import Service

    svc = Service.start(_settings(data_dir), run_worker=False)
    accepted = duplicates = 0
    try:
        lines = file.read_text().splitlines()
        with tqdm(total=len(lines), unit="ev", disable=as_json or not sys.stderr.isatty(), desc="ingest") as bar:
            for start in range(0, len(lines), batch_size):
                batch = []
                for n, line in enumerate(lines[start : start + batch_size], start=start + 1):
                    if not line.strip():
                        continue
                    try:
                        batch.append(EventIn.model_validate_json(line))
                    except ValidationError as exc:
                        _fail(f"{file}:{n}: {validation_message(exc.errors())}")
                if batch:
                    r = svc.ingest(batch)
                    accepted, duplicates = accepted + r.accepted, duplicates + r.duplicates
                bar.update(min(batch_size, len(lines) - start))
        if wait:
            svc.worker.drain(timeout_s=24 * 3600)
    finally:
        svc.close()
    out = {"accepted": accepted, "duplicates": duplicates}
    click.echo(json.dumps(out) if as_json else f"accepted {accepted}, duplicates {duplicates}")


@main.command()
@click.argument("query")
@click.option("--project", "project_id", required=True, help="Project to search (required).")
@click.option("--session", "session_id", default=None)
@click.option("--type", "types", multiple=True, help="Event type filter; repeatable.")
@click.option("--file", "files", multiple=True, help="File filter; repeatable.")
@click.option("--kind", "kinds", multiple=True, type=click.Choice(["summary", "event"]))
@click.option("--since", default=None, help="RFC 3339 lower bound.")
@click.option("--until", default=None, help="RFC 3339 upper bound.")
@click.option("--limit", type=int, default=10, show_default=True)
@click.option("--mode", type=click.Choice(["hybrid", "vector", "text"]), default="hybrid", show_default=True)
@click.option("--explain", is_flag=True, help="Show each arm's rank and score.")
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per hit.")
def search(query: str, project_id: str, session_id, types, files, kinds, since, until, limit, mode, explain,
           data_dir, as_json) -> None:
    """Search a project's context."""
    from pydantic import ValidationError

    from app.api import validation_message
    from app.schemas import SearchRequest
    from app.service import Service

    try:
        req = SearchRequest(
            query=query, project_id=project_id, session_id=session_id, types=list(types) or None,
            files=list(files) or None, kinds=list(kinds) or None, since=since, until=until, limit=limit,
            mode=mode, explain=explain,
        )
    except ValidationError as exc:
        _fail(validation_message(exc.errors()))
    svc = Service.start(_settings(data_dir), run_worker=False)
    try:
        resp = svc.search(req)
    finally:
        svc.close()
    if as_json:
        for hit in resp.results:
            click.echo(hit.model_dump_json())
        return
    if not resp.results:
        click.echo("no results")
    for n, hit in enumerate(resp.results, 1):
        ranks = f"  [vector {hit.ranks.vector}, text {hit.ranks.text}]" if explain else ""
        click.echo(f"{n:>2}. {hit.score:.4f}  {hit.kind}:{hit.id}  session {hit.session_id}  {hit.timestamp:%Y-%m-%d %H:%M}{ranks}")
        click.echo(f"    {hit.title}")
        snippet = hit.snippet.replace("<b>", click.style("", bold=True, reset=False)).replace("</b>", click.style("", reset=True))
        click.echo(f"    {' '.join(snippet.split())}")
    click.echo(f"({len(resp.results)} results, {resp.took_ms:.1f} ms)", err=True)


def _eval_data_dir(data_dir: Path | None) -> Path | None:
    """Evals load whole corpora: by default they get an embedded server of their own, away from user data."""
    if data_dir is not None:
        return data_dir
    import os

    import platformdirs

    if os.environ.get("CTXSEARCH_DATABASE_URL") or os.environ.get("CTXSEARCH_DATA_DIR"):
        return None
    return Path(platformdirs.user_cache_dir("ctxsearch")) / "evals"


@main.command("eval")
@click.argument("dataset")
@click.option("--split", type=click.Choice(["train", "test", "dev"]), default=None,
              help="BEIR judgments to score against (default: test if present, else the first).")
@click.option("--modes", default="text,vector,hybrid,bm25", show_default=True,
              help="Comma-separated: text, vector, hybrid (the search API) and bm25 (rank-bm25 reference).")
@click.option("--max-queries", type=click.IntRange(min=1), default=None, help="Score only the first N queries.")
@click.option("--no-rebuild", is_flag=True, help="Search the hot tier as loaded, without a warm-tier rebuild.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write DATASET.md, DATASET.png and DATASET.json into this folder.")
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def eval_(dataset: str, split: str | None, modes: str, max_queries: int | None, no_rebuild: bool,
          report_dir: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """Score the search on a relevance dataset: a BEIR folder, a LoCoMo JSON file, or the short
    names `scifact` / `locomo` (from ../shared/datasets). The data goes in through the ingest
    path and is searched through the search API's SQL; a loaded dataset is reused."""
    from functools import partial

    from tqdm import tqdm

    from app.service import Service
    from evals import datasets, report, runner

    try:
        mode_list = runner.parse_modes(modes)
        ds = datasets.load(dataset, split)
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    settings = _settings(_eval_data_dir(data_dir), log_level="WARNING")
    quiet = as_json or not sys.stderr.isatty()
    progress = partial(tqdm, disable=quiet, leave=False, dynamic_ncols=True)
    opts = runner.EvalOptions(modes=mode_list, max_queries=max_queries, split=ds.split,
                              rebuild=not no_rebuild)
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
    click.echo(f"{result['dataset']}: {result['documents']} documents, {result['queries']} queries"
               + (f", split {result['split']}" if result.get("split") else "") + f" ({result['seconds']} s)")
    click.echo(report.table(result))
    if result.get("per_category"):
        click.echo("")
        click.echo(report.category_table(result))
    for path in result.get("report", []):
        click.echo(f"wrote {path}", err=True)


if __name__ == "__main__":
    main()
