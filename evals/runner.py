"""Run a relevance dataset through the real ingest and search path and score the rankings.

Documents go in as events through `Service.ingest` (the code behind `POST /v1/events`),
are condensed and embedded by the worker, and queries are answered by `Service.search`
(the SQL behind `POST /v1/search`). Mode `bm25` is the reference: Okapi BM25 from
rank-bm25 over the same documents, tokenised by the database's own text configuration,
so that the table shows how far the text arm's scoring is from textbook BM25.

Beside each pooled figure, the spread across units (LoCoMo conversations, agent-sessions
projects, BEIR folds of the queries) says how much of a difference between two runs is
noise: a pooled mean hides one project that scores far below the rest.
"""

from __future__ import annotations

import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ctxsearch.evals.datasets import Corpus, Dataset, Query
from ctxsearch.evals.metrics import evaluate, mean
from ctxsearch.schemas import EventIn, SearchRequest, SearchResponse
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

# Agent sessions: ranx metric -> the name in the result.
SESSION_METRICS = {"hit_rate@1": "session_hit@1", "mrr@10": "session_mrr@10"}
SESSION_DEPTH = 10  # distinct sessions a ranking needs for MRR@10
SESSION_LIMIT = 50  # hits per page read to find them
SESSION_MAX_PAGES = 4  # pages followed (by cursor) while fewer than SESSION_DEPTH sessions came back

BEIR_FOLDS = 5
NO_MATCH_LIMIT = 10  # hits per search in the cross-project measurement: the API's default page
CONFIDENT = 0.5  # a top hit at or above this confidence counts as "the service is sure"

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
    # How sessions are ranked: "event" collapses the hits to their sessions in order;
    # "session" asks the API for sessions (group=session: each scored from all its hits).
    group: str = "event"


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


def _search_sessions(
    svc: Service, query: Query, project_id: str, mode: str, limit: int, group: str
) -> tuple[list[str], float]:
    """The sessions a search ranks: its hits collapsed in order, or with group=session the
    API's own session ranking (`limit` sessions)."""
    t0 = time.perf_counter()
    resp = svc.search(session_request(query.text, project_id, mode, limit, group))
    return ranked_sessions(resp), (time.perf_counter() - t0) * 1000


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
    # evaluate() scores the queries with judgments, in qrels order.
    folds = [f"fold{fold_of(q)}" for q, rel in qrels.items() if rel]
    results: dict[str, dict] = {}
    spreads: dict[str, dict] = {}
    per_unit: dict[str, dict] = {}
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
                    ranked[q.id], t = _search_sessions(svc, q, corpus.project_id, mode, BEIR_LIMIT, opts.group)
                    ms.append(t)
                bar.update()
        scores = evaluate(qrels, ranked, BEIR_METRICS)
        results[mode] = {m: round(mean(v), 4) for m, v in scores.items()}
        per_unit[mode] = breakdown(scores, folds)
        spreads[mode] = unit_spread(scores, folds)
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
        "spread_unit": "fold",
        "spread": spreads,
        "per_unit": per_unit,
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
    spreads: dict[str, dict] = {}
    per_unit: dict[str, dict] = {}
    timing: dict[str, dict] = {}
    n_queries = sum(len(_queries(c, opts)) for c in ds.corpora)
    for mode in opts.modes:
        turn_scores: dict[str, list] = defaultdict(list)
        session_scores: dict[str, list] = defaultdict(list)
        categories: list[str | None] = []
        units: list[str] = []
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
                        sessions[q.id], _ = _search_sessions(
                            svc,
                            q,
                            corpus.project_id,
                            mode,
                            LOCOMO_SESSION_LIMIT if opts.group == "event" else max(LOCOMO_SESSION_KS),
                            opts.group,
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
                # evaluate() drops queries without judgments; the loader keeps none of those.
                units.extend(corpus.name for q in queries if q.relevant)
        per_query = {f"turn_{m}": np.asarray(v) for m, v in turn_scores.items()}
        per_query.update({f"session_{m}": np.asarray(v) for m, v in session_scores.items()})
        spreads[mode] = unit_spread(per_query, units)
        per_unit[mode] = breakdown(per_query, units)
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
        "spread_unit": "conversation",
        "spread": spreads,
        "per_unit": per_unit,
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


# -- agent sessions ---------------------------------------------------------------


def session_request(
    query: str, project_id: str, mode: str, limit: int = SESSION_LIMIT, group: str = "event"
) -> SearchRequest:
    """The search whose hits (or, with group=session, whose sessions) rank a project's sessions."""
    return SearchRequest(query=query, project_id=project_id, mode=mode, limit=limit, group=group)


def ranked_sessions(resp: SearchResponse) -> list[str]:
    """The sessions of a response, best first: with group=session as the API ranked them,
    else the distinct sessions of its hits (a session ranks where its first hit does)."""
    if resp.sessions is not None:
        return [s.session_id for s in resp.sessions]
    return list(dict.fromkeys(h.session_id for h in resp.results))


def rank_sessions(
    svc: Service, query: str, project_id: str, mode: str, depth: int = SESSION_DEPTH, group: str = "event"
) -> tuple[list[str], float]:
    """Sessions ranked for a query through `Service.search`, following the cursor while fewer
    than `depth` distinct sessions came back; and the first page's latency in ms."""
    limit = SESSION_DEPTH if group == "session" else SESSION_LIMIT  # sessions, or hits to collapse
    req = session_request(query, project_id, mode, limit, group)
    sessions: list[str] = []
    first_ms: float | None = None
    for _ in range(SESSION_MAX_PAGES):
        t0 = time.perf_counter()
        resp = svc.search(req)
        ms = (time.perf_counter() - t0) * 1000
        first_ms = ms if first_ms is None else first_ms
        sessions = list(dict.fromkeys([*sessions, *ranked_sessions(resp)]))
        if len(sessions) >= depth or not resp.next_cursor:
            break
        req = req.model_copy(update={"cursor": resp.next_cursor})
    return sessions, first_ms or 0.0


def _bm25_sessions(ref: Bm25Reference, query: str) -> tuple[list[str], float]:
    t0 = time.perf_counter()
    sessions = list(dict.fromkeys(ref.sessions[i] for i in ref.rank(query, len(ref.ids))))
    return sessions, (time.perf_counter() - t0) * 1000


def score_sessions(qrels: dict[str, dict[str, int]], ranked: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """Per query (in qrels order): session hit@1 and MRR@10 of its ranked distinct sessions."""
    return {SESSION_METRICS[m]: v for m, v in evaluate(qrels, ranked, list(SESSION_METRICS)).items()}


def run_sessions(svc: Service, ds: Dataset, opts: EvalOptions, progress: Progress = _NoBar) -> dict:
    """Agent sessions: per query, the rank of its expected session among the distinct sessions
    of the hits in its own project; hit@1 and MRR@10, overall, per query kind and per project."""
    loads = {c.name: load_corpus(svc, c, progress) for c in ds.corpora}
    if opts.rebuild:
        refresh_warm(svc)
    work = [(c, _queries(c, opts)) for c in ds.corpora]
    queries = [q for _, qs in work for q in qs]
    units = [c.name for c, qs in work for _ in qs]
    kinds = [q.category or "unknown" for q in queries]
    qrels = {q.id: q.relevant for q in queries}
    results: dict[str, dict] = {}
    per_kind: dict[str, dict] = {}
    per_unit: dict[str, dict] = {}
    spreads: dict[str, dict] = {}
    timing: dict[str, dict] = {}
    for mode in opts.modes:
        ranked: dict[str, list[str]] = {}
        ms: list[float] = []
        with progress(total=len(queries), desc=f"search {mode}", unit="q") as bar:
            for corpus, qs in work:
                ref = Bm25Reference(svc, corpus.project_id) if mode == "bm25" and qs else None
                for q in qs:
                    if ref is not None:
                        ranked[q.id], t = _bm25_sessions(ref, q.text)
                    else:
                        ranked[q.id], t = rank_sessions(svc, q.text, corpus.project_id, mode, group=opts.group)
                    ms.append(t)
                    bar.update()
        scores = score_sessions(qrels, ranked)
        results[mode] = {m: round(mean(v), 4) for m, v in scores.items()}
        per_kind[mode] = breakdown(scores, kinds)
        per_unit[mode] = breakdown(scores, units)
        spreads[mode] = unit_spread(scores, units)
        timing[mode] = _timing(ms)
    out = {
        "dataset": ds.name,
        "kind": "sessions",
        "projects": {c.name: c.project_id for c in ds.corpora},
        "sessions": sum(len({e["session_id"] for e in c.events}) for c in ds.corpora),
        "documents": sum(len(c.events) for c in ds.corpora),
        "queries": len(queries),
        "load": loads,
        "metrics": results,
        "per_kind": per_kind,
        "spread_unit": "project",
        "spread": spreads,
        "per_unit": per_unit,
        "latency": timing,
        "anchors": ANCHORS.get(ds.name, {}),
    }
    if len(ds.corpora) > 1:
        out["cross_project"] = cross_project_no_match(svc, ds, opts, progress)
    return out


def _top_figures(hits: list) -> dict[str, float | None]:
    """What a reader of one answer could judge relevance by: the top hit's fused score, the
    best cosine and best text score among the hits (None where no hit has one), the top
    hit's confidence where hits carry one."""
    cosines = [h.scores.vector for h in hits if h.scores is not None and h.scores.vector is not None]
    texts = [h.scores.text for h in hits if h.scores is not None and h.scores.text is not None]
    top = hits[0] if hits else None
    return {
        "score": top.score if top is not None else None,
        "cosine": max(cosines) if cosines else None,
        "text": max(texts) if texts else None,
        "confidence": getattr(top, "confidence", None) if top is not None else None,
    }


def cross_project_no_match(svc: Service, ds: Dataset, opts: EvalOptions, progress: Progress = _NoBar) -> dict:
    """Each query asked in every OTHER project of the dataset, where nothing is relevant: how many
    hits still come back, and how the top figures (fused score, best cosine, best text score,
    confidence where hits carry one) compare with the same query's in its own project."""
    modes = [m for m in opts.modes if m in DB_MODES]
    work = [(c, _queries(c, opts)) for c in ds.corpora]
    pairs = sum(len(qs) for _, qs in work) * len(ds.corpora)
    out: dict[str, dict] = {}
    for mode in modes:
        own: dict[str, list] = defaultdict(list)
        other: dict[str, list] = defaultdict(list)
        other_hits: list[int] = []
        with progress(total=pairs, desc=f"no-match {mode}", unit="q") as bar:
            for corpus, qs in work:
                for q in qs:
                    for target in ds.corpora:
                        req = SearchRequest(
                            query=q.text, project_id=target.project_id, mode=mode, limit=NO_MATCH_LIMIT, explain=True
                        )
                        hits = svc.search(req).results
                        into = own if target is corpus else other
                        for name, value in _top_figures(hits).items():
                            into[name].append(value)
                        if target is not corpus:
                            other_hits.append(len(hits))
                        bar.update()
        n_hits = np.asarray(other_hits, dtype=float)
        has_conf = any(c is not None for c in own["confidence"] + other["confidence"])
        row: dict = {
            "queries": len(own["score"]),
            "other_project_searches": len(other_hits),
            "with_hits": round(float((n_hits > 0).mean()), 4) if len(n_hits) else 0.0,
            "hits_mean": round(float(n_hits.mean()), 2) if len(n_hits) else 0.0,
        }
        for name in ("score", "cosine", "text"):
            row[f"top_{name}_own"] = distribution(own[name])
            row[f"top_{name}_other"] = distribution(other[name])
        row["confident_own"] = _share_at_least(own["confidence"], CONFIDENT) if has_conf else None
        row["confident_other"] = _share_at_least(other["confidence"], CONFIDENT) if has_conf else None
        out[mode] = row
    return {"limit": NO_MATCH_LIMIT, "confidence_at_least": CONFIDENT, "modes": out}


def distribution(values: Iterable[float | None]) -> dict:
    """Quantiles of the values that exist (a search with no hit has no top score)."""
    a = np.asarray([v for v in values if v is not None], dtype=float)
    if not len(a):
        return {"n": 0}
    q = np.percentile(a, [10, 50, 90])
    return {
        "n": len(a),
        "mean": round(float(a.mean()), 4),
        "min": round(float(a.min()), 4),
        "p10": round(float(q[0]), 4),
        "p50": round(float(q[1]), 4),
        "p90": round(float(q[2]), 4),
        "max": round(float(a.max()), 4),
    }


def _share_at_least(values: Sequence[float | None], bar: float) -> float:
    """Share of all searches (those without a hit count as not confident) whose top reached bar."""
    return round(sum(1 for v in values if v is not None and v >= bar) / len(values), 4) if values else 0.0


# -- spread across units ------------------------------------------------------------


def fold_of(query_id: str, folds: int = BEIR_FOLDS) -> int:
    """A query's fold: CRC-32 of its id, modulo folds (not Python's hash(), which is salted per
    process); the same folds as `ctxsearch tune`'s units."""
    return zlib.crc32(query_id.encode()) % folds


def spread(values: Iterable[float]) -> dict:
    """Mean, sample standard deviation (n - 1; 0 for a single unit), min and max of per-unit figures."""
    a = np.asarray(list(values), dtype=float)
    if not len(a):
        return {"mean": None, "std": None, "min": None, "max": None, "units": 0}
    return {
        "mean": round(float(a.mean()), 4),
        "std": round(float(a.std(ddof=1)) if len(a) > 1 else 0.0, 4),
        "min": round(float(a.min()), 4),
        "max": round(float(a.max()), 4),
        "units": len(a),
    }


def _unit_means(per_query: dict[str, np.ndarray], labels: Sequence[str]) -> dict[str, dict[str, float]]:
    lab = np.asarray(labels, dtype=object)
    for metric, v in per_query.items():
        if len(v) != len(lab):
            raise ValueError(f"{metric}: {len(v)} scores for {len(lab)} labels")
    return {
        name: {m: float(np.mean(np.asarray(v)[lab == name])) for m, v in per_query.items()}
        for name in dict.fromkeys(labels)
    }


def unit_spread(per_query: dict[str, np.ndarray], labels: Sequence[str]) -> dict[str, dict]:
    """Per metric, the spread of the unit means: `labels[i]` is the unit of query i (units
    without a query do not count)."""
    means = _unit_means(per_query, labels)
    return {m: spread(row[m] for row in means.values()) for m in per_query}


def breakdown(per_query: dict[str, np.ndarray], labels: Sequence[str]) -> dict[str, dict]:
    """Per label (query kind, unit), each metric's mean and the number of queries, sorted by label."""
    means = _unit_means(per_query, labels)
    counts = {name: sum(1 for x in labels if x == name) for name in means}
    return {
        name: {**{m: round(v, 4) for m, v in means[name].items()}, "queries": counts[name]}
        for name in sorted(means, key=str)
    }


def run(svc: Service, ds: Dataset, opts: EvalOptions, progress: Progress = _NoBar) -> dict:
    t0 = time.perf_counter()
    runner = {"beir": run_beir, "locomo": run_locomo, "sessions": run_sessions}[ds.kind]
    out = runner(svc, ds, opts, progress)
    out["modes"] = list(opts.modes)
    out["group"] = opts.group
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def parse_modes(value: str | Iterable[str]) -> tuple[str, ...]:
    items = [m.strip() for m in (value.split(",") if isinstance(value, str) else value) if m.strip()]
    bad = [m for m in items if m not in MODES]
    if bad or not items:
        raise ValueError(f"--modes: unknown mode {', '.join(bad) or '(none)'}; choose from {', '.join(MODES)}")
    return tuple(dict.fromkeys(items))
