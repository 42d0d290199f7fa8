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
from ctxsearch.evals.runner import EvalOptions, parse_modes, run
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
