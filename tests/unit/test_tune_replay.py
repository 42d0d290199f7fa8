"""The offline replay and cross-validation behind `ctxsearch tune`, on records built by hand."""

from __future__ import annotations

import numpy as np
import pytest

from ctxsearch.evals import tune
from ctxsearch.evals.datasets import Query
from ctxsearch.evals.tune import Candidate, Record


def cand(doc_id, session, cosine, text_norm, vrank, trank, kind="event", event=None):
    return Candidate(kind, session, event or f"e{doc_id}", cosine, text_norm, vrank, trank, doc_id)


def record(kind, dataset, unit, candidates, relevant=None, sessions=None, own=True, qid="q"):
    q = Query(id=qid, text="x", relevant=relevant or {}, sessions=set(sessions or ()))
    return Record(kind, dataset, unit, q, own, candidates)


def test_replay_keeps_text_only_cosines_and_drops_text_beyond_the_pool():
    rec = record(
        "sessions",
        "a",
        "p",
        [
            cand(1, "s1", 0.9, 0.0, 1, None),
            cand(2, "s2", 0.2, 1.5, 3, 1),
            cand(3, "s3", 0.5, 1.0, 2, 3),  # text rank 3: outside a pool of 2
        ],
        sessions=["s2"],
    )
    pool = {c.doc_id: c for c in tune._pool(rec, 2)}
    assert set(pool) == {1, 2, 3}
    assert pool[3].text_norm == 0.0 and pool[3].text_rank is None
    assert pool[2].cosine == 0.2  # a text candidate keeps its cosine
    by_text = [c.doc_id for c in tune.ranked(rec, tune.convex((0.0, 0.0)), candidates=2)]
    by_vector = [c.doc_id for c in tune.ranked(rec, tune.convex((1.0, 1.0)), candidates=2)]
    assert by_text[0] == 2 and by_vector == [1, 3, 2]
    assert tune.metrics(rec, tune.ranked(rec, tune.convex((0.0, 0.0)), 2)) == {"hit@1": 1.0, "mrr@10": 1.0}
    assert tune.metrics(rec, tune.ranked(rec, tune.convex((1.0, 1.0)), 2)) == {
        "hit@1": 0.0,
        "mrr@10": pytest.approx(1 / 3),
    }


def test_rrf_replay_is_reciprocal_ranks():
    c = cand(1, "s", 0.5, 0.5, 2, 4)
    assert tune.rrf(k=60, w_vector=1, w_text=1.5)(None, c) == pytest.approx(1 / 62 + 1.5 / 64)


def test_metrics_per_kind():
    hits = [cand(1, "d1", 0, 0, 1, 1), cand(2, "d2", 0, 0, 2, 2), cand(3, "d3", 0, 0, 3, 3)]
    beir = record("beir", "b", "fold0", hits, relevant={"d2": 1})
    assert tune.metrics(beir, hits)["ndcg@10"] == pytest.approx(1 / np.log2(3))
    turns = [
        cand(1, "s1", 0, 0, 1, 1, event="t1"),
        cand(2, "s1", 0, 0, 2, 2, kind="summary"),
        cand(3, "s2", 0, 0, 3, 3, event="t3"),
    ]
    loc = record("locomo", "l", "c", turns, relevant={"t3": 1, "t9": 1}, sessions=["s2"])
    assert tune.metrics(loc, turns) == {"turn_recall@10": 0.5, "session_recall@5": 1.0}


def _unit_records(dataset, kind, unit, best_alpha_wins: bool, n=4):
    """Queries where the relevant session wins at alpha >= 0.5 and loses below (or the reverse)."""
    out = []
    for i in range(n):
        good = cand(1, "good", 0.9 if best_alpha_wins else 0.1, 0.1 if best_alpha_wins else 0.9, 1, 2)
        bad = cand(2, "bad", 0.1 if best_alpha_wins else 0.9, 0.8 if best_alpha_wins else 0.2, 2, 1)
        out.append(record(kind, dataset, unit, [good, bad], relevant={"good": 1}, sessions=["good"], qid=f"{unit}{i}"))
    return out


def test_cross_validation_scores_each_unit_with_a_weight_chosen_without_it():
    records = []
    for u in ("p1", "p2", "p3"):
        records += _unit_records("a", "sessions", u, best_alpha_wins=True)
    # One odd unit: what suits it must not be chosen for it, since it is held out.
    records += _unit_records("a", "sessions", "odd", best_alpha_wins=False)
    cv = tune.cross_validate(records, grid=((0.2, 0.2), (0.8, 0.8)))
    assert cv["chosen_per_fold"] == [[0.8, 0.8]] * 4
    held = cv["held_out"]["a"]["hit@1"]
    assert held["units"] == 4 and held["min"] == 0.0 and held["max"] == 1.0
    assert held["mean"] == pytest.approx(0.75)


def test_logistic_fit_recovers_a_known_calibration():
    rng = np.random.default_rng(7)
    X = np.column_stack([rng.uniform(0, 1, 4000), rng.uniform(0, 2, 4000), np.ones(4000)])
    true = np.array([4.0, 2.0, -4.0])
    y = (rng.uniform(size=4000) < 1 / (1 + np.exp(-X @ true))).astype(float)
    coef = tune.fit_logistic(X, y, np.full(4000, 1 / 4000))
    assert np.allclose(coef, true, atol=0.6)


def test_a_constant_feature_gets_no_weight():
    X = np.column_stack([np.zeros(100), np.linspace(0, 1, 100), np.ones(100)])
    y = (np.linspace(0, 1, 100) > 0.5).astype(float)
    assert tune.fit_logistic(X, y, np.full(100, 0.01))[0] == 0.0


def test_thresholds_count_hits_kept_in_other_projects():
    own = record("sessions", "a", "p", [cand(1, "s", 0.9, 1.5, 1, 1)], sessions=["s"], qid="q1")
    other = record("sessions", "a", "p", [cand(1, "x", 0.1, 0.1, 1, 1)], own=False, qid="q1")
    cal = {"hybrid": (4.0, 4.0, -5.0), "vector": (4.0, 0.0, -5.0)}
    rep = tune.threshold_report([own, other], cal, alpha=(0.5, 0.5))
    assert rep["0.5"]["a"] == 1.0 and rep["0.5"]["a: top hit kept"] == 1.0
    assert rep["0.5"]["a (other projects): hits"] == 0 and rep["0.5"]["a (other projects): none"] == 1.0
    assert rep["0.0"]["a (other projects): hits"] == 1


def test_session_cross_validation_weighs_further_evidence_only_where_it_helps():
    # The expected session has three good hits; another has one slightly better hit.
    records = []
    for u in ("p1", "p2", "p3"):
        for i in range(3):
            cands = [
                cand(1, "other", 0.80, 0.80, 1, 1),
                cand(2, "fix", 0.78, 0.78, 2, 2),
                cand(3, "fix", 0.70, 0.70, 3, 3),
                cand(4, "fix", 0.69, 0.69, 4, 4),
            ]
            records.append(record("sessions", "a", u, cands, sessions=["fix"], qid=f"{u}{i}"))
    cv = tune.cross_validate_sessions(records, alpha=(0.5, 0.5), grid=((0.0, 0), (0.2, 2)))
    assert cv["chosen_per_fold"] == [[0.2, 2]] * 3
    assert cv["held_out"]["a"]["hit@1"]["mean"] == 1.0
    assert cv["grid"]["(0.0, 0)"]["a"]["hit@1"] == 0.0


def test_code_like_queries_lean_on_the_text_arm():
    from ctxsearch.domain.query_shape import codeness, vector_weight

    assert codeness("what made responses slow") == 0.0
    assert codeness("which session modified modify_sys_path") == 0.25
    assert codeness("AssertionError: assert x in tests/test_a.py") == pytest.approx(2 / 5)
    assert vector_weight("why is the build slow", 0.4, 0.2) == 0.4
    assert vector_weight("where did we change the fit_sessions function", 0.4, 0.2) == pytest.approx(0.4 - 0.2 * 4 / 7)
    assert vector_weight("where did we change fit_sessions", 0.4, 0.2) == pytest.approx(0.24)
    assert vector_weight("src/app.py test_login", 0.4, 0.2) == pytest.approx(0.2)
    # The replay weighs each query as the service does.
    c = cand(1, "s", 1.0, 0.0, 1, None)
    assert tune.convex((0.4, 0.2))(record("sessions", "a", "p", [c]), c) == pytest.approx(0.4)


def test_snake_case_names_are_indexed_and_searched_whole():
    from ctxsearch.domain.documents import identifier_terms, text_query

    terms = identifier_terms("def fit_sessions(rows): return _free_port() + renderWidgets + plain words")
    assert set(terms.split()) >= {"fitsessions", "freeport", "render", "Widgets"}
    assert "plain" not in terms
    assert text_query("where did we change fit_sessions") == "where did we change fit_sessions fitsessions"
    assert text_query("why is the build slow") == "why is the build slow"
