"""The warm-tier rebuild: a swap that waits for readers without blocking searches, pooled
connections left as they were, and BM25 top lists weighted as the scorer weighs."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from pgvector.psycopg import register_vector

from ctxsearch.store.db import Database
from ctxsearch.store.search import SearchParams, tuning
from ctxsearch.store.search import search as run_search
from ctxsearch.store.tiers import TierBusy, drop_old_generations, rebuild_warm, tier_state
from tests.conftest import event


def connect(service, autocommit: bool = True) -> psycopg.Connection:
    conn = psycopg.connect(service.db.url, autocommit=autocommit)
    register_vector(conn)
    return conn


def generations(conn: psycopg.Connection) -> list[int]:
    return [g for (g,) in conn.execute("SELECT ctxsearch_warm_generations()")]


def swap_waiting(conn: psycopg.Connection) -> bool:
    """Whether someone waits for the ACCESS EXCLUSIVE lock on the warm view (a swap)."""
    return conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE relation = 'warm_docs'::regclass"
        " AND mode = 'AccessExclusiveLock' AND NOT granted)"
    ).fetchone()[0]


@pytest.fixture
def warm_project(client, service, settings, project, wait_indexed) -> str:
    evs = [event(project, "s", n, "note", f"marmoset canary {n} watches the tier swap") for n in range(5)]
    assert client.post("/v1/events", json={"events": evs}).status_code == 202
    wait_indexed(project)
    with service.db.connection() as conn:
        rebuild_warm(conn=conn, settings=settings)
    return project


def test_swap_waits_for_a_reader_of_the_old_generation_without_blocking_searches(service, settings, warm_project):
    observer = connect(service)
    old = tier_state(observer).generation
    # A reader of the old generation through the view (it blocks the swap) and one of its
    # table directly (it blocks only the drop), both left open.
    reader, holder = connect(service, autocommit=False), connect(service, autocommit=False)
    reader.execute("SELECT count(*) FROM warm_docs WHERE project_id = %s", (warm_project,))
    holder.execute(f"SELECT count(*) FROM warm_docs_{old}")
    result: dict = {}

    def rebuild() -> None:
        try:
            with service.db.connection() as conn:
                result["rebuilt"] = rebuild_warm(conn=conn, settings=settings)
        except BaseException as exc:  # reported below
            result["error"] = exc

    thread = threading.Thread(target=rebuild)
    thread.start()
    searcher = connect(service)
    searcher.execute("SET statement_timeout = '3s'")
    try:
        deadline = time.monotonic() + 60
        while not swap_waiting(observer):
            assert thread.is_alive() and time.monotonic() < deadline, result
            time.sleep(0.005)
        # The swap is trying: searches of every mode still answer at once, many times over.
        took = []
        until = time.monotonic() + 2.0
        while time.monotonic() < until:
            for mode in ("text", "vector", "hybrid"):
                t0 = time.monotonic()
                params = SearchParams(query="marmoset canary", project_id=warm_project, mode=mode, **tuning(settings))
                rows = run_search(conn=searcher, params=params, query_vector=service.embedder.embed_query("marmoset"))
                took.append(time.monotonic() - t0)
                assert rows
        assert max(took) < 1.0, max(took)
        assert thread.is_alive() and tier_state(observer).generation == old  # still retrying
    finally:
        reader.rollback()
    thread.join(30)
    assert not thread.is_alive() and "error" not in result, result
    gen = result["rebuilt"][0]
    assert tier_state(observer).generation == gen > old
    # The old generation is still held by `holder`: the rebuild left it to a later pass.
    assert old in generations(observer)
    with service.db.connection() as conn:
        assert drop_old_generations(conn) == []
    holder.rollback()
    with service.db.connection() as conn:
        assert drop_old_generations(conn) == [old]
    assert generations(observer) == [gen]
    for c in (observer, reader, holder, searcher):
        c.close()


def test_a_rebuild_that_cannot_swap_gives_up_and_drops_what_it_built(service, settings, warm_project):
    observer = connect(service)
    before = tier_state(observer).generation
    reader = connect(service, autocommit=False)
    reader.execute("SELECT count(*) FROM warm_docs")
    try:
        with service.db.connection() as conn, pytest.raises(TierBusy, match="swap"):
            rebuild_warm(conn=conn, settings=settings, lock_wait_s=0.5)
    finally:
        reader.rollback()
    assert tier_state(observer).generation == before and generations(observer) == [before]
    assert not observer.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0]
    observer.close()


def test_a_pooled_connection_comes_back_without_session_state(service, settings):
    s = settings.model_copy(update={"pool_min_size": 1, "pool_max_size": 1})
    db = Database(service.db.url, s)
    db.open()
    try:
        with db.connection() as conn:
            pid = conn.info.backend_pid
            rebuild_warm(conn=conn, settings=s)
        with db.connection() as conn:
            # Any other user's session-level lock or setting is cleared on the way back too.
            conn.execute("SELECT pg_advisory_lock(4242), set_config('work_mem', '7MB', false)")
        with db.connection() as conn:
            assert conn.info.backend_pid == pid  # the same connection, handed out next
            changed = conn.execute(
                "SELECT name FROM pg_settings WHERE source = 'session'"
                " AND name NOT IN ('plan_cache_mode', 'ivfflat.probes', 'hnsw.ef_search')"
            ).fetchall()
            assert changed == []
            assert (
                conn.execute("SELECT source FROM pg_settings WHERE name = 'maintenance_work_mem'").fetchone()[0]
                != "session"
            )
            assert (
                conn.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
                ).fetchone()[0]
                == 0
            )
            custom = conn.execute(
                "SELECT current_setting('ctxsearch.project_index_min_rows', true),"
                " current_setting('ctxsearch.text_top_docs', true)"
            ).fetchone()
            assert all(v in (None, "") for v in custom), custom
            # ...and the pool's own settings are there.
            assert conn.execute("SHOW plan_cache_mode").fetchone()[0] == "force_custom_plan"
            assert conn.execute("SHOW ivfflat.probes").fetchone()[0] == str(s.ivfflat_probes)
            assert conn.execute("SHOW hnsw.ef_search").fetchone()[0] == str(s.hnsw_ef_search)
    finally:
        db.close()


# -- BM25 parameters: one source for the top lists and the scorer ---------------------------

BM25 = {"bm25_k1": 2.0, "bm25_b": 0.3, "text_context_weight": 0.2}


@pytest.fixture
def bm25_project(client, service, settings, project, wait_indexed) -> str:
    # "gizmo" 1-4 times in documents of very different lengths; in three sessions, so that
    # the next event holds the previous one's text as context (weight D).
    evs = []
    for n in range(30):
        filler = " ".join(f"filler{(n * 7 + k) % 50}" for k in range((n * 13) % 45))
        evs.append(event(project, f"s{n % 3}", n, "note", f"{'gizmo ' * (1 + n % 4)}sprocket {filler}", id=f"b{n}"))
    assert client.post("/v1/events", json={"events": evs}).status_code == 202
    wait_indexed(project)
    yield project
    with service.db.connection() as conn:
        rebuild_warm(conn=conn, settings=settings)  # the session's settings for the tests after


def test_top_list_weights_are_the_scorers_with_the_configured_bm25(service, settings, bm25_project):
    s = settings.model_copy(update=BM25)
    with service.db.connection() as conn:
        rebuild_warm(conn=conn, settings=s)
        for lexeme in ("gizmo", "sprocket", "filler3"):
            ids, weights = conn.execute(
                "SELECT ids, weights FROM warm_text_top WHERE project_id = %s AND lexeme = %s", (bm25_project, lexeme)
            ).fetchone()
            idf = conn.execute(
                "SELECT ctxsearch_idf(s.n_docs, d.df) FROM warm_text_stats s JOIN warm_text_df d USING (project_id)"
                " WHERE project_id = %s AND d.lexeme = %s",
                (bm25_project, lexeme),
            ).fetchone()[0]
            params = SearchParams(
                query=lexeme,
                project_id=bm25_project,
                mode="text",
                limit=100,
                candidates=100,
                text_exact=True,
                **tuning(s),
            )
            # A one-term query scores idf x the term's weight: the scorer's weight of each document.
            scored = {
                r["doc_id"]: r["text_score"] / idf for r in run_search(conn=conn, params=params, query_vector=None)
            }
            assert set(scored) == set(ids), lexeme
            for doc_id, w in zip(ids, weights, strict=True):
                assert w == pytest.approx(scored[doc_id], rel=1e-5), (lexeme, doc_id)


def test_text_search_with_cut_top_lists_equals_the_exhaustive_path(service, settings, bm25_project):
    # Lists cut at 10 documents hold the best 10 only if they weigh as the scorer does.
    s = settings.model_copy(update={**BM25, "text_top_docs": 10})
    with service.db.connection() as conn:
        rebuild_warm(conn=conn, settings=s)

        def ranked(query: str, **extra) -> list[int]:
            params = SearchParams(query=query, project_id=bm25_project, mode="text", **tuning(s), **extra)
            return [r["doc_id"] for r in run_search(conn=conn, params=params, query_vector=None)]

        for query in ("gizmo", "sprocket", "gizmo gizmo"):
            exact = ranked(query, limit=30, candidates=30, text_exact=True)
            assert len(exact) > 10
            assert ranked(query, limit=10) == exact[:10], query
        # Complete lists (the default cut): every query, however many terms, ranks as the exhaustive path.
        rebuild_warm(conn=conn, settings=settings.model_copy(update=BM25))
        for query in ("gizmo sprocket", "gizmo filler3 filler7", "sprocket filler11"):
            assert ranked(query, limit=10) == ranked(query, limit=10, text_exact=True), query


@pytest.mark.parametrize("mode", ["text", "vector", "hybrid"])
def test_a_search_takes_the_warm_views_in_the_swaps_order(service, settings, warm_project, mode):
    """For each view a swap could hold, a search waiting for it holds none of the views the swap
    takes after it: the two never wait for each other in a cycle (a deadlock)."""
    from ctxsearch.store.locks import WARM_VIEWS

    observer = connect(service)
    for i, view in enumerate(WARM_VIEWS):
        swap = connect(service, autocommit=False)
        swap.execute(f"LOCK TABLE {view} IN ACCESS EXCLUSIVE MODE")
        searcher = connect(service)
        pid = searcher.info.backend_pid
        done: dict = {}

        def run(conn=searcher, out=done) -> None:
            params = SearchParams(query="marmoset canary", project_id=warm_project, mode=mode, **tuning(settings))
            out["rows"] = run_search(conn=conn, params=params, query_vector=service.embedder.embed_query("marmoset"))

        thread = threading.Thread(target=run)
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while not observer.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = %s AND NOT granted)", (pid,)
            ).fetchone()[0]:
                assert thread.is_alive() and time.monotonic() < deadline, done
                time.sleep(0.005)
            held = {
                name
                for (name,) in observer.execute(
                    "SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                    " WHERE l.pid = %s AND l.granted AND c.relname = ANY(%s)",
                    (pid, list(WARM_VIEWS)),
                )
            }
            assert held == set(WARM_VIEWS[:i]), (view, held)
        finally:
            swap.rollback()  # the search goes on either way
            thread.join(30)
        assert done["rows"], done
        swap.close()
        searcher.close()
    observer.close()
