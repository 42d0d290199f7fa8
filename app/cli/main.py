"""`ctxsearch`: serve, work, ingest and search from the terminal."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from ctxsearch.config import Settings


def _settings(data_dir: Path | None = None, **overrides) -> Settings:
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    try:
        return Settings(**values)
    except ValidationError as exc:
        from ctxsearch.validation import validation_message

        # validation_message shows field and reason, never the value (API keys are values).
        _fail(f"invalid settings: {validation_message(exc.errors())}")
    except SettingsError as exc:
        _fail(f"invalid settings: {exc} (not valid JSON?)")


def _fail(message: str) -> None:
    raise click.UsageError(message)


def _logging(settings: Settings) -> None:
    from ctxsearch.http.observability import configure_logging

    configure_logging(settings.log_level, settings.log_format)


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Where the embedded PostgreSQL keeps its data (default: CTXSEARCH_DATA_DIR, else the user data dir).",
)


@click.group()
@click.version_option(package_name="ctxsearch")
def main() -> None:
    """ctxsearch: context search for coding agents."""


def _check_database(settings: Settings) -> None:
    """Fail with a clear message (exit 2) when the database cannot serve ctxsearch."""
    import psycopg

    from ctxsearch.store.db import MissingExtension, safe_url
    from ctxsearch.store.migrations import migrate as run_migrations

    if not settings.database_url:
        return  # the embedded server always has pgvector; the app starts it
    try:
        run_migrations(settings.database_url)
    except MissingExtension as exc:
        _fail(str(exc))
    except psycopg.OperationalError as exc:
        _fail(f"cannot reach the database at {safe_url(settings.database_url)}: {str(exc).strip().splitlines()[0]}")


@main.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to bind (default 8080).")
@data_dir_option
@click.option("--no-worker", is_flag=True, help="Do not run the embed worker in this process.")
@click.option("--allow-unauthenticated", is_flag=True, default=None,
              help="Bind a non-loopback address with no API keys set (CTXSEARCH_ALLOW_UNAUTHENTICATED).")
def serve(host: str | None, port: int | None, data_dir: Path | None, no_worker: bool,
          allow_unauthenticated: bool | None) -> None:
    """Run the HTTP API (and an embed worker). With no CTXSEARCH_DATABASE_URL an embedded
    PostgreSQL with pgvector is started in the data dir. With CTXSEARCH_API_KEYS set every
    /v1 and /mcp request needs a key; without, only a loopback address may be bound."""
    import uvicorn

    from ctxsearch.http.app import create_app

    settings = _settings(data_dir, host=host, port=port, run_worker=False if no_worker else None,
                         allow_unauthenticated=allow_unauthenticated)
    if settings.api_keys:
        auth = f"{len(settings.api_keys)} API keys; every /v1 and /mcp request needs one"
    elif _is_loopback(settings.host):
        auth = "no API keys (CTXSEARCH_API_KEYS unset): open to local callers only"
    elif settings.allow_unauthenticated:
        auth = f"no API keys and --allow-unauthenticated: anyone who can reach {settings.host} may use every project"
    else:
        _fail(f"refusing to bind {settings.host} with no API keys: set CTXSEARCH_API_KEYS, bind 127.0.0.1, "
              "or pass --allow-unauthenticated")
    _logging(settings)
    _check_database(settings)
    click.echo(f"ctxsearch serving on http://{settings.host}:{settings.port} "
               f"(worker {'on' if settings.run_worker else 'off'}); auth: {auth}", err=True)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level.lower(),
                log_config=None, access_log=False)


@main.command()
@data_dir_option
@click.option("--no-worker", is_flag=True, help="Do not run the embed worker in this process.")
def mcp(data_dir: Path | None, no_worker: bool) -> None:
    """Serve the MCP tools (search_context, get_session, record_events) over stdio, with the
    same settings as `serve`. Beside a running `serve` on the same data dir, both share
    one embedded PostgreSQL."""
    from ctxsearch.mcp.server import run_stdio

    import atexit
    import os
    import signal

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
    except Exception as exc:  # startup: say what failed, on stderr, without a traceback
        raise click.ClickException(f"cannot start the MCP server: {exc}") from None


@main.command()
@data_dir_option
def worker(data_dir: Path | None) -> None:
    """Run an embed worker on its own (condense, embed, rebuild the warm tier)."""
    import signal
    import threading

    from ctxsearch.service.facade import Service

    settings = _settings(data_dir)
    _logging(settings)
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
    from ctxsearch.store.migrations import migrate as run_migrations
    from ctxsearch.store.db import resolve_database_url

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

    from ctxsearch.validation import validation_message
    from ctxsearch.schemas import EventIn
    from ctxsearch.service.facade import Service

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
@click.option("--max-tokens", type=int, default=None, help="Token budget for the results.")
@click.option("--cursor", default=None, help="Continue from the cursor a previous page printed.")
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per hit.")
def search(query: str, project_id: str, session_id, types, files, kinds, since, until, limit, mode, explain,
           max_tokens, cursor, data_dir, as_json) -> None:
    """Search a project's context."""
    from pydantic import ValidationError

    from ctxsearch.validation import validation_message
    from ctxsearch.service.paging import InvalidCursor
    from ctxsearch.schemas import SearchRequest
    from ctxsearch.service.facade import Service

    try:
        req = SearchRequest(
            query=query, project_id=project_id, session_id=session_id, types=list(types) or None,
            files=list(files) or None, kinds=list(kinds) or None, since=since, until=until, limit=limit,
            mode=mode, explain=explain, max_tokens=max_tokens, cursor=cursor,
        )
    except ValidationError as exc:
        _fail(validation_message(exc.errors()))
    svc = Service.start(_settings(data_dir), run_worker=False)
    try:
        resp = svc.search(req)
    except InvalidCursor as exc:
        _fail(str(exc))
    finally:
        svc.close()
    if resp.next_cursor:
        click.echo(f"next page: --cursor {resp.next_cursor}" + (" (cut to the token budget)" if resp.truncated else ""),
                   err=True)
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

    from ctxsearch.service.facade import Service
    from ctxsearch.evals import datasets, report, runner

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
@main.command()
@click.option("--docs", type=click.IntRange(min=100), default=100_000, show_default=True,
              help="Searchable documents to build (measured at 10k, 100k, ... on the way).")
@click.option("--concurrency", type=click.IntRange(1, 64), default=8, show_default=True,
              help="The higher concurrency for search latency (1 is always measured).")
@click.option("--steps", default=None, help="Comma-separated sizes to measure on the way (default 10k, 100k, ...).")
@click.option("--seed-texts", type=click.IntRange(min=10), default=3000, show_default=True,
              help="Texts embedded with the real model; the rest of the corpus derives from them.")
@click.option("--queries", type=click.IntRange(min=10), default=200, show_default=True,
              help="Searches per mode at concurrency 1 (twice as many at the higher concurrency).")
@click.option("--recall-queries", type=click.IntRange(min=10), default=100, show_default=True)
@click.option("--ingest-events", type=click.IntRange(min=500), default=None,
              help="Events posted over HTTP for the ingest rate (default docs/10, 5,000 to 50,000).")
@click.option("--freshness-s", type=click.FloatRange(min=1), default=20.0, show_default=True,
              help="How long to post 100 events/s for the freshness measurement.")
@click.option("--embed-backend", type=click.Choice(["torch", "onnx", "onnx-int8"]), default=None)
@click.option("--vector-index", type=click.Choice(["ivfflat", "hnsw"]), default=None)
@click.option("--probes", "ivfflat_probes", type=click.IntRange(min=1), default=None, help="ivfflat.probes.")
@click.option("--project-index-min-rows", type=click.IntRange(min=0), default=None)
@data_dir_option
@click.option("--keep", is_flag=True, help="Keep the bench data dir (default: a temporary dir, deleted after).")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write report.md, bench.json and PNG plots here.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object at the end, nothing else.")
def bench(docs, concurrency, steps, seed_texts, queries, recall_queries, ingest_events, freshness_s, embed_backend,
          vector_index, ivfflat_probes, project_index_min_rows, data_dir, keep, report_dir, as_json) -> None:
    """Build a corpus of DOCS searchable documents and measure ingest, embedding, freshness,
    search latency, vector recall, storage and index build times."""
    from ctxsearch.bench.runner import Bench, BenchOptions, write_report

    try:
        step_list = [int(x) for x in steps.split(",")] if steps else []
    except ValueError:
        _fail("--steps: expected comma-separated integers, e.g. 10000,100000")
    if any(s < 100 for s in step_list):
        _fail("--steps: every size must be at least 100")
    if data_dir is not None and data_dir.exists() and any(data_dir.iterdir()):
        _fail(f"--data-dir: {data_dir} is not empty; the bench needs a fresh data dir")
    logging.basicConfig(level="WARNING")
    quiet = as_json or not sys.stderr.isatty()
    opts = BenchOptions(
        docs=docs, concurrency=concurrency, seed_texts=seed_texts, queries=queries, recall_queries=recall_queries,
        ingest_events=ingest_events, freshness_s=freshness_s, steps=step_list, data_dir=data_dir, keep=keep,
        show_progress=not quiet,
        settings={"embed_backend": embed_backend, "vector_index": vector_index, "ivfflat_probes": ivfflat_probes,
                  "project_index_min_rows": project_index_min_rows},
    )
    runner = Bench(opts, log=(lambda m: None) if as_json else (lambda m: click.echo(m, err=True)))
    try:
        result = runner.run()
    finally:
        runner.close()
    if report_dir is not None:
        write_report(result, report_dir)
    if as_json:
        click.echo(json.dumps({k: v for k, v in result.items() if k != "details"} | {"details": result["details"]},
                              default=str))
        return
    for key in ("docs", "search_p50_ms", "search_p99_ms", "vector_recall_at_10", "vector_recall_at_10_unfiltered",
                "ingest_events_per_s", "bulk_load_events_per_s", "embed_docs_per_s", "embed_speedup_vs_torch",
                "freshness_p50_s", "freshness_p99_s", "bytes_per_event", "bytes_per_document", "warm_build_s",
                "warm_refresh_s"):
        value = result.get(key)
        click.echo(f"{key:32} {value:,.3f}" if isinstance(value, float) else f"{key:32} {value}")
    if report_dir is not None:
        click.echo(f"report written to {report_dir}", err=True)


@main.command("bench-embeddings")
@click.argument("dataset", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--backends", default="torch,onnx-int8", show_default=True,
              help="Comma-separated backends; deltas are against the first.")
@click.option("--max-queries", type=click.IntRange(min=1), default=300, show_default=True)
@click.option("--distractors", type=click.IntRange(min=0), default=1500, show_default=True,
              help="Unjudged documents added to the judged ones.")
@click.option("--full-corpus", is_flag=True, help="Rank against the whole corpus (slow on 2 cores).")
@data_dir_option
def bench_embeddings(dataset: Path, backends: str, max_queries: int, distractors: int, full_corpus: bool,
                     data_dir: Path | None) -> None:
    """Vector-only nDCG@10 of each embedding backend on a BEIR folder (e.g. SciFact), as one JSON object."""
    from ctxsearch.bench.quality import embedding_quality
    from ctxsearch.embeddings.model import BACKENDS

    names = [b.strip() for b in backends.split(",") if b.strip()]
    bad = [b for b in names if b not in BACKENDS]
    if not names or bad:
        _fail(f"--backends: choose from {', '.join(BACKENDS)}")
    if not (dataset / "corpus.jsonl").exists() or not (dataset / "qrels").is_dir():
        _fail(f"DATASET: {dataset} is not a BEIR folder (corpus.jsonl, queries.jsonl, qrels/)")
    result = embedding_quality(dataset, names, max_queries=max_queries,
                               distractors=None if full_corpus else distractors,
                               models_dir=_settings(data_dir).models_dir)
    click.echo(json.dumps(result))


if __name__ == "__main__":
    main()
