"""Migrations against a real PostgreSQL: the squashed baseline against the previous release's chain,
adopting and upgrading a database of that release, checksums, repeatables, a stale warm tier."""

from __future__ import annotations

import hashlib
import re
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from click.testing import CliRunner
from pgvector.psycopg import register_vector

from ctxsearch.cli.main import main
from ctxsearch.config import Settings
from ctxsearch.embeddings import get_embedder
from ctxsearch.schemas import EventIn, SearchRequest
from ctxsearch.service.facade import Service
from ctxsearch.store import migrations
from ctxsearch.store.db import release_embedded, resolve_database_url
from ctxsearch.store.migrations import LEGACY_CHAIN, MigrationError, migrate, pending_migrations
from ctxsearch.store.search import SearchParams, search

LEGACY_DIR = Path(__file__).resolve().parents[1] / "data" / "legacy-schema"
SQL_DIR = migrations.migrations_dir()


def fresh_migrations() -> list[str]:
    """What a fresh database gets: every versioned file, then every repeatable."""
    return [m.version for m in migrations.migration_files() + migrations.repeatable_files()]


# -- databases ---------------------------------------------------------------


@pytest.fixture(scope="module")
def server_url(settings) -> Iterator[str]:
    """The session's PostgreSQL (embedded, or the opt-in container)."""
    url = resolve_database_url(settings)
    yield url
    if not settings.database_url:
        release_embedded(settings.data_dir)


def _with_dbname(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture
def new_db(server_url) -> Iterator[Callable[[], str]]:
    """Makes empty databases in the session's server; drops them afterwards."""
    made: list[str] = []

    def make() -> str:
        name = f"mig_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        made.append(name)
        return _with_dbname(server_url, name)

    yield make
    with psycopg.connect(server_url, autocommit=True) as conn:
        for name in made:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def build_legacy(url: str, files: list[Path] | None = None) -> None:
    """The previous release's runner: its files in order, recorded by name, no checksums."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for path in files or sorted(LEGACY_DIR.glob("*.sql")):
            with conn.transaction():
                conn.execute(path.read_text())
                conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (path.stem,))


# What the previous release's ingest and worker wrote for an event: its document (tsvector with
# the previous event as context, embedding filled by the worker), the event, a condensed session.
_LEGACY_DOC = """
INSERT INTO documents (project_id, kind, session_id, event_id, type, title, body, files, ts,
                       importance, content_hash, tsv, context, embedding)
VALUES (%(project)s, 'event', %(session)s, %(id)s, %(type)s, %(type)s, %(content)s, '{}', %(ts)s,
        0.5, %(hash)s, ctxsearch_event_tsv(%(type)s, %(content)s, %(context)s), %(context)s, %(vec)s)
"""
_LEGACY_EVENT = """
INSERT INTO events (project_id, event_id, session_id, ts, type, content)
VALUES (%(project)s, %(id)s, %(session)s, %(ts)s, %(type)s, %(content)s)
"""
_LEGACY_SESSION = """
INSERT INTO sessions (project_id, session_id, started_at, ended_at, event_count, dirty, condensed_at)
VALUES (%s, %s, %s, %s, %s, false, now())
"""

OLD_EVENTS = [
    ("old-1", "decision", "Moved the session cache from Redis to memcached after the eviction storms in production"),
    ("old-2", "error", "ImportError: cannot import name 'parse_manifest' from 'build.loader' during the nightly job"),
    ("old-3", "note", "The flaky checkout test passes once the payment sandbox timeout is raised to 30 seconds"),
    ("old-4", "decision", "Adopt ruff for linting and formatting and drop flake8 and black from the toolchain"),
]


def legacy_ingest(url: str, project: str, session: str = "s1") -> None:
    """Store OLD_EVENTS as the previous release did and rebuild its warm tier with its own function."""
    embedder = get_embedder()
    vectors = embedder.embed([content for _, _, content in OLD_EVENTS])
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        context = None
        for n, ((event_id, type_, content), vec) in enumerate(zip(OLD_EVENTS, vectors, strict=True)):
            row = {
                "project": project,
                "session": session,
                "id": event_id,
                "type": type_,
                "content": content,
                "ts": f"2026-10-01T10:00:{n:02d}Z",
                "hash": hashlib.sha256(content.encode()).digest(),
                "context": context,
                "vec": vec,
            }
            conn.execute(_LEGACY_DOC, row)
            conn.execute(_LEGACY_EVENT, row)
            context = content
        conn.execute(
            _LEGACY_SESSION, (project, session, "2026-10-01T10:00:00Z", "2026-10-01T10:00:03Z", len(OLD_EVENTS))
        )
        conn.execute("SELECT ctxsearch_rebuild_warm('ivfflat', 5000)")


def tier(url: str) -> dict:
    with psycopg.connect(url) as conn:
        cur = conn.execute("SELECT * FROM tier_state")
        return dict(zip([c.name for c in cur.description], cur.fetchone(), strict=True))


def recorded(url: str) -> dict[str, str | None]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT version, checksum FROM schema_migrations").fetchall())


@contextmanager
def running_service(url: str, settings: Settings) -> Iterator[Service]:
    """A Service on the database at url, started the way `ctxsearch serve` starts one."""
    svc = Service.start(
        Settings(database_url=url, data_dir=settings.data_dir, refresh_interval_s=3600, worker_poll_s=0.2),
        run_worker=True,
    )
    try:
        yield svc
    finally:
        svc.close()


def hits(svc: Service, project: str, query: str, mode: str, **extra) -> list[str]:
    return [h.id for h in svc.search(SearchRequest(query=query, project_id=project, mode=mode, **extra)).results]


def every_search_variant(svc: Service, project: str, query: str) -> dict[tuple, list[int]]:
    """Run the search SQL in each of its shapes (arms, fusion, filters, list or exact text
    candidates) against the database: a warm tier lacking a table or column the SQL reads fails here."""
    qvec = svc.embedder.embed_query(query)
    out = {}
    with svc.db.connection() as conn:
        for mode in ("text", "vector", "hybrid"):
            for fusion in ("convex", "rrf", "weighted"):
                for types in (None, ["decision", "error", "note"]):
                    for exact in (False, True):
                        p = SearchParams(
                            query=query, project_id=project, mode=mode, fusion=fusion, types=types, text_exact=exact
                        )
                        out[(mode, fusion, bool(types), exact)] = [
                            r["doc_id"] for r in search(conn=conn, params=p, query_vector=qvec)
                        ]
    return out


# -- pg_dump -----------------------------------------------------------------


def pg_dump(url: str) -> str:
    import pgserver

    binary = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_dump"
    out = subprocess.run(
        [str(binary), "--schema-only", "--no-owner", "--no-privileges", "-d", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # A generation's number is data (tier_state.generation), not schema.
    out = re.sub(r"\bwarm_(docs|text_stats|text_df|text_top)_\d+", r"warm_\1_N", out)
    return "\n".join(line for line in out.splitlines() if not line.startswith(("\\restrict", "\\unrestrict")))


def dump_entries(dump: str) -> dict[tuple[str, str], str]:
    """The dump's objects, (name, type) -> its statements."""
    entries: dict[tuple[str, str], str] = {}
    for block in re.split(r"\n--\n(?=-- Name: )", dump)[1:]:
        head, _, body = block.partition("\n--\n")
        m = re.match(r"-- Name: (.*?); Type: (.*?); Schema:", head)
        assert m, head
        entries[(m.group(1), m.group(2))] = body.strip()
    return entries


def test_baseline_is_the_legacy_chains_schema(new_db):
    """0001_baseline.sql creates what the previous release's chain left: every table, column,
    constraint, index, sequence, view and materialized view, and its own function, identical.
    (The other functions are the repeatables'; test_adopted_legacy_database_has_the_fresh_schema
    compares them.)"""
    legacy, baseline = new_db(), new_db()
    build_legacy(legacy)
    with psycopg.connect(baseline, autocommit=True) as conn:
        conn.execute((SQL_DIR / "0001_baseline.sql").read_text())

    old = {k: v for k, v in dump_entries(pg_dump(legacy)).items() if "schema_migrations" not in k[0]}
    new = dump_entries(pg_dump(baseline))
    assert sorted(k for k in old if k[1] != "FUNCTION") == sorted(k for k in new if k[1] != "FUNCTION")
    kinds = {k[1] for k in new}
    assert {"TABLE", "INDEX", "VIEW", "FUNCTION"} <= kinds, kinds  # the dumps were read, not empty
    for key, text in new.items():
        assert old.get(key) == text, key


def test_adopted_legacy_database_has_the_fresh_schema(new_db):
    legacy, fresh = new_db(), new_db()
    build_legacy(legacy)
    generation = tier(legacy)["generation"]
    assert migrate(legacy) == ["0001_baseline (adopted: the previous release's schema)", *fresh_migrations()[1:]]
    assert tier(legacy)["generation"] == generation  # nothing rebuilt the warm tier
    assert migrate(fresh) == fresh_migrations()
    assert pg_dump(legacy) == pg_dump(fresh)
    history = recorded(legacy)
    assert LEGACY_CHAIN <= history.keys() and all(history[v] is None for v in LEGACY_CHAIN)
    assert all(history[v] for v in fresh_migrations())


# -- upgrading a database of the previous release ------------------------------


def test_upgrade_from_the_legacy_chain_keeps_search_working(new_db, settings, project):
    url = new_db()
    build_legacy(url)
    legacy_ingest(url, project)
    before = tier(url)
    assert before["warm_rows"] == len(OLD_EVENTS)

    applied = migrate(url)
    assert applied[0].startswith("0001_baseline (adopted") and applied[1:] == fresh_migrations()[1:]
    assert tier(url)["generation"] == before["generation"]

    with running_service(url, settings) as svc:
        assert svc.readiness() is None
        every_search_variant(svc, project, "memcached eviction")
        for mode in ("text", "vector", "hybrid"):
            assert hits(svc, project, "memcached eviction storms", mode)[0] == "old-1", mode
            assert "old-2" in hits(svc, project, "ImportError parse_manifest", mode)[:2], mode
        assert "old-4" in hits(svc, project, "which linter did we choose", "vector")[:2]
        assert hits(svc, project, "flake8", "text", types=["decision"]) == ["old-4"]

        new = EventIn(
            id="new-1",
            project_id=project,
            session_id="s2",
            timestamp="2026-12-01T09:00:00Z",
            type="decision",
            content="Pin the grpcio wheel to 1.62 because 1.63 segfaults on Alpine",
        )
        assert svc.ingest([new]).accepted == 1
        assert hits(svc, project, "grpcio segfaults", "text")[0] == "new-1"
        assert svc.wait_embedded(project, 60)
        for mode in ("text", "vector", "hybrid"):
            # (its session's summary, once condensed, may come first)
            assert "new-1" in hits(svc, project, "grpcio wheel segfault on Alpine", mode)[:2], mode
            assert hits(svc, project, "memcached eviction storms", mode)[0] == "old-1", mode
        assert svc.readiness() is None

    assert migrate(url) == []


def test_stale_generation_is_searched_and_rebuilt_in_the_background(new_db, settings, project):
    """A generation of an older layout (here: one without top lists) after an upgrade: searches
    fall back to reading its matches, and the worker, not the migration, rebuilds it."""
    url = new_db()
    build_legacy(url)
    legacy_ingest(url, project)
    migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM warm_text_top")
        conn.execute("UPDATE tier_state SET warm_version = 0")
        assert conn.execute("SELECT ctxsearch_warm_stale()").fetchone()[0]
    assert migrate(url) == []  # staleness is the worker's business
    generation = tier(url)["generation"]

    settings_ = Settings(database_url=url, data_dir=settings.data_dir, run_worker=False)
    svc = Service.start(settings_, run_worker=False)
    try:
        assert svc.readiness() is None
        variants = every_search_variant(svc, project, "memcached eviction storms")
        assert variants and all(variants.values()), variants  # every variant finds something to compare
        for (mode, fusion, narrowed, exact), ids in variants.items():
            # The lists are missing: candidates come from the matches, as in the exact reference.
            assert ids == variants[(mode, fusion, narrowed, True)], (mode, fusion, narrowed, exact)
        for mode in ("text", "hybrid"):
            assert hits(svc, project, "memcached eviction storms", mode)[0] == "old-1", mode
            assert hits(svc, project, "parse_manifest", mode, types=["error"])[0] == "old-2", mode
        assert tier(url)["generation"] == generation

        svc.worker.start()
        deadline = time.monotonic() + 60
        while tier(url)["generation"] == generation:
            assert time.monotonic() < deadline, "the worker did not rebuild the stale tier"
            time.sleep(0.2)
        state = tier(url)
        assert state["warm_rows"] == len(OLD_EVENTS)
        with psycopg.connect(url) as conn:
            assert state["warm_version"] == conn.execute("SELECT ctxsearch_warm_version()").fetchone()[0]
            assert (
                conn.execute("SELECT count(*) FROM warm_text_top WHERE project_id = %s", (project,)).fetchone()[0] > 0
            )
            assert not conn.execute("SELECT ctxsearch_warm_stale()").fetchone()[0]
        for mode in ("text", "vector", "hybrid"):
            assert hits(svc, project, "memcached eviction storms", mode)[0] == "old-1", mode
    finally:
        svc.close()


def test_part_of_the_legacy_chain_is_refused(new_db):
    url = new_db()
    build_legacy(url, sorted(LEGACY_DIR.glob("*.sql"))[:6])  # up to 0020_project_ann
    with pytest.raises(MigrationError, match="upgrade it through the previous release") as err:
        migrate(url)
    assert "0021_events_session_index" in str(err.value) and "0023_text_top" in str(err.value)
    assert "0001_baseline" not in recorded(url)


# -- checksums and repeatables -------------------------------------------------


@pytest.fixture
def sql_copy(tmp_path, monkeypatch) -> Path:
    """An editable copy of sql/ that the runner reads instead."""
    folder = tmp_path / "sql"
    shutil.copytree(migrations.migrations_dir(), folder, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(migrations, "migrations_dir", lambda: folder)
    return folder


def test_fresh_database_migrates_in_one_go_and_twice_is_a_noop(new_db, monkeypatch):
    url = new_db()
    r = CliRunner().invoke(main, ["migrate"], env={"CTXSEARCH_DATABASE_URL": url})
    assert r.exit_code == 0, r.output
    assert r.output.strip() == f"applied {len(fresh_migrations())} migrations: {', '.join(fresh_migrations())}"
    assert tier(url)["generation"] == 0  # no rebuild
    history = recorded(url)
    assert history.keys() == set(fresh_migrations()) and all(re.fullmatch(r"[0-9a-f]{64}", c) for c in history.values())
    r = CliRunner().invoke(main, ["migrate"], env={"CTXSEARCH_DATABASE_URL": url})
    assert r.exit_code == 0 and r.output.strip() == "applied 0 migrations"
    assert migrate(url) == []
    with psycopg.connect(url) as conn:
        assert pending_migrations(conn=conn) == []


def test_processes_starting_together_apply_each_file_once(new_db):
    url = new_db()
    results: list[list[str]] = []
    threads = [threading.Thread(target=lambda: results.append(migrate(url))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == [[], [], fresh_migrations()]


def test_changed_applied_file_is_refused(new_db, sql_copy, settings):
    url = new_db()
    migrate(url)
    baseline = sql_copy / "0001_baseline.sql"
    baseline.write_text(baseline.read_text() + "\nCREATE INDEX sessions_started_idx ON sessions (started_at);\n")
    with pytest.raises(MigrationError, match=r"sql/0001_baseline\.sql was changed after it was applied"):
        migrate(url)
    r = CliRunner().invoke(main, ["migrate"], env={"CTXSEARCH_DATABASE_URL": url})
    assert r.exit_code == 2 and "0001_baseline.sql was changed" in r.output, r.output
    with pytest.raises(MigrationError, match="0001_baseline"):
        Service.start(Settings(database_url=url, data_dir=settings.data_dir), run_worker=False)
    # Line endings alone are no change.
    baseline.write_bytes((SQL_DIR / "0001_baseline.sql").read_bytes().replace(b"\n", b"\r\n"))
    assert migrate(url) == []


def test_cli_refuses_a_changed_file_with_exit_2(new_db, sql_copy, own_data_dir, monkeypatch):
    # Neither the commands' logging setup nor their signal handlers may outlive the call here.
    monkeypatch.setattr("ctxsearch.cli.main._logging", lambda settings: None)
    monkeypatch.setattr(signal, "signal", lambda *args: None)
    runner = CliRunner()
    r = runner.invoke(main, ["migrate", "--data-dir", str(own_data_dir)])
    release_embedded(own_data_dir)
    assert r.exit_code == 0, r.output
    url = new_db()
    migrate(url)
    baseline = sql_copy / "0001_baseline.sql"
    baseline.write_text(baseline.read_text() + "\n-- an afterthought\n")

    r = runner.invoke(main, ["serve", "--data-dir", str(own_data_dir)])  # the embedded server
    assert r.exit_code == 2 and "sql/0001_baseline.sql was changed" in r.output, r.output
    for command in ("serve", "worker", "mcp", "migrate"):
        r = runner.invoke(main, [command], env={"CTXSEARCH_DATABASE_URL": url})
        assert r.exit_code == 2 and "sql/0001_baseline.sql was changed" in r.output, (command, r.output)


def test_recorded_version_without_its_file_is_refused(new_db):
    url = new_db()
    migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_migrations (version, checksum) VALUES ('0003_from_elsewhere', 'x')")
    with pytest.raises(MigrationError, match=r"records migration 0003_from_elsewhere, but there is no sql/"):
        migrate(url)


def test_changed_repeatable_is_reapplied(new_db, sql_copy):
    url = new_db()
    migrate(url)
    text = sql_copy / "repeatable" / "R__text.sql"
    text.write_text(
        text.read_text() + "\nCREATE OR REPLACE FUNCTION ctxsearch_test_marker() RETURNS int"
        " LANGUAGE sql IMMUTABLE AS $$ SELECT 42 $$;\n"
    )
    with psycopg.connect(url) as conn:
        assert pending_migrations(conn=conn) == ["R__text"]
    assert migrate(url) == ["R__text"]
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT ctxsearch_test_marker()").fetchone()[0] == 42
        assert pending_migrations(conn=conn) == []
    assert recorded(url)["R__text"] == hashlib.sha256(text.read_bytes()).hexdigest()
    assert migrate(url) == []
    # A new repeatable is applied too, after the others in name order.
    (sql_copy / "repeatable" / "R__zz_extra.sql").write_text(
        "CREATE OR REPLACE FUNCTION ctxsearch_test_extra() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n"
    )
    assert migrate(url) == ["R__zz_extra"]
