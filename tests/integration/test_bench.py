"""The bench at a smoke size, and filtered vector recall through a project's own ANN index."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from ctxsearch.bench.corpus import CorpusGenerator, perturb
from ctxsearch.cli.main import main
from ctxsearch.schemas import EventIn
from ctxsearch.store.ingest import load_embedded
from ctxsearch.store.search import SearchParams, search
from ctxsearch.store.tiers import rebuild_warm


def stored(service) -> tuple[int, int, int]:
    """Events, sessions and event documents in the session's database (the user's, here)."""
    with service.db.connection() as conn:
        return conn.execute(
            "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM sessions),"
            " (SELECT count(*) FROM documents WHERE kind = 'event')"
        ).fetchone()


def test_bench_smoke_in_its_own_database(settings, service, tmp_path, monkeypatch):
    # The user's settings name the session's database, in the environment and in a .env:
    # the bench must use its own embedded server all the same.
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(f"CTXSEARCH_DATA_DIR={settings.data_dir}\n")
    before = stored(service)
    report = tmp_path / "report"
    r = CliRunner().invoke(
        main,
        [
            "bench",
            "--docs",
            "300",
            "--steps",
            "300",
            "--seed-texts",
            "60",
            "--queries",
            "10",
            "--recall-queries",
            "10",
            "--ingest-events",
            "500",
            "--freshness-s",
            "1",
            "--concurrency",
            "2",
            "--json",
            "--report",
            str(report),
        ],
        env={"CTXSEARCH_MODEL_CACHE_DIR": str(settings.models_dir), "CTXSEARCH_DATABASE_URL": service.db.url},
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout.strip().splitlines()[-1])
    for key in (
        "docs",
        "search_p50_ms",
        "search_p99_ms",
        "vector_recall_at_10",
        "ingest_events_per_s",
        "embed_docs_per_s",
        "freshness_p99_s",
        "bytes_per_event",
    ):
        assert out[key] is not None, key
    assert out["docs"] == 300
    assert out["vector_recall_at_10"] == 1.0  # a small corpus is scanned exactly
    assert out["details"]["steps"][-1]["storage"]["events"] == 300
    assert out["details"]["steps"][-1]["http_ingest"]["events"] == 500
    assert {p.name for p in report.iterdir()} >= {"report.md", "latency.png", "recall.png", "bench.json"}
    assert stored(service) == before


def test_bench_refuses_the_users_data_dir(tmp_path):
    mine = tmp_path / "mine"
    r = CliRunner().invoke(
        main, ["bench", "--docs", "300", "--data-dir", str(mine)], env={"CTXSEARCH_DATA_DIR": str(mine)}
    )
    assert r.exit_code == 2 and "is your ctxsearch data dir" in r.output
    assert not mine.exists()


def test_bench_refuses_bad_steps():
    r = CliRunner().invoke(main, ["bench", "--steps", "10k"])
    assert r.exit_code == 2 and "--steps" in r.output


def test_big_project_search_uses_its_own_index_with_full_recall(service, project):
    settings = service.settings.model_copy(update={"project_index_min_rows": 800, "ivfflat_min_rows": 800})
    gen = CorpusGenerator(1000, seed=3)
    seeds = gen.events(40)
    seed_vecs = service.embedder.embed([e.content for e in seeds])
    events, idx = [], []
    for n in range(1000):
        j = n % len(seeds)
        e = gen.derive(seeds[j], j, f"{project}-s{n // 50}", n, seeds[j].ts)
        e.project_id = project
        events.append(e)
        idx.append(j)
    vectors = perturb(seed_vecs[np.asarray(idx)], np.random.default_rng(0))
    try:
        with service.db.connection() as conn:
            load_embedded(conn=conn, events=[EventIn.model_validate(e.as_api()) for e in events], vectors=vectors)
            gen_no = rebuild_warm(conn=conn, settings=settings)[0]
            partial = conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE tablename = %s AND indexdef LIKE %s",
                (f"warm_docs_{gen_no}", f"%{project}%"),
            ).fetchall()
            assert len(partial) == 1 and "ivfflat" in partial[0][0]
            queries = [
                "flaky tests after the deploy",
                "token expired during login",
                "rounding error on totals",
                "pod crash loop in CI",
                "why did the refactor break the build",
            ]
            recalls = []
            for q, v in zip(queries, service.embedder.embed(queries), strict=True):
                plan = "\n".join(
                    r[0]
                    for r in conn.execute(
                        "EXPLAIN SELECT id FROM warm_docs w WHERE w.project_id = %s ORDER BY w.embedding <=> %s LIMIT 50",
                        (project, v),
                    )
                )
                assert "ivfflat" in plan or "embedding_idx" in plan, plan
                exact = {
                    r[0]
                    for r in conn.execute(
                        "SELECT id FROM documents WHERE project_id = %s ORDER BY (embedding <=> %s) + 0 LIMIT 10",
                        (project, v),
                    )
                }
                got = {
                    r["doc_id"]
                    for r in search(
                        conn=conn,
                        query_vector=v,
                        params=SearchParams(query=q, project_id=project, mode="vector", limit=10, candidates=50),
                    )
                }
                recalls.append(len(exact & got) / 10)
            assert np.mean(recalls) >= 0.95, recalls
    finally:
        with service.db.connection() as conn:
            for table in ("documents", "events", "sessions"):
                conn.execute(f"DELETE FROM {table} WHERE project_id = %s", (project,))
            rebuild_warm(conn=conn, settings=service.settings)
