"""Ranking metrics through ranx (nDCG@k, Recall@k, MRR@k), per query and averaged."""

from __future__ import annotations

import warnings

import numpy as np


def evaluate(
    qrels: dict[str, dict[str, int]], ranked: dict[str, list[str]], metrics: list[str]
) -> dict[str, np.ndarray]:
    """Per-query scores, in the order of `qrels`, for ranx metric names such as `ndcg@10`.

    `ranked` maps a query id to its result ids, best first (duplicates are dropped, the
    first occurrence counts). A query with no results scores 0.
    """
    from ranx import Qrels, Run
    from ranx import evaluate as ranx_evaluate

    qids = [q for q in qrels if qrels[q]]
    if not qids:
        return {m: np.zeros(0) for m in metrics}
    run: dict[str, dict[str, float]] = {}
    for q in qids:
        ids = list(dict.fromkeys(ranked.get(q, [])))
        # ranx wants scores; a strictly decreasing score keeps our order.
        run[q] = {doc: float(len(ids) - i) for i, doc in enumerate(ids)}
    ranx_run = Run.from_dict(run)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's cast warnings
        ranx_evaluate(Qrels.from_dict({q: qrels[q] for q in qids}), ranx_run, metrics, make_comparable=True)
    # ranx keeps each query's score on the run, keyed by query id.
    return {m: np.array([ranx_run.scores[m][q] for q in qids], dtype=float) for m in metrics}


def mean(scores: np.ndarray) -> float:
    return float(np.mean(scores)) if len(scores) else 0.0
