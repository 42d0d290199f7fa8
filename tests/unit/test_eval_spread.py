"""The eval's arithmetic without a database: the fold split, the spread across units, the
per-group breakdown and session hit@1 / MRR@10 against values worked out by hand."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from ctxsearch.evals.runner import breakdown, distribution, fold_of, score_sessions, spread, unit_spread
from ctxsearch.schemas import ArmRanks, SearchHit, SearchResponse


def test_fold_split_is_deterministic_and_covers_every_fold():
    ids = [str(n) for n in range(1000)]
    folds = [fold_of(q) for q in ids]
    assert folds == [fold_of(q) for q in ids]  # the same in every run (not Python's salted hash)
    counts = Counter(folds)
    assert set(counts) == {0, 1, 2, 3, 4}
    assert all(150 <= n <= 250 for n in counts.values()), counts  # roughly even
    assert {fold_of("q1", folds=3) for _ in range(3)} == {fold_of("q1", folds=3)} and fold_of("q1", 3) in {0, 1, 2}


def test_spread_is_mean_sample_std_min_max_of_the_unit_figures():
    got = spread([0.5, 1.0, 0.75, 0.25])
    # mean 0.625; squared deviations 0.015625 + 0.140625 + 0.015625 + 0.140625 = 0.3125; / (n - 1)
    assert got == {"mean": 0.625, "std": round(math.sqrt(0.3125 / 3), 4), "min": 0.25, "max": 1.0, "units": 4}
    assert spread([0.8]) == {"mean": 0.8, "std": 0.0, "min": 0.8, "max": 0.8, "units": 1}
    assert spread([])["units"] == 0


def test_unit_spread_averages_within_each_unit_first():
    # unit a: 1, 0, 1 -> 2/3; unit b: 0 -> 0; unit c: 1, 1 -> 1. The pooled mean (4/6) differs.
    scores = {"hit": np.array([1.0, 0.0, 1.0, 0.0, 1.0, 1.0])}
    labels = ["a", "a", "a", "b", "c", "c"]
    got = unit_spread(scores, labels)["hit"]
    unit_means = [2 / 3, 0.0, 1.0]
    assert got["units"] == 3 and got["min"] == 0.0 and got["max"] == 1.0
    assert got["mean"] == pytest.approx(np.mean(unit_means), abs=1e-4)
    assert got["std"] == pytest.approx(np.std(unit_means, ddof=1), abs=1e-4)
    table = breakdown(scores, labels)
    assert list(table) == ["a", "b", "c"]
    assert table["a"] == {"hit": 0.6667, "queries": 3} and table["b"] == {"hit": 0.0, "queries": 1}
    with pytest.raises(ValueError, match="labels"):
        unit_spread(scores, labels[:-1])


def test_session_hit_at_1_and_mrr_at_10_by_hand():
    sessions = [f"s{n}" for n in range(20)]
    qrels = {"first": {"s0": 1}, "third": {"s2": 1}, "absent": {"x": 1}, "eleventh": {"s10": 1}, "none": {"s0": 1}}
    ranked = {"first": sessions, "third": sessions, "absent": sessions, "eleventh": sessions, "none": []}
    got = score_sessions(qrels, ranked)
    assert set(got) == {"session_hit@1", "session_mrr@10"}
    assert got["session_hit@1"] == pytest.approx([1, 0, 0, 0, 0])
    assert got["session_mrr@10"] == pytest.approx([1, 1 / 3, 0, 0, 0])  # rank 11 is past the cut


def test_distribution_ignores_searches_without_a_hit():
    got = distribution([0.1, None, 0.3, 0.2, None])
    assert got["n"] == 3 and got["min"] == 0.1 and got["max"] == 0.3 and got["p50"] == 0.2
    assert distribution([None]) == {"n": 0}


def test_ranked_sessions_collapse_hits_to_distinct_sessions_in_order():
    from ctxsearch.evals.runner import ranked_sessions

    def hit(id_: str, session: str, kind: str = "event") -> SearchHit:
        # Unvalidated: only the session is read, whatever fields the hit model grows.
        return SearchHit.model_construct(
            id=id_,
            kind=kind,
            project_id="p",
            session_id=session,
            timestamp="2026-01-01T00:00:00Z",
            type="note",
            title="",
            snippet="",
            files=[],
            score=1.0,
            ranks=ArmRanks(vector=None, text=None),
        )

    resp = SearchResponse.model_construct(
        results=[hit("e1", "b"), hit("b", "b", "summary"), hit("e2", "a"), hit("e3", "b"), hit("e4", "c")],
        mode="hybrid",
        took_ms=1.0,
    )
    assert ranked_sessions(resp) == ["b", "a", "c"]
