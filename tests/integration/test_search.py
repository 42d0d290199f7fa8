"""POST /v1/search: modes, filters, isolation, freshness, tiers and fusion quality."""

from __future__ import annotations

import time
import uuid

import pytest

from ctxsearch.config import Settings
from ctxsearch.store.search import SearchParams
from ctxsearch.store.search import search as run_search
from ctxsearch.store.tiers import rebuild_warm
from tests.conftest import event

CORPUS = [
    # (session, type, content, files)
    (
        "auth",
        "error",
        "psycopg.OperationalError: connection refused on port 5432 while running migrations",
        ["app/db.py"],
    ),
    (
        "auth",
        "decision",
        "Store API keys hashed with argon2 instead of plain SHA-256 so leaked dumps are useless",
        ["app/auth.py"],
    ),
    ("auth", "file_edit", "Add rate limiter middleware keyed by API key with a token bucket", ["app/middleware.py"]),
    ("ui", "message", "The sidebar flickers whenever the window is resized on macOS", ["web/sidebar.tsx"]),
    ("ui", "decision", "Use CSS grid for the dashboard layout rather than absolute positioning", ["web/dashboard.css"]),
    (
        "ui",
        "error",
        "TypeError: Cannot read properties of undefined (reading 'map') in renderWidgets",
        ["web/widgets.tsx"],
    ),
    ("perf", "note", "Profiling shows JSON serialisation dominates response time for large search payloads", []),
    ("perf", "decision", "Switch the response encoder to orjson to cut serialisation cost", ["app/api.py"]),
    ("perf", "test_run", "benchmark: p99 latency dropped from 180 ms to 45 ms after caching query embeddings", []),
    ("deploy", "commit", "Pin torch to the CPU wheel to keep the Docker image small", ["pyproject.toml"]),
    ("deploy", "error", "ImagePullBackOff: registry rejected the pull, credentials expired", ["deploy/k8s.yaml"]),
    ("deploy", "note", "Nightly backups run pg_dump into object storage with a 30 day retention", []),
]

# Paraphrases (the vector arm's strength) and exact identifiers (the text arm's).
QUERIES = [
    ("database would not accept the connection", 0),
    ("how do we protect stored credentials", 1),
    ("throttling requests per client", 2),
    ("UI jitter when resizing", 3),
    ("renderWidgets undefined map", 5),
    ("what made responses slow", 6),
    ("orjson", 7),
    ("ImagePullBackOff", 10),
    ("pg_dump retention", 11),
    ("argon2", 1),
]


@pytest.fixture
def corpus_project(client, wait_indexed):
    project = f"corpus-{uuid.uuid4().hex[:8]}"
    evs = [event(project, s, n, t, c, files=f, id=f"ev{n}") for n, (s, t, c, f) in enumerate(CORPUS)]
    assert client.post("/v1/events", json={"events": evs}).status_code == 202
    wait_indexed(project)
    return project


def _mrr(search, project, mode):
    total = 0.0
    for q, expected in QUERIES:
        hits = search(project, q, mode=mode, kinds=["event"], limit=10)
        ids = [h["id"] for h in hits]
        target = f"ev{expected}"
        total += 1 / (ids.index(target) + 1) if target in ids else 0
    return total / len(QUERIES)


def test_hybrid_beats_a_single_arm(search, corpus_project):
    scores = {m: _mrr(search, corpus_project, m) for m in ("hybrid", "vector", "text")}
    assert scores["hybrid"] >= 0.8, scores
    assert scores["hybrid"] > min(scores["vector"], scores["text"]), scores
    assert scores["hybrid"] >= max(scores["vector"], scores["text"]) - 0.05, scores


@pytest.mark.parametrize("mode", ["hybrid", "vector", "text"])
def test_each_mode_reports_its_arms(client, corpus_project, mode):
    r = client.post(
        "/v1/search",
        json={"query": "connection refused migrations", "project_id": corpus_project, "mode": mode, "explain": True},
    )
    assert r.status_code == 200
    body = r.json()
    assert body["mode"] == mode and body["took_ms"] > 0
    top = body["results"][0]
    assert top["id"] == "ev0"
    assert set(top) >= {
        "id",
        "kind",
        "project_id",
        "session_id",
        "timestamp",
        "type",
        "title",
        "snippet",
        "files",
        "score",
        "ranks",
    }
    if mode == "vector":
        assert top["ranks"]["text"] is None and top["ranks"]["vector"] == 1
    if mode == "text":
        assert top["ranks"]["vector"] is None and top["ranks"]["text"] == 1
        assert "<b>" in top["snippet"]
    if mode == "hybrid":
        assert top["ranks"]["vector"] and top["ranks"]["text"]
        assert top["scores"]["vector"] > 0 and top["scores"]["text"] > 0
    scores = [h["score"] for h in body["results"]]
    assert scores == sorted(scores, reverse=True)


def test_weighted_fusion_and_tunable_rrf(search, corpus_project):
    text_only = search(corpus_project, "orjson", fusion="weighted", weights={"vector": 0, "text": 1}, kinds=["event"])
    assert text_only[0]["id"] == "ev7"
    rrf = search(corpus_project, "orjson", fusion="rrf", rrf_k=1, kinds=["event"])
    assert rrf[0]["id"] == "ev7"
    assert rrf[0]["score"] > search(corpus_project, "orjson", fusion="rrf", kinds=["event"])[0]["score"]


@pytest.mark.parametrize("fusion", ["convex", "rrf", "weighted"])
def test_explain_shows_each_arm_and_its_part_of_the_score(search, corpus_project, fusion):
    hits = search(corpus_project, "orjson serialization speed", fusion=fusion, explain=True)
    assert hits
    for h in hits:
        s = h["scores"]
        assert h["score"] == pytest.approx(s["vector_part"] + s["text_part"], abs=1e-9)
        # Every candidate has its cosine, also one only the text arm found.
        assert s["vector"] is not None and -1 <= s["vector"] <= 1
        if h["ranks"]["text"] is None:
            assert s["text"] is None and s["text_part"] == 0
        else:
            assert s["text"] > 0 and s["text_norm"] > 0
    top = hits[0]["scores"]
    if fusion == "convex":
        # w x cosine + (1 - w) x text_norm: the server's weight for a query of plain words.
        w = Settings().convex_weight_vector
        assert top["vector_part"] == pytest.approx(w * top["vector"], rel=1e-6)
        assert top["text_part"] == pytest.approx((1 - w) * top["text_norm"], rel=1e-6)


def test_convex_fusion_is_the_default_and_its_weights_move_the_ranking(search, corpus_project):
    default = search(corpus_project, "orjson", explain=True, limit=20)
    assert default == search(corpus_project, "orjson", explain=True, limit=20, fusion="convex")
    text_led = search(corpus_project, "orjson", weights={"vector": 0, "text": 1}, explain=True, limit=20)
    vector_led = search(corpus_project, "orjson", weights={"vector": 1, "text": 0}, explain=True, limit=20)
    assert [h["scores"]["text"] for h in text_led if h["scores"]["text"]] == sorted(
        (h["scores"]["text"] for h in text_led if h["scores"]["text"]), reverse=True
    )
    assert [h["scores"]["vector"] for h in vector_led] == sorted(
        (h["scores"]["vector"] for h in vector_led), reverse=True
    )
    assert [h["id"] for h in text_led] != [h["id"] for h in vector_led]


def test_confidence_ranks_a_real_match_above_an_unrelated_query(search, corpus_project):
    hit = search(corpus_project, "orjson", kinds=["event"])[0]
    unrelated = search(corpus_project, "kubernetes helm chart ingress annotations for tls", kinds=["event"])
    assert 0 <= unrelated[0]["confidence"] < hit["confidence"] <= 1
    confidences = [h["confidence"] for h in unrelated]
    assert max(confidences) < 0.5


def test_min_confidence_ends_the_list_where_confidence_drops_below_it(search, corpus_project):
    everything = search(corpus_project, "orjson", limit=50)
    floor = everything[0]["confidence"] - 1e-4
    kept = search(corpus_project, "orjson", limit=50, min_confidence=floor)
    assert kept and len(kept) < len(everything)
    assert all(h["confidence"] >= floor for h in kept)
    assert kept == everything[: len(kept)]
    assert search(corpus_project, "orjson", min_confidence=1.0) == []


def test_filters(search, corpus_project):
    q = "error"
    by_session = search(corpus_project, q, session_id="deploy", limit=50)
    assert by_session and {h["session_id"] for h in by_session} == {"deploy"}

    by_type = search(corpus_project, q, types=["decision"], limit=50)
    assert by_type and {h["type"] for h in by_type} == {"decision"}

    by_file = search(corpus_project, "change", files=["app/api.py"], limit=50)
    assert [h["id"] for h in by_file] == ["ev7", "summary:perf"]  # the summary lists the files of its session
    by_name = search(corpus_project, "change", files=["api.py"], limit=50, kinds=["event"])
    assert [h["id"] for h in by_name] == ["ev7"]
    by_folder = search(corpus_project, "change", files=["web/"], limit=50, kinds=["event"])
    assert {h["id"] for h in by_folder} == {"ev3", "ev4", "ev5"}

    window = search(
        corpus_project, q, since="2026-11-20T10:00:03Z", until="2026-11-20T10:00:05Z", kinds=["event"], limit=50
    )
    assert {h["id"] for h in window} == {"ev3", "ev4", "ev5"}

    summaries = search(corpus_project, "dashboard layout", kinds=["summary"])
    assert summaries and all(h["kind"] == "summary" for h in summaries)
    assert summaries[0]["session_id"] == "ui"

    assert len(search(corpus_project, q, limit=3)) == 3


def test_projects_never_leak(client, search, wait_indexed):
    a, b = f"iso-a-{uuid.uuid4().hex[:6]}", f"iso-b-{uuid.uuid4().hex[:6]}"
    secret = "zebracorn-credentials rotated in vault"
    client.post("/v1/events", json={"events": [event(a, "s", 1, "note", secret, id="x1")]})
    client.post("/v1/events", json={"events": [event(b, "s", 1, "note", "unrelated gardening notes", id="x1")]})
    wait_indexed(a)
    wait_indexed(b)
    for mode in ("hybrid", "vector", "text"):
        hits = search(b, "zebracorn credentials vault", mode=mode, limit=50)
        # By meaning there is always a nearest document: b's own, never a's.
        assert hits or mode == "text", mode
        assert all(h["project_id"] == b for h in hits), hits
        assert not any("zebracorn" in h["snippet"] for h in hits)
    assert search(a, "zebracorn")[0]["project_id"] == a
    assert client.get("/v1/sessions/s", params={"project_id": b}).json()["event_count"] == 1


def test_new_events_are_searchable_by_text_and_vector_within_seconds(client, project):
    token = f"quokka{uuid.uuid4().hex[:6]}"
    content = f"The {token} cache eviction bug corrupted the index after a restart"
    t0 = time.monotonic()
    r = client.post("/v1/events", json={"events": [event(project, "fresh", 1, "error", content, id="f1")]})
    assert r.status_code == 202
    found = {"text": None, "vector": None}
    while time.monotonic() - t0 < 5.0 and None in found.values():
        for mode, q in (("text", token), ("vector", "index corruption after restart due to cache eviction")):
            if found[mode] is None:
                hits = client.post(
                    "/v1/search", json={"query": q, "project_id": project, "mode": mode, "kinds": ["event"]}
                ).json()["results"]
                if hits and hits[0]["id"] == "f1":
                    found[mode] = time.monotonic() - t0
        time.sleep(0.05)
    assert None not in found.values(), f"not searchable within 5 s: {found}"


def test_warm_tier_rebuild_keeps_results_and_hot_tier_covers_new_documents(
    client, service, search, wait_indexed, corpus_project
):
    before = [h["id"] for h in search(corpus_project, "connection refused", limit=5)]
    with service.db.connection() as conn:
        gen, watermark, rows, _ = rebuild_warm(conn=conn, settings=service.settings)
        assert rows >= len(CORPUS)
        assert conn.execute("SELECT generation FROM tier_state").fetchone()[0] == gen
    assert [h["id"] for h in search(corpus_project, "connection refused", limit=5)] == before

    # New documents are served by the hot tier; a replaced summary is not served twice.
    client.post(
        "/v1/events",
        json={
            "events": [event(corpus_project, "auth", 50, "note", "Rotated the hot-tier canary credential", id="hot1")]
        },
    )
    wait_indexed(corpus_project)
    hits = search(corpus_project, "hot-tier canary credential", limit=20)
    assert hits[0]["id"] == "hot1"
    summaries = [h for h in search(corpus_project, "auth session summary", limit=50) if h["kind"] == "summary"]
    assert "summary:auth" in {h["id"] for h in summaries}, summaries  # the one rewritten since the rebuild
    assert len({h["id"] for h in summaries}) == len(summaries)
    with service.db.connection() as conn:
        assert conn.execute("SELECT watermark FROM tier_state").fetchone()[0] == watermark


@pytest.mark.parametrize(
    "body,field",
    [
        ({"project_id": "p"}, "query"),
        ({"query": "x"}, "project_id"),
        ({"query": "   ", "project_id": "p"}, "query"),
        ({"query": "x", "project_id": "p", "mode": "fuzzy"}, "mode"),
        ({"query": "x", "project_id": "p", "limit": 0}, "limit"),
        ({"query": "x", "project_id": "p", "limit": 1000}, "limit"),
        ({"query": "x", "project_id": "p", "types": ["keystroke"]}, "types[0]"),
        ({"query": "x", "project_id": "p", "kinds": ["chunk"]}, "kinds[0]"),
        ({"query": "x", "project_id": "p", "since": "not a date"}, "since"),
        ({"query": "x", "project_id": "p", "since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since"),
        ({"query": "x" * 2001, "project_id": "p"}, "query"),
        ({"query": "x", "project_id": "p", "rrf_k": 0}, "rrf_k"),
        ({"query": "x", "project_id": "p", "weights": {"vector": -1}}, "weights.vector"),
    ],
)
def test_bad_search_is_refused_naming_the_field(client, body, field):
    r = client.post("/v1/search", json=body)
    assert r.status_code == 422
    assert field in r.json()["error"], r.json()


def test_stopword_only_query_still_answers(search, corpus_project):
    # No lexeme is left for the text arm; the vector arm still answers, with the usual page.
    hits = search(corpus_project, "the of and")
    assert len(hits) == 10, hits
    assert all(h["ranks"]["text"] is None and h["ranks"]["vector"] is not None for h in hits), hits
    assert [h["ranks"]["vector"] for h in hits] == sorted(h["ranks"]["vector"] for h in hits)


def test_ivfflat_warm_tier_answers_like_an_exact_scan(service, search, corpus_project):
    exact = {
        m: [h["id"] for h in search(corpus_project, "credentials and connection errors", mode=m, limit=8)]
        for m in ("vector", "hybrid")
    }
    assert all(len(ids) == 8 for ids in exact.values()), exact  # two empty lists would compare equal
    with service.db.connection() as conn:
        assert conn.execute("SHOW ivfflat.probes").fetchone()[0] == str(service.settings.ivfflat_probes)
        # Index every project, however small, so that this one is read through its own ivfflat index.
        gen = rebuild_warm(
            conn=conn,
            settings=service.settings.model_copy(
                update={"vector_index": "ivfflat", "project_index_min_rows": 1, "ivfflat_min_rows": 1}
            ),
        )[0]
        assert conn.execute("SELECT index_kind FROM tier_state").fetchone()[0] == "ivfflat"
        index = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = %s AND indexdef LIKE %s",
            (f"warm_docs_{gen}", f"%ivfflat%{corpus_project}%"),
        ).fetchall()
    assert len(index) == 1
    for mode, ids in exact.items():
        assert [h["id"] for h in search(corpus_project, "credentials and connection errors", mode=mode, limit=8)] == ids


def test_text_top_lists_bound_candidates_and_filters_fall_back(
    client, service, settings, project, wait_indexed, search
):
    # "widget" is in every event: short ones in sessions a and b, long ones in session c.
    filler = " ".join(f"word{i}" for i in range(30))
    evs = [
        # Each text its own (a session's same-text documents would be one hit).
        event(project, "a" if n % 2 else "b", n, "note", f"widget render {'widget ' * (n % 3)}item{n}", id=f"s{n}")
        for n in range(20)
    ]
    evs += [event(project, "c", 100 + n, "note", f"widget {filler} zephyr{n}", id=f"l{n}") for n in range(6)]
    assert client.post("/v1/events", json={"events": evs}).status_code == 202
    wait_indexed(project)
    try:
        with service.db.connection() as conn:
            rebuild_warm(conn=conn, settings=settings.model_copy(update={"text_top_docs": 5}))
            lists = {
                lex: (n, df)
                for lex, n, df in conn.execute(
                    "SELECT t.lexeme, cardinality(t.ids), d.df FROM warm_text_top t"
                    " JOIN warm_text_df d USING (project_id, lexeme) WHERE project_id = %s",
                    (project,),
                )
            }
            assert lists["widget"] == (5, 29) and lists["render"][0] == 5  # common: cut to the best 5
            assert all(n == min(df, 5) for n, df in lists.values())  # rarer: every document

            # Unfiltered, the candidates are the list's documents, the best 5 for this term.
            def ranked(**extra) -> list[int]:
                params = SearchParams(query="widget", project_id=project, mode="text", limit=10, **extra)
                return [r["doc_id"] for r in run_search(conn=conn, params=params, query_vector=None)]

            listed, exact = ranked(), ranked(text_exact=True)
            assert len(exact) == 10 and listed == exact[:5]
            # Session c's events are in no list: filtered to it, the search reads the matches instead.
            assert ranked(session_id="c", kinds=["event"]) == ranked(session_id="c", kinds=["event"], text_exact=True)

        hits = search(project, "widget", mode="text", session_id="c", kinds=["event"], limit=10)
        assert {h["id"] for h in hits} == {f"l{n}" for n in range(6)}
    finally:
        with service.db.connection() as conn:
            rebuild_warm(conn=conn, settings=settings)


def test_an_error_repeated_in_a_session_is_one_hit_across_pages(client, project, wait_indexed, search):
    error = "FAILED tests/test_cache.py::test_expiry - AssertionError: stale entry returned after ttl"
    evs = [event(project, "retry", n, "error", error) for n in range(8)]
    evs += [event(project, "retry", 8 + n, "note", f"cache expiry note {n}: ttl of entry {n}") for n in range(4)]
    evs.append(event(project, "other", 0, "error", error))  # another session's copy is its own answer
    assert client.post("/v1/events", json={"events": evs}).status_code == 202
    wait_indexed(project)
    hits = search(project, "stale entry returned after ttl", kinds=["event"], limit=50)
    twins = [h for h in hits if h["snippet"] and "stale" in h["snippet"] and h["type"] == "error"]
    assert sorted(h["session_id"] for h in twins) == ["other", "retry"]
    # Paged two at a time, no later page brings back a twin of a hit already returned.
    seen, cursor = [], None
    while True:
        body = {"query": "stale entry returned after ttl", "project_id": project, "kinds": ["event"], "limit": 2}
        page = client.post("/v1/search", json={**body, **({"cursor": cursor} if cursor else {})}).json()
        seen += page["results"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [h["id"] for h in seen] == [h["id"] for h in hits]
    assert sum(h["type"] == "error" for h in seen) == 2


def test_a_snake_case_name_finds_the_event_that_names_it_over_its_words(client, project, wait_indexed, search):
    evs = [
        event(
            project,
            "edit",
            0,
            "file_edit",
            "def fit_sessions(sessions, budget): keep whole sessions",
            files=["paging.py"],
        ),
        # Its words, often, but not the name.
        event(project, "chat", 0, "message", "Fit the sessions to the budget: sessions fit when sessions are small"),
        event(project, "chat", 1, "note", "fit sessions, fit sessions, fit more sessions"),
    ]
    assert client.post("/v1/events", json={"events": evs}).status_code == 202
    wait_indexed(project)
    for mode in ("text", "hybrid"):
        hits = search(project, "where did we change fit_sessions", mode=mode, kinds=["event"])
        assert hits[0]["session_id"] == "edit", (mode, hits)
