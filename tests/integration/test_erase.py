"""Erasure of a session or a project: nothing of it is searchable, counted or stored afterwards,
in either tier, and the rest is untouched."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from ctxsearch.store import tiers
from ctxsearch.store.erase import erase_project, erase_session
from ctxsearch.store.tiers import drop_old_generations, rebuild_warm, tier_state
from tests.conftest import event

GONE = [
    "xylophonist quasarwick tuned the staging cluster",
    "the quasarwick deploy failed twice before the xylophonist fix",
    "xylophonist notes: quasarwick needs a bigger heap",
]
KEPT = [
    "the lighthouse keeper rotated the harbor credentials",
    "harbor lighthouse migration finished without downtime",
    "keeper of the harbor logs moved them to cold storage",
]


def warm_df(conn: psycopg.Connection, project: str, lexeme: str) -> int:
    """The lexeme's document frequency in the project's warm statistics (0 when it has none)."""
    return conn.execute(
        "SELECT coalesce(sum(df), 0) FROM warm_text_df WHERE project_id = %s AND lexeme = %s", (project, lexeme)
    ).fetchone()[0]


def in_any_generation(conn: psycopg.Connection, project: str, lexeme: str) -> int:
    """Rows of every generation's df and top tables holding the lexeme for the project."""
    n = 0
    for (g,) in conn.execute("SELECT ctxsearch_warm_generations()").fetchall():
        for table in (f"warm_text_df_{g}", f"warm_text_top_{g}"):
            n += conn.execute(
                f"SELECT count(*) FROM {table} WHERE project_id = %s AND lexeme = %s", (project, lexeme)
            ).fetchone()[0]
    return n


def session_hits(search, project: str, query: str, session: str) -> dict[str, list[dict]]:
    return {
        mode: [h for h in search(project, query, mode=mode, limit=50) if h["session_id"] == session]
        for mode in ("text", "vector", "hybrid")
    }


@pytest.fixture
def two_sessions(client, service, settings, project, wait_indexed) -> str:
    """Sessions 'gone' and 'kept', each in the warm tier, and 'gone' in the hot tier too: an event
    after the rebuild and a rewritten summary (whose old version stays in the warm generation)."""
    evs = [event(project, "gone", n, "note", c, id=f"g{n}") for n, c in enumerate(GONE)]
    evs += [event(project, "kept", n, "note", c, id=f"k{n}") for n, c in enumerate(KEPT)]
    assert client.post("/v1/events", json={"events": evs}).status_code == 202
    wait_indexed(project)
    with service.db.connection() as conn:
        rebuild_warm(conn=conn, settings=settings)
    assert (
        client.post(
            "/v1/events",
            json={"events": [event(project, "gone", 10, "note", "xylophonist again, now in the hot tier", id="g10")]},
        ).status_code
        == 202
    )
    r = client.put(
        "/v1/sessions/gone/summary",
        json={"project_id": project, "summary": "The xylophonist session: quasarwick tuning."},
    )
    assert r.status_code == 200, r.text
    wait_indexed(project)
    return project


def test_erase_session_removes_it_from_both_tiers_and_every_count(client, service, search, two_sessions):
    project = two_sessions
    assert session_hits(search, project, "xylophonist quasarwick", "gone")["text"]
    page = client.post(
        "/v1/search", json={"query": "xylophonist quasarwick harbor", "project_id": project, "mode": "text", "limit": 1}
    ).json()
    assert page["next_cursor"]
    before = client.get(f"/v1/projects/{project}/stats").json()
    with service.db.connection() as conn:
        warm_before = conn.execute(
            "SELECT n_docs, sum_len FROM warm_text_stats WHERE project_id = %s", (project,)
        ).fetchone()
        warm_gone = conn.execute(
            "SELECT count(*), sum(tlen) FROM warm_docs WHERE project_id = %s AND session_id = 'gone'", (project,)
        ).fetchone()
        assert warm_df(conn, project, "xylophonist") > 0 and warm_gone[0] >= 4  # 3 events, a summary or two

        counts = erase_session(conn=conn, project_id=project, session_id="gone")
        assert counts["sessions"] == 1 and counts["events"] == 4 and counts["documents"] == 5  # + the summary
        assert counts["warm_documents"] == warm_gone[0]

        # Nothing of it in either tier, nor in the statistics of any generation.
        for table in ("documents", "events", "sessions", "warm_docs"):
            assert (
                conn.execute(
                    f"SELECT count(*) FROM {table} WHERE project_id = %s AND session_id = 'gone'", (project,)
                ).fetchone()[0]
                == 0
            ), table
        for lexeme in ("xylophonist", "quasarwick"):
            assert warm_df(conn, project, lexeme) == 0 and in_any_generation(conn, project, lexeme) == 0, lexeme
        assert conn.execute(
            "SELECT n_docs, sum_len FROM warm_text_stats WHERE project_id = %s", (project,)
        ).fetchone() == (warm_before[0] - warm_gone[0], warm_before[1] - warm_gone[1])
        assert "xylophonist" not in str(
            conn.execute("SELECT array_agg(lexeme) FROM warm_text_top WHERE project_id = %s", (project,)).fetchone()[0]
        )

    for mode, hits in session_hits(search, project, "xylophonist quasarwick", "gone").items():
        assert hits == [], mode
    for mode in ("text", "vector", "hybrid"):
        assert not any("xylophonist" in h["snippet"] for h in search(project, "xylophonist", mode=mode, limit=50))
    # A cursor taken before the erasure pages on without it.
    rest = client.post(
        "/v1/search",
        json={
            "query": "xylophonist quasarwick harbor",
            "project_id": project,
            "mode": "text",
            "limit": 1,
            "cursor": page["next_cursor"],
        },
    ).json()
    assert all(h["session_id"] != "gone" for h in rest["results"])

    # The other session is untouched; the counts drop by what went.
    after = client.get(f"/v1/projects/{project}/stats").json()
    assert after["events"] == before["events"] - 4 and after["sessions"] == before["sessions"] - 1
    assert after["documents"] == before["documents"] - 5
    assert client.get("/v1/sessions/kept", params={"project_id": project}).json()["event_count"] == len(KEPT)
    assert client.get("/v1/sessions/gone", params={"project_id": project}).status_code == 404
    for mode in ("text", "vector", "hybrid"):
        assert search(project, "lighthouse keeper harbor", mode=mode, kinds=["event"])[0]["id"].startswith("k"), mode
    with service.db.connection() as conn:
        assert warm_df(conn, project, "harbor") == 3 + 1  # its events and its summary


def test_erase_project_leaves_no_row_in_any_table(client, service, settings, search, two_sessions):
    project = two_sessions
    url = service.db.url
    with service.db.connection() as conn:
        old = tier_state(conn).generation
    # An old generation that a reader still holds (it outlives the rebuild) must be erased too.
    holder = psycopg.connect(url)
    holder.execute(f"SELECT count(*) FROM warm_docs_{old}")
    try:
        with service.db.connection() as conn:
            rebuild_warm(conn=conn, settings=settings)
            assert old in [g for (g,) in conn.execute("SELECT ctxsearch_warm_generations()")]
            counts = erase_project(conn=conn, project_id=project)
        assert counts["sessions"] == 2 and counts["events"] == len(GONE) + len(KEPT) + 1
        assert counts["documents"] == counts["events"] + 2 and counts["warm_documents"] == counts["documents"]

        with service.db.connection() as conn:
            tables = conn.execute(
                "SELECT c.table_name FROM information_schema.columns c"
                " JOIN information_schema.tables t USING (table_schema, table_name)"
                " WHERE c.column_name = 'project_id' AND c.table_schema = current_schema()"
            ).fetchall()
            # Materialized views (generations of the previous layout) are not in information_schema.
            tables += conn.execute(
                "SELECT relname FROM pg_class WHERE relkind = 'm' AND relname ~ '^warm_docs_[0-9]+$'"
                " AND pg_table_is_visible(oid)"
            ).fetchall()
            names = {t for (t,) in tables}
            assert {"documents", "events", "sessions", "embed_failures", f"warm_docs_{old}", "warm_docs"} <= names
            left = {
                t: conn.execute(f'SELECT count(*) FROM "{t}" WHERE project_id = %s', (project,)).fetchone()[0]
                for t in sorted(names)
            }
            assert not any(left.values()), {t: n for t, n in left.items() if n}
    finally:
        holder.close()
    with service.db.connection() as conn:
        assert old in drop_old_generations(conn)
    for mode in ("text", "vector", "hybrid"):
        assert search(project, "xylophonist harbor lighthouse", mode=mode, limit=50) == [], mode
    stats = client.get(f"/v1/projects/{project}/stats").json()
    assert {k: stats[k] for k in ("events", "sessions", "documents", "pending")} == dict.fromkeys(
        ("events", "sessions", "documents", "pending"), 0
    )


def test_erasure_during_a_build_is_reconciled_before_the_swap(service, settings, two_sessions):
    """A generation built from a snapshot taken before an erasure committed holds the erased rows:
    the rebuild sees the erase epoch move and takes them out before it swaps the generation in."""
    project = two_sessions
    url = service.db.url
    s = settings
    with service.db.connection() as conn:
        wm, epoch = conn.execute("SELECT * FROM ctxsearch_warm_watermark()").fetchone()
        gen, version = conn.execute(
            "SELECT max(g) + 1, ctxsearch_warm_version() FROM ctxsearch_warm_generations() g"
        ).fetchone()
    builder = psycopg.connect(url)  # the build's transaction, left open across the erasure
    rows, lists, kind = builder.execute(
        "SELECT * FROM ctxsearch_build_warm(%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            gen,
            wm,
            s.vector_index,
            s.ivfflat_min_rows,
            s.project_index_min_rows,
            s.text_top_docs,
            s.bm25_k1,
            s.bm25_b,
            s.text_context_weight,
        ),
    ).fetchone()
    with service.db.connection() as conn:
        erase_session(conn=conn, project_id=project, session_id="gone")
    builder.commit()
    builder.close()
    with service.db.connection() as conn:
        # The built generation still holds the erased session.
        assert (
            conn.execute(
                f"SELECT count(*) FROM warm_docs_{gen} WHERE project_id = %s AND session_id = 'gone'", (project,)
            ).fetchone()[0]
            > 0
        )
        swapped_rows = tiers._swap(
            conn, gen, wm, epoch, rows, kind, lists, time.perf_counter(), version, time.monotonic() + 30
        )
        assert tier_state(conn).generation == gen and swapped_rows < rows
        assert conn.execute("SELECT warm_rows FROM tier_state").fetchone()[0] == swapped_rows
        assert conn.execute("SELECT count(*) FROM warm_docs").fetchone()[0] == swapped_rows
        assert (
            conn.execute(
                "SELECT count(*) FROM warm_docs WHERE project_id = %s AND session_id = 'gone'", (project,)
            ).fetchone()[0]
            == 0
        )
        assert warm_df(conn, project, "xylophonist") == 0 and in_any_generation(conn, project, "xylophonist") == 0
        assert warm_df(conn, project, "harbor") == 4
        drop_old_generations(conn)


def test_erasure_runs_beside_ingest_and_a_rebuild_without_deadlock(client, service, settings, project):
    """Ingest into the project, a rebuild and erasures at once: each finishes, none is a deadlock victim."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def ingest(worker: int) -> None:
        n = 0
        while not stop.is_set():
            batch = [
                event(project, f"s{(n + k) % 4}", n * 10 + k, "note", f"busy {worker} {n} {k}", id=f"w{worker}-{n}-{k}")
                for k in range(5)
            ]
            r = client.post("/v1/events", json={"events": batch})
            if r.status_code != 202:
                errors.append(AssertionError(r.text))
            n += 1

    def rebuild() -> None:
        try:
            with service.db.connection() as conn:
                rebuild_warm(conn=conn, settings=settings)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ingest, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        r = threading.Thread(target=rebuild)
        r.start()
        for i in range(6):
            with service.db.connection() as conn:
                if i % 3 == 2:
                    erase_project(conn=conn, project_id=project)
                else:
                    erase_session(conn=conn, project_id=project, session_id=f"s{i % 4}")
            time.sleep(0.1)
        r.join(60)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert errors == []
    with service.db.connection() as conn:
        erase_project(conn=conn, project_id=project)
        assert conn.execute("SELECT count(*) FROM documents WHERE project_id = %s", (project,)).fetchone()[0] == 0
