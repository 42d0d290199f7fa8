"""rank_sessions: sessions as answers, from plain (session_id, score) rows."""

from __future__ import annotations

import pytest

from ctxsearch.domain.grouping import rank_sessions

ROWS = [("a", 0.9), ("b", 0.8), ("b", 0.7), ("c", 0.6), ("b", 0.65), ("a", 0.1), ("b", 0.6)]


def test_each_session_once_with_its_rows_best_first():
    ranked = rank_sessions(ROWS, evidence_weight=0.2, evidence_hits=2)
    assert [r.session_id for r in ranked] == ["b", "a", "c"]
    b = ranked[0]
    assert b.rows == (1, 2, 4, 6) and b.matched == 4
    assert b.score == pytest.approx(0.8 + 0.2 * (0.7 + 0.65))  # only the next 2 count
    assert ranked[1].score == pytest.approx(0.9 + 0.2 * 0.1)


def test_no_evidence_weight_ranks_by_the_best_hit():
    ranked = rank_sessions(ROWS, evidence_weight=0.0, evidence_hits=2)
    assert [(r.session_id, r.score) for r in ranked] == [("a", 0.9), ("b", 0.8), ("c", 0.6)]


@pytest.mark.parametrize(
    "weight, hits, first",
    [(0.2, 0, "a"), (0.1, 1, "a"), (0.2, 1, "b"), (0.2, 2, "b")],
)
def test_evidence_settles_who_leads(weight, hits, first):
    assert rank_sessions(ROWS, evidence_weight=weight, evidence_hits=hits)[0].session_id == first


def test_ties_keep_the_fused_order_and_input_may_be_any_iterable():
    ranked = rank_sessions(iter([("x", 0.5), ("y", 0.5), ("z", 0.5)]), evidence_weight=0.3, evidence_hits=2)
    assert [r.session_id for r in ranked] == ["x", "y", "z"]
    assert rank_sessions([], evidence_weight=0.2, evidence_hits=2) == []


def test_negative_parameters_are_refused():
    with pytest.raises(ValueError):
        rank_sessions(ROWS, evidence_weight=-0.1, evidence_hits=2)
