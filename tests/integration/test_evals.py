"""`ctxsearch eval`: loaders, metrics against hand-computed values, the runner through the real
ingest and search path, the CLI, and the text arm's BM25 against the formula."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from ctxsearch.cli.main import main
from ctxsearch.evals import datasets
from ctxsearch.evals.metrics import evaluate
from ctxsearch.evals.runner import EvalOptions, fold_of, parse_modes, run
from ctxsearch.schemas import SearchHit
from ctxsearch.store.tiers import rebuild_warm
from tests.conftest import event

DATA = Path(__file__).resolve().parents[1] / "data"
BEIR = DATA / "beir-tiny"
LOCOMO = DATA / "locomo-tiny.json"


def test_metrics_match_hand_computed_values():
    qrels = {"a": {"d1": 1, "d3": 1}, "b": {"d9": 2, "d2": 1}, "c": {"d5": 1}}
    ranked = {"a": ["d3", "d4", "d1"], "b": ["d2", "d8", "d9"], "c": ["d6", "d7"]}
    got = evaluate(qrels, ranked, ["ndcg@3", "recall@1", "recall@3", "mrr@3"])
    # a: gains 1, 0, 1 -> DCG 1 + 1/log2(4); ideal 1 + 1/log2(3)
    ndcg_a = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    # b: graded, gain = rel (ranx/trec_eval): DCG 1 + 2/log2(4); ideal 2 + 1/log2(3)
    ndcg_b = (1 + 2 / math.log2(4)) / (2 + 1 / math.log2(3))
    assert got["ndcg@3"] == pytest.approx([ndcg_a, ndcg_b, 0.0])
    assert got["recall@1"] == pytest.approx([0.5, 0.5, 0.0])
    assert got["recall@3"] == pytest.approx([1.0, 1.0, 0.0])
    assert got["mrr@3"] == pytest.approx([1.0, 1.0, 0.0])


def test_beir_loader_maps_documents_to_note_events():
    ds = datasets.load(str(BEIR), "train")
    assert ds.kind == "beir" and ds.split == "train" and len(ds.corpora) == 1
    corpus = ds.corpora[0]
    assert corpus.project_id.startswith("eval-beir-tiny-")
    first = corpus.events[0]
    assert first["id"] == first["session_id"] == "d1" and first["type"] == "note"
    assert first["content"].startswith("Vitamin D and bone density\n\nVitamin D supplements")
    # Zero-scored judgments are not relevant; q5 keeps its graded d5 only.
    assert {q.id: q.relevant for q in corpus.queries} == {"q1": {"d1": 1}, "q5": {"d5": 2}}
    assert datasets.load(str(BEIR)).split == "test"  # test judgments by default


def test_locomo_loader_maps_turns_to_message_events():
    ds = datasets.load(str(LOCOMO))
    assert ds.kind == "locomo"
    corpus = ds.corpora[0]
    assert corpus.project_id.startswith("eval-locomo-conv-t1-")
    ev = {e["id"]: e for e in corpus.events}
    assert ev["D1:1"]["session_id"] == "session_1" and ev["D1:1"]["type"] == "message"
    assert ev["D1:1"]["content"] == "Ana: Hi Ben! I adopted a puppy last week, her name is Luna."
    assert ev["D1:3"]["content"].endswith("[shares an image: a photo of a dog sitting on grass]")
    assert ev["D1:1"]["timestamp"].startswith("2023-05-08T13:56:00")
    assert ev["D2:3"]["timestamp"].startswith("2023-06-02T10:16:00")
    queries = {q.text: q for q in corpus.queries}
    assert len(queries) == 4  # the adversarial question without evidence has nothing to find
    two = queries["How long was Ben's marathon and where?"]
    assert two.relevant == {"D2:1": 1, "D2:3": 1} and two.sessions == {"session_2"} and two.category == "1"


@pytest.mark.parametrize(
    "bad, message",
    [
        ("no-such-dataset", "no such dataset"),
        (str(DATA), "without corpus.jsonl"),
    ],
)
def test_loader_errors_name_the_problem(bad, message):
    with pytest.raises(datasets.DatasetError, match=message):
        datasets.load(bad)
    with pytest.raises(datasets.DatasetError, match="split 'dev'"):
        datasets.load(str(BEIR), "dev")
    with pytest.raises(ValueError, match="--modes"):
        parse_modes("text,fuzzy")


def test_runner_on_beir_through_the_service(service):
    ds = datasets.load(str(BEIR), "test")
    result = run(service, ds, EvalOptions(modes=("text", "vector", "hybrid", "bm25"), split="test"))
    assert set(result["metrics"]) == {"text", "vector", "hybrid", "bm25"}
    for mode, row in result["metrics"].items():
        assert set(row) == {"ndcg@10", "recall@10", "recall@100", "mrr@10"}
        assert row["recall@10"] == 1.0, (mode, row)  # six documents: everything is in the top 10
    assert result["metrics"]["hybrid"]["ndcg@10"] >= 0.9
    assert result["metrics"]["vector"]["mrr@10"] >= 0.9
    again = run(service, ds, EvalOptions(modes=("text",)))
    assert again["load"]["reused"] and again["metrics"]["text"] == result["metrics"]["text"]


def test_runner_on_locomo_reports_turn_session_and_category_recall(service):
    result = run(service, datasets.load(str(LOCOMO)), EvalOptions(modes=("hybrid", "bm25")))
    row = result["metrics"]["hybrid"]
    assert set(row) == {
        "turn_recall@5",
        "turn_recall@10",
        "turn_recall@25",
        "session_recall@2",
        "session_recall@5",
        "session_recall@10",
    }
    assert row["turn_recall@5"] == 1.0 and row["session_recall@2"] == 1.0  # six turns, two sessions
    cats = result["per_category"]["hybrid"]
    assert set(cats) == {"1 multi-hop", "2 temporal", "4 single-hop"} and cats["4 single-hop"]["queries"] == 2


def test_cli_eval_json_and_report_in_its_own_database(settings, service, own_data_dir, tmp_path, monkeypatch):
    # The user's settings name the session's database, in a .env and in the environment:
    # the eval must load into its own embedded server (in the user cache dir) all the same.
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(f"CTXSEARCH_DATABASE_URL={service.db.url}\n")

    def stored() -> tuple[int, int]:
        with service.db.connection() as conn:
            return conn.execute("SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM sessions)").fetchone()

    before = stored()
    out = CliRunner().invoke(
        main,
        ["eval", str(BEIR), "--modes", "text,bm25", "--json", "--report", str(tmp_path / "report")],
        env={
            "XDG_CACHE_HOME": str(own_data_dir),
            "CTXSEARCH_DATA_DIR": str(settings.data_dir),
            "CTXSEARCH_MODEL_CACHE_DIR": str(settings.models_dir),
        },
    )
    assert out.exit_code == 0, out.output
    result = json.loads(out.output)
    assert result["dataset"] == "beir-tiny" and result["split"] == "test" and result["modes"] == ["text", "bm25"]
    assert not result["load"]["reused"]  # loaded afresh: not into the session database, which may hold it
    assert (own_data_dir / "ctxsearch" / "evals" / "pgdata").is_dir()
    assert stored() == before
    md = (tmp_path / "report" / "beir-tiny-test.md").read_text()
    assert "| text |" in md and "beir-tiny-test.png" in md
    assert (tmp_path / "report" / "beir-tiny-test.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_eval_refuses_the_users_data_dir(tmp_path):
    mine = tmp_path / "mine"
    out = CliRunner().invoke(main, ["eval", str(BEIR), "--data-dir", str(mine)], env={"CTXSEARCH_DATA_DIR": str(mine)})
    assert out.exit_code == 2 and "is your ctxsearch data dir" in out.output
    assert not mine.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["eval", "nowhere"], "no such dataset"),
        (["eval", str(BEIR), "--modes", "text,magic"], "--modes"),
        (["eval", str(BEIR), "--split", "dev"], "split 'dev'"),
    ],
)
def test_cli_eval_usage_errors(args, message):
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 2 and message in out.output and "Traceback" not in out.output


# -- agent sessions ----------------------------------------------------------------

# Two projects; every query's words occur only where the comment says, so the text arm's
# ranking of sessions can be worked out by hand.
SESSION_EVENTS = {
    "alpha": {
        "a-cart": [
            ("error", "ZeroDivisionError in compute_average_price when the cart is empty", ["src/checkout.py"]),
            ("file_edit", "guard compute_average_price against an empty cart", ["src/checkout.py"]),
            ("test_run", "tests/test_checkout.py::test_empty_cart passed", ["tests/test_checkout.py"]),
        ],
        "a-auth": [
            ("message", "refresh the login token before it expires", []),
            ("file_edit", "refresh_login_token now retries once", ["src/auth.py"]),
        ],
        "a-css": [
            ("message", "the button colours in the stylesheet look washed out", []),
            ("file_edit", "darker stylesheet palette", ["static/site.css"]),
        ],
    },
    "beta": {
        "b-build": [
            ("error", "sphinx build fails: duplicate label warnings treated as errors", ["docs/conf.py"]),
            ("file_edit", "suppress duplicate label warnings in conf.py", ["docs/conf.py"]),
        ],
        "b-typo": [
            ("message", "fix a typo in the tutorial", []),
            ("file_edit", "tutorial wording", ["docs/tutorial.rst"]),
        ],
    },
}
SESSION_QUERIES = [
    # (project, query, expected session, kind): text-arm reciprocal rank, and why
    ("alpha", "ZeroDivisionError compute_average_price", "a-cart", "error_message"),  # 1: only a-cart
    ("alpha", "where is refresh_login_token", "a-auth", "changed_function"),  # 1: only a-auth
    ("alpha", "empty cart colours", "a-css", "file_path_shared"),  # 1/2: a-cart has two of the words
    ("beta", "sphinx duplicate label", "b-build", "issue_title"),  # 1: only b-build
    ("beta", "typo tutorial", "b-build", "issue_title"),  # 0: b-build has neither word
]


def write_sessions_dataset(folder: Path) -> Path:
    folder.mkdir(parents=True)
    with (folder / "events.jsonl").open("w") as f:
        for project, sessions in SESSION_EVENTS.items():
            for session, evs in sessions.items():
                for n, (type_, content, files) in enumerate(evs):
                    e = event(project, session, n, type_, content, files=files, id=f"{session}-{n}")
                    f.write(json.dumps(e) + "\n")
    with (folder / "queries.jsonl").open("w") as f:
        for project, query, expected, kind in SESSION_QUERIES:
            row = {"project_id": project, "query": query, "expected_session": expected, "kind": kind}
            f.write(json.dumps({**row, "evidence_event": f"{expected}-0"}) + "\n")
    return folder


def test_sessions_loader_makes_one_namespaced_corpus_per_project(tmp_path):
    folder = write_sessions_dataset(tmp_path / "tiny-sessions")
    ds = datasets.load(str(folder))
    assert ds.kind == "sessions" and [c.name for c in ds.corpora] == ["alpha", "beta"]
    alpha, beta = ds.corpora
    assert alpha.project_id.startswith("eval-tiny-sessions-alpha-") and beta.project_id.startswith(
        "eval-tiny-sessions-beta-"
    )
    assert len(alpha.events) == 7 and "project_id" not in alpha.events[0]  # the corpus names the project
    assert [(q.text, q.relevant, q.category) for q in beta.queries] == [
        ("sphinx duplicate label", {"b-build": 1}, "issue_title"),
        ("typo tutorial", {"b-build": 1}, "issue_title"),
    ]
    assert len({q.id for c in ds.corpora for q in c.queries}) == 5
    # The same data, the same projects (a re-run reuses them); a change reloads only its project.
    assert [c.project_id for c in datasets.load(str(folder)).corpora] == [alpha.project_id, beta.project_id]
    with (folder / "events.jsonl").open("a") as f:
        f.write(json.dumps(event("beta", "b-typo", 2, "note", "one more")) + "\n")
    again = datasets.load(str(folder)).corpora
    assert again[0].project_id == alpha.project_id and again[1].project_id != beta.project_id


@pytest.mark.parametrize(
    "query, message",
    [
        ({"project_id": "alpha", "query": "x", "expected_session": "nope"}, "is not a session of 'alpha'"),
        ({"project_id": "gamma", "query": "x", "expected_session": "a-cart"}, "project 'gamma' has no events"),
        ({"project_id": "alpha", "query": "x"}, "no query or expected_session"),
    ],
)
def test_sessions_loader_errors_name_the_query(tmp_path, query, message):
    folder = write_sessions_dataset(tmp_path / "bad")
    with (folder / "queries.jsonl").open("a") as f:
        f.write(json.dumps(query) + "\n")
    with pytest.raises(datasets.DatasetError, match=f"queries.jsonl: query 6.*{message}"):
        datasets.load(str(folder))


def test_runner_on_sessions_scores_hit_at_1_and_mrr_per_kind_and_project(service, tmp_path):
    ds = datasets.load(str(write_sessions_dataset(tmp_path / "tiny-sessions")))
    result = run(service, ds, EvalOptions(modes=("text", "vector", "hybrid", "bm25")))
    assert result["kind"] == "sessions" and result["queries"] == 5 and result["sessions"] == 5
    assert set(result["metrics"]) == {"text", "vector", "hybrid", "bm25"}

    # Text arm, by hand: reciprocal ranks 1, 1, 1/2 in alpha and 1, 0 in beta.
    assert result["metrics"]["text"] == {"session_hit@1": 0.6, "session_mrr@10": 0.7}
    assert result["per_unit"]["text"] == {
        "alpha": {"session_hit@1": 0.6667, "session_mrr@10": 0.8333, "queries": 3},
        "beta": {"session_hit@1": 0.5, "session_mrr@10": 0.5, "queries": 2},
    }
    hit1 = result["spread"]["text"]["session_hit@1"]
    assert hit1["units"] == 2 and hit1["min"] == 0.5 and hit1["max"] == 0.6667
    assert hit1["mean"] == pytest.approx((2 / 3 + 0.5) / 2, abs=1e-4)
    assert hit1["std"] == pytest.approx((2 / 3 - 0.5) / math.sqrt(2), abs=1e-4)

    kinds = result["per_kind"]["text"]
    assert set(kinds) == {"changed_function", "error_message", "file_path_shared", "issue_title"}
    assert kinds["issue_title"] == {"session_hit@1": 0.5, "session_mrr@10": 0.5, "queries": 2}
    assert kinds["file_path_shared"] == {"session_hit@1": 0.0, "session_mrr@10": 0.5, "queries": 1}
    for mode in ("vector", "hybrid", "bm25"):
        assert result["per_kind"][mode]["error_message"]["session_hit@1"] == 1.0, mode  # the exact error line
        assert set(result["spread"][mode]) == {"session_hit@1", "session_mrr@10"}
        assert result["latency"][mode]["p50_ms"] > 0

    # Each query in the other project, where nothing is relevant: the text arm finds none of
    # the words there; the vector arm always answers with its nearest documents.
    cross = result["cross_project"]["modes"]
    assert set(cross) == {"text", "vector", "hybrid"}  # bm25 is no API mode
    assert cross["text"]["other_project_searches"] == 5 and cross["text"]["with_hits"] == 0.0
    assert cross["text"]["top_score_other"] == {"n": 0} and cross["text"]["top_score_own"]["n"] == 5
    assert cross["vector"]["with_hits"] == 1.0 and cross["vector"]["top_score_other"]["n"] == 5
    # The best cosine tells the own project's nearer documents from the other's.
    assert cross["vector"]["top_cosine_own"]["p50"] > cross["vector"]["top_cosine_other"]["p50"]
    assert cross["text"]["top_text_own"]["n"] == 5 and cross["text"]["top_cosine_own"] == {"n": 0}
    has_confidence = "confidence" in SearchHit.model_fields
    assert (cross["hybrid"]["confident_own"] is None) is not has_confidence


def test_spread_for_beir_folds_and_locomo_conversations(service):
    beir = run(service, datasets.load(str(BEIR), "train"), EvalOptions(modes=("text",)))
    queries = [q.id for q in datasets.load(str(BEIR), "train").corpora[0].queries]
    assert beir["spread_unit"] == "fold"
    assert beir["spread"]["text"]["ndcg@10"]["units"] == len({fold_of(q) for q in queries})
    assert sum(row["queries"] for row in beir["per_unit"]["text"].values()) == beir["queries"]
    locomo = run(service, datasets.load(str(LOCOMO)), EvalOptions(modes=("text",)))
    assert locomo["spread_unit"] == "conversation"
    assert locomo["spread"]["text"]["turn_recall@5"]["units"] == 1  # the tiny file holds one conversation
    assert list(locomo["per_unit"]["text"]) == ["conv-t1"]


def test_cli_eval_sessions_json_and_report(own_data_dir, settings, tmp_path):
    folder = write_sessions_dataset(tmp_path / "tiny-sessions")
    out = CliRunner().invoke(
        main,
        ["eval", str(folder), "--modes", "text,hybrid", "--json", "--report", str(tmp_path / "report")],
        env={"XDG_CACHE_HOME": str(own_data_dir), "CTXSEARCH_MODEL_CACHE_DIR": str(settings.models_dir)},
    )
    assert out.exit_code == 0, out.output
    result = json.loads(out.output)  # one object
    assert result["kind"] == "sessions" and result["metrics"]["text"]["session_hit@1"] == 0.6
    assert set(result["spread"]) == {"text", "hybrid"} and result["spread_unit"] == "project"
    md = (tmp_path / "report" / "tiny-sessions.md").read_text()
    assert "| text | 0.6000 ± 0.118 | 0.7000 ± 0.236 |" in md
    assert "## Per query kind" in md and "| issue_title | 2 | 0.500 |" in md
    assert "## Spread across projects" in md and "| alpha | 3 |" in md
    assert "## Queries asked in the other projects" in md
    for png in ("tiny-sessions.png", "tiny-sessions-kinds.png"):
        assert (tmp_path / "report" / png).read_bytes()[:4] == b"\x89PNG"


# -- the text arm's BM25 ---------------------------------------------------------

BM25_DOCS = [
    "the parser fails on nested brackets in the config parser",
    "config loader reads yaml files",
    "nested brackets crash the tokenizer",
    "retry the flaky network test",
    "parser rewrite handles brackets",
]


def _expected_bm25(conn, project: str, query: str, k1: float, b: float) -> dict[str, float]:
    """Lucene's BM25 computed in Python from each document's stored lexemes."""
    docs = conn.execute(
        "SELECT event_id, (SELECT array_agg(ARRAY[u.lexeme, array_length(u.positions, 1)::text])"
        " FROM unnest(tsv) u) FROM documents WHERE project_id = %s",
        (project,),
    ).fetchall()
    qterms = Counter(
        dict(
            conn.execute(
                "SELECT lexeme, array_length(positions, 1) FROM unnest(to_tsvector('english', %s))", (query,)
            ).fetchall()
        )
    )
    tf = {d: {lex: int(n) for lex, n in terms} for d, terms in docs}
    length = {d: sum(tf[d].values()) for d in tf}
    n_docs, avgdl = len(docs), sum(length.values()) / len(docs)
    out = {}
    for d in tf:
        score = 0.0
        for t, qtf in qterms.items():
            if t in tf[d]:
                df = sum(1 for x in tf.values() if t in x)
                idf = math.log(1 + (n_docs - df + 0.5) / (df + 0.5))
                f = tf[d][t]
                score += qtf * idf * f * (k1 + 1) / (f + k1 * (1 - b + b * length[d] / avgdl))
        if score:
            out[d] = score
    return out


def test_text_arm_scores_okapi_bm25_in_both_tiers(client, service, settings, project, wait_indexed):
    evs = [event(project, f"s{n}", n, "note", text, id=f"e{n}") for n, text in enumerate(BM25_DOCS)]
    assert client.post("/v1/events", json={"events": evs}).status_code == 202
    wait_indexed(project)
    query = "nested parser brackets"
    with service.db.connection() as conn:
        expected = _expected_bm25(conn, project, query, settings.bm25_k1, settings.bm25_b)
    # The documents holding a query term: an empty reference would match an empty answer.
    assert set(expected) == {"e0", "e2", "e4"}, expected

    def scores() -> dict[str, float]:
        r = client.post(
            "/v1/search",
            json={"query": query, "project_id": project, "mode": "text", "explain": True, "kinds": ["event"]},
        )
        return {h["id"]: h["scores"]["text"] for h in r.json()["results"]}

    hot = scores()  # a fresh project: statistics counted from the hot tier
    assert hot == pytest.approx(expected, rel=1e-6)
    # Ranked by that score (documents whose scores tie within rounding may come in either order).
    assert list(hot.values()) == sorted(hot.values(), reverse=True)
    with service.db.connection() as conn:
        rebuild_warm(conn=conn, settings=settings)
    assert scores() == pytest.approx(expected, rel=1e-6)  # warm: statistics from the rebuild


def test_group_session_ranks_sessions_through_the_api_on_every_kind(service, tmp_path):
    sessions = datasets.load(str(write_sessions_dataset(tmp_path / "tiny-sessions-g")))
    by_event = run(service, sessions, EvalOptions(modes=("text",)))
    by_session = run(service, sessions, EvalOptions(modes=("text",), group="session"))
    assert by_session["group"] == "session" and by_event["group"] == "event"
    # The exact words find the same best session either way on this tiny data.
    assert by_session["metrics"]["text"]["session_hit@1"] == by_event["metrics"]["text"]["session_hit@1"]
    loc = run(service, datasets.load(str(LOCOMO)), EvalOptions(modes=("hybrid",), group="session"))
    assert loc["metrics"]["hybrid"]["session_recall@2"] == 1.0  # two sessions, both found
    beir = run(service, datasets.load(str(BEIR), "test"), EvalOptions(modes=("hybrid",), group="session", split="test"))
    assert beir["metrics"]["hybrid"]["recall@10"] == 1.0 and beir["metrics"]["hybrid"]["ndcg@10"] >= 0.9
