"""Run a relevance dataset through the real ingest and search path and score the rankings.

Documents go in as events through `Service.ingest` (the code behind `POST /v1/events`),
are condensed and embedded by the worker, and queries are answered by `Service.search`
(the SQL behind `POST /v1/search`). Mode `bm25` is the reference: Okapi BM25 from
rank-bm25 over the same documents, tokenised by the database's own text configuration,
so that the table shows how far the text arm's scoring is from textbook BM25.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from ctxsearch.evals.datasets import Corpus, Dataset, Query
from ctxsearch.evals.metrics import evaluate, mean
from ctxsearch.schemas import EventIn, SearchRequest
from ctxsearch.service.facade import Service
from ctxsearch.store.tiers import rebuild_warm, tier_state

MODES = ("text", "vector", "hybrid", "bm25")
DB_MODES = ("text", "vector", "hybrid")
INGEST_BATCH = 500

BEIR_METRICS = ["ndcg@10", "recall@10", "recall@100", "mrr@10"]
BEIR_LIMIT = 100
LOCOMO_TURN_KS = (5, 10, 25)
LOCOMO_SESSION_KS = (2, 5, 10)
LOCOMO_SESSION_LIMIT = 50  # hits read to find the top 10 distinct sessions

# Published figures to read the table against (see ../shared/datasets/README.md).
ANCHORS = {
    "scifact": {
        "ndcg@10": {
            "BM25 (BEIR)": 0.665,
            "BM25 (Pyserini)": 0.679,
            "all-MiniLM-L6-v2": 0.645,
            "PostgreSQL ts_rank": 0.606,
            "PostgreSQL RRF hybrid": 0.680,
        },
    },
    "locomo": {
        "turn_recall@5": {"DRAGON (LoCoMo paper)": 0.567},
        "turn_recall@10": {"DRAGON (LoCoMo paper)": 0.662},
        "turn_recall@25": {"DRAGON (LoCoMo paper)": 0.767},
        "session_recall@5": {"session summaries (LoCoMo paper)": 0.721},
        "session_recall@10": {"session summaries (LoCoMo paper)": 0.847},
    },
}

Progress = Callable[..., object]  # tqdm-like factory: progress(total=, desc=, unit=)


class _NoBar:
    def __init__(self, *_, **__):
        pass

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@dataclass
class EvalOptions:
    modes: tuple[str, ...] = ("text", "vector", "hybrid", "bm25")
    max_queries: int | None = None
    split: str | None = None
    rebuild: bool = True  # search the warm tier, as a long-running server would after its rebuild


# -- loading --------------------------------------------------------------------


def load_corpus(svc: Service, corpus: Corpus, progress: Progress = _NoBar) -> dict:
    """Ingest a corpus into its project (idempotent: a loaded project is reused) and wait until indexed."""
    t0 = time.perf_counter()
    stats = svc.stats(corpus.project_id)
    loaded = stats.events >= len(corpus.events)
    if not loaded:
        with progress(total=len(corpus.events), desc=f"ingest {corpus.name}", unit="ev") as bar:
            for start in range(0, len(corpus.events), INGEST_BATCH):
                chunk = corpus.events[start : start + INGEST_BATCH]
                svc.ingest([EventIn(project_id=corpus.project_id, **e) for e in chunk])
                bar.update(len(chunk))
    wait_indexed(svc, corpus.project_id, progress, desc=f"embed {corpus.name}")
    return {"reused": loaded, "seconds": round(time.perf_counter() - t0, 2)}


def wait_indexed(svc: Service, project_id: str, progress: Progress = _NoBar, desc: str = "embed") -> None:
    """Condense and embed in this process until the project has nothing pending."""
    pending = svc.stats(project_id).pending
    if not pending:
        return
    with progress(total=pending, desc=desc, unit="doc") as bar:
        while True:
            condensed, embedded = svc.worker.run_once()
            left = svc.stats(project_id).pending
            bar.update(max(pending - left, 0))
            pending = left
            if not left:
                return
            if not condensed and not embedded:
                time.sleep(0.1)  # sessions settle briefly before they are condensed


def refresh_warm(svc: Service) -> None:
    """Move everything indexed into the warm tier (the rebuild a server runs in the background)."""
    with svc.db.connection() as conn:
        if tier_state(conn).hot_rows:
            rebuild_warm(conn=conn, settings=svc.settings)


# -- searching ------------------------------------------------------------------


def _search_ids(
    svc: Service, query: Query, project_id: str, mode: str, limit: int, kinds: list[str] | None, key: Callable
) -> tuple[list[str], float]:
    req = SearchRequest(query=query.text, project_id=project_id, mode=mode, limit=limit, kinds=kinds)
    t0 = time.perf_counter()
    resp = svc.search(req)
    ms = (time.perf_counter() - t0) * 1000
    return list(dict.fromkeys(key(h) for h in resp.results)), ms


class Bm25Reference:
    """Okapi BM25 (rank-bm25) over a project's event documents, tokenised by PostgreSQL's
    text configuration (the lexemes and counts stored in each document's tsvector)."""

    def __init__(self, svc: Service, project_id: str, k1: float = 1.2, b: float = 0.75):
        from rank_bm25 import BM25Okapi

        self.svc = svc
        with svc.db.connection() as conn:
            rows = conn.execute(
                "SELECT d.event_id, d.session_id,"
                " coalesce((SELECT array_agg(u.lexeme ORDER BY u.lexeme) FROM unnest(d.tsv) u,"
                "  generate_series(1, coalesce(array_length(u.positions, 1), 1))), '{}')"
                " FROM documents d WHERE d.project_id = %s AND d.kind = 'event' ORDER BY d.id",
                (project_id,),
            ).fetchall()
        self.ids = [r[0] for r in rows]
        self.sessions = [r[1] for r in rows]
        self.bm25 = BM25Okapi([list(r[2]) or ["\x00"] for r in rows], k1=k1, b=b)

    def tokens(self, text: str) -> list[str]:
        with self.svc.db.connection() as conn:
            return [
                r[0]
                for r in conn.execute(
                    "SELECT u.lexeme FROM unnest(to_tsvector('english'::regconfig, %s)) u,"
                    " generate_series(1, coalesce(array_length(u.positions, 1), 1))",
                    (text,),
                )
            ]

    def rank(self, text: str, limit: int) -> list[int]:
        scores = self.bm25.get_scores(self.tokens(text))
        top = np.argsort(-scores, kind="stable")[:limit]
        return [int(i) for i in top if scores[i] > 0]


def _timing(ms: list[float]) -> dict:
    if not ms:
        return {}
    a = np.asarray(ms)
    return {
        "mean_ms": round(float(a.mean()), 2),
        "p50_ms": round(float(np.percentile(a, 50)), 2),
        "p95_ms": round(float(np.percentile(a, 95)), 2),
    }


def _queries(corpus: Corpus, opts: EvalOptions) -> list[Query]:
    return corpus.queries[: opts.max_queries] if opts.max_queries else corpus.queries


def run_beir(svc: Service, ds: Dataset, opts: EvalOptions, progress: Progress = _NoBar) -> dict:
    corpus = ds.corpora[0]
    load = load_corpus(svc, corpus, progress)
    if opts.rebuild:
        refresh_warm(svc)
    queries = _queries(corpus, opts)
    qrels = {q.id: q.relevant for q in queries}
    results: dict[str, dict] = {}
    timing: dict[str, dict] = {}
    for mode in opts.modes:
        ranked: dict[str, list[str]] = {}
        ms: list[float] = []
        if mode == "bm25":
            ref = Bm25Reference(svc, corpus.project_id)
        with progress(total=len(queries), desc=f"search {mode}", unit="q") as bar:
            for q in queries:
                if mode == "bm25":
                    t0 = time.perf_counter()
                    ranked[q.id] = [ref.sessions[i] for i in ref.rank(q.text, BEIR_LIMIT)]
                    ms.append((time.perf_counter() - t0) * 1000)
                else:
                    # Hits collapse to their session: a document's event and its session summary are one answer.
                    ranked[q.id], t = _search_ids(
                        svc, q, corpus.project_id, mode, BEIR_LIMIT, None, key=lambda h: h.session_id
                    )
                    ms.append(t)
                bar.update()
        scores = evaluate(qrels, ranked, BEIR_METRICS)
        results[mode] = {m: round(mean(v), 4) for m, v in scores.items()}
        timing[mode] = _timing(ms)
    return {
        "dataset": ds.name,
        "kind": "beir",
        "split": opts.split,
        "documents": len(corpus.events),
        "queries": len(queries),
        "project_id": corpus.project_id,
        "load": load,
        "metrics": results,
        "latency": timing,
        "anchors": ANCHORS.get(ds.name, {}),
    }


def run_locomo(svc: Service, ds: Dataset, opts: EvalOptions, progress: Progress = _NoBar) -> dict:
    loads = {c.name: load_corpus(svc, c, progress) for c in ds.corpora}
    if opts.rebuild:
        refresh_warm(svc)
    turn_metrics = [f"recall@{k}" for k in LOCOMO_TURN_KS]
    session_metrics = [f"recall@{k}" for k in LOCOMO_SESSION_KS]
    results: dict[str, dict] = {}
    per_category: dict[str, dict] = {}
    timing: dict[str, dict] = {}
    n_queries = sum(len(_queries(c, opts)) for c in ds.corpora)
    for mode in opts.modes:
        turn_scores: dict[str, list] = defaultdict(list)
        session_scores: dict[str, list] = defaultdict(list)
        categories: list[str | None] = []
        ms: list[float] = []
        with progress(total=n_queries, desc=f"search {mode}", unit="q") as bar:
            for corpus in ds.corpora:
                queries = _queries(corpus, opts)
                turns: dict[str, list[str]] = {}
                sessions: dict[str, list[str]] = {}
                ref = Bm25Reference(svc, corpus.project_id) if mode == "bm25" else None
                for q in queries:
                    if ref is not None:
                        t0 = time.perf_counter()
                        top = ref.rank(q.text, LOCOMO_SESSION_LIMIT)
                        turns[q.id] = [ref.ids[i] for i in top[: max(LOCOMO_TURN_KS)]]
                        sessions[q.id] = list(dict.fromkeys(ref.sessions[i] for i in top))
                        ms.append((time.perf_counter() - t0) * 1000)
                    else:
                        turns[q.id], t = _search_ids(
                            svc, q, corpus.project_id, mode, max(LOCOMO_TURN_KS), ["event"], key=lambda h: h.id
                        )
                        sessions[q.id], _ = _search_ids(
                            svc, q, corpus.project_id, mode, LOCOMO_SESSION_LIMIT, None, key=lambda h: h.session_id
                        )
                        ms.append(t)
                    bar.update()
                ts = evaluate({q.id: q.relevant for q in queries}, turns, turn_metrics)
                ss = evaluate({q.id: {s: 1 for s in q.sessions} for q in queries}, sessions, session_metrics)
                for m in turn_metrics:
                    turn_scores[m].extend(ts[m])
                for m in session_metrics:
                    session_scores[m].extend(ss[m])
                categories.extend(q.category for q in queries)
        row = {f"turn_{m}": round(mean(np.asarray(v)), 4) for m, v in turn_scores.items()}
        row.update({f"session_{m}": round(mean(np.asarray(v)), 4) for m, v in session_scores.items()})
        results[mode] = row
        cats = np.asarray(categories, dtype=object)
        per_category[mode] = {}
        for cat in sorted(set(categories), key=str):
            sel = cats == cat
            cat_row = {f"turn_{m}": round(mean(np.asarray(v)[sel]), 4) for m, v in turn_scores.items()}
            cat_row.update({f"session_{m}": round(mean(np.asarray(v)[sel]), 4) for m, v in session_scores.items()})
            cat_row["queries"] = int(sel.sum())
            per_category[mode][LOCOMO_CATEGORIES.get(cat, str(cat))] = cat_row
        timing[mode] = _timing(ms)
    return {
        "dataset": ds.name,
        "kind": "locomo",
        "conversations": [c.name for c in ds.corpora],
        "documents": sum(len(c.events) for c in ds.corpora),
        "queries": n_queries,
        "load": loads,
        "metrics": results,
        "per_category": per_category,
        "latency": timing,
        "anchors": ANCHORS["locomo"],
    }


LOCOMO_CATEGORIES = {
    "1": "1 multi-hop",
    "2": "2 temporal",
    "3": "3 open-domain",
    "4": "4 single-hop",
    "5": "5 adversarial",
}


def run(svc: Service, ds: Dataset, opts: EvalOptions, progress: Progress = _NoBar) -> dict:
    t0 = time.perf_counter()
    out = run_beir(svc, ds, opts, progress) if ds.kind == "beir" else run_locomo(svc, ds, opts, progress)
    out["modes"] = list(opts.modes)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def parse_modes(value: str | Iterable[str]) -> tuple[str, ...]:
    items = [m.strip() for m in (value.split(",") if isinstance(value, str) else value) if m.strip()]
    bad = [m for m in items if m not in MODES]
    if bad or not items:
        raise ValueError(f"--modes: unknown mode {', '.join(bad) or '(none)'}; choose from {', '.join(MODES)}")
    return tuple(dict.fromkeys(items))
