"""Choose the ranking's settings by cross-validation, never on one set.

Each judged query is searched once through the service's SQL with a wide candidate pool,
keeping every candidate's cosine, idf-normalised BM25 (`text_norm`) and arm ranks. Any
fusion can then be replayed offline over the arms' top `candidates`, exactly as the SQL
would rank them, so a grid of settings costs no further searches. (The SQL also keeps only
the best of a session's documents with the same text; that changes no session's rank and
only moves other documents up, so the replay leaves it out; `ctxsearch eval` measures
the API with it.)

Units are what a setting must carry over between: SciFact's queries in five folds,
LoCoMo's conversations, agent-session projects. Leaving one unit out at a time, the
convex weight is chosen on all the other units of all three kinds of data (the mean of
each kind's headline metric) and scored on the one left out; the held-out scores' mean
and spread are what the README reports. The confidence calibration is fitted the same
way and its threshold behaviour is reported on agent-session queries run in their own
project and in every other one (where nothing is relevant).
"""

from __future__ import annotations

import json
import math
import zlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ctxsearch.domain.confidence import CALIBRATION, confidence
from ctxsearch.domain.grouping import rank_sessions
from ctxsearch.domain.query_shape import vector_weight
from ctxsearch.evals.datasets import Corpus, Dataset, Query
from ctxsearch.service.facade import Service
from ctxsearch.store.search import SearchParams, search

HEADLINE = {"beir": "ndcg@10", "locomo": "turn_recall@10", "sessions": "hit@1"}
POOL = 100  # candidates per arm read once per query; replays use up to this many
CANDIDATES = 50  # what a default search (limit 10) fetches per arm
_STEPS = [float(round(a, 2)) for a in np.arange(0.1, 0.76, 0.05)]
# (vector weight for words, for code-like queries); equal weights: one weight for every query.
WEIGHTS = tuple((p, c) for p in _STEPS if p >= 0.2 for c in _STEPS if c <= p)
THRESHOLDS = (0.1, 0.2, 0.3, 0.5, 0.7)


@dataclass
class Candidate:
    kind: str
    session_id: str
    event_id: str | None
    cosine: float | None
    text_norm: float
    vector_rank: int | None
    text_rank: int | None
    doc_id: int


@dataclass
class Record:
    kind: str  # the dataset's kind: beir, locomo or sessions
    dataset: str
    unit: str
    query: Query
    own: bool  # searched in its own project (False: another project, nothing is relevant)
    candidates: list[Candidate] = field(default_factory=list)


# -- collecting candidates -------------------------------------------------------


def unit_of(kind: str, corpus: Corpus, query: Query) -> str:
    if kind == "beir":
        return f"fold{zlib.crc32(query.id.encode()) % 5}"
    return corpus.name


def collect(svc: Service, datasets: list[Dataset], pool: int = POOL, progress=None) -> list[Record]:
    """Every judged query's candidates (and agent-session queries' in the other projects)."""
    records: list[Record] = []
    with svc.db.connection() as conn:
        for ds in datasets:
            for corpus in ds.corpora:
                others = [c for c in ds.corpora if c is not corpus] if ds.kind == "sessions" else []
                for q in corpus.queries:
                    qvec = svc.embedder.embed_query(q.text)
                    for target, own in [(corpus, True)] + [(o, False) for o in others]:
                        params = SearchParams(
                            query=q.text,
                            project_id=target.project_id,
                            limit=2 * pool,
                            candidates=pool,
                            fusion="convex",
                            context_weight=svc.settings.text_context_weight,
                            bm25_k1=svc.settings.bm25_k1,
                            bm25_b=svc.settings.bm25_b,
                        )
                        rows = search(conn=conn, params=params, query_vector=qvec)
                        rec = Record(ds.kind, ds.name, unit_of(ds.kind, corpus, q), q, own)
                        rec.candidates = [
                            Candidate(
                                r["kind"],
                                r["session_id"],
                                r["event_id"],
                                r["vector_score"],
                                r["text_norm"] or 0.0,
                                r["vector_rank"],
                                r["text_rank"],
                                r["doc_id"],
                            )
                            for r in rows
                        ]
                        records.append(rec)
                    if progress is not None:
                        progress.update()
    return records


# -- replaying a fusion ----------------------------------------------------------


def _pool(rec: Record, candidates: int) -> list[Candidate]:
    """The candidates a search with `candidates` per arm fuses (text-only ones keep their cosine)."""
    out = []
    for c in rec.candidates:
        in_vec = c.vector_rank is not None and c.vector_rank <= candidates
        in_txt = c.text_rank is not None and c.text_rank <= candidates
        if in_vec or in_txt:
            out.append(c if in_txt else Candidate(**{**c.__dict__, "text_norm": 0.0, "text_rank": None}))
    return out


Scorer = Callable[[Record, Candidate], float]


def ranked(rec: Record, scorer: Scorer, candidates: int = CANDIDATES) -> list[Candidate]:
    return sorted(_pool(rec, candidates), key=lambda c: (-scorer(rec, c), c.doc_id))


def convex(weights: tuple[float, float]) -> Scorer:
    """The convex fusion with vector weight `prose` for words, down to `code` for code-like
    queries (ctxsearch.domain.query_shape), as the service weighs them."""
    prose, code = weights

    def score(rec: Record, c: Candidate) -> float:
        alpha = vector_weight(rec.query.text, prose, code)
        return alpha * (c.cosine or 0.0) + (1 - alpha) * c.text_norm

    return score


def rrf(k: float = 60, w_vector: float = 1.0, w_text: float = 1.5) -> Scorer:
    def score(rec: Record, c: Candidate) -> float:
        vector = w_vector / (k + c.vector_rank) if c.vector_rank else 0.0
        return vector + (w_text / (k + c.text_rank) if c.text_rank else 0.0)

    return score


def text_arm(rec: Record, c: Candidate) -> float:
    return c.text_norm if c.text_rank else -math.inf


def vector_arm(rec: Record, c: Candidate) -> float:
    return c.cosine if c.vector_rank else -math.inf


def _dcg(gains: list[float]) -> float:
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


def metrics(rec: Record, hits: list[Candidate]) -> dict[str, float]:
    """The kind's metrics for one query: what `ctxsearch eval` reports."""
    q = rec.query
    sessions = list(dict.fromkeys(h.session_id for h in hits))
    if rec.kind == "locomo":
        turns = [h.event_id for h in hits if h.kind == "event"][:10]
        return {
            "turn_recall@10": len(set(turns) & set(q.relevant)) / len(q.relevant),
            "session_recall@5": len(set(sessions[:5]) & q.sessions) / len(q.sessions),
        }
    return session_metrics(rec, sessions)


def per_query(records: list[Record], scorer, candidates: int = CANDIDATES) -> list[tuple[Record, dict]]:
    return [(r, metrics(r, ranked(r, scorer, candidates))) for r in records if r.own]


def _mean(rows: list[tuple[Record, dict]], metric: str, keep=lambda r: True) -> float:
    vals = [m[metric] for r, m in rows if keep(r) and metric in m]
    return float(np.mean(vals)) if vals else float("nan")


def pooled(rows: list[tuple[Record, dict]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for r, m in rows:
        for name in m:
            out[r.dataset].setdefault(name, None)
    for ds, names in out.items():
        for name in names:
            out[ds][name] = round(_mean(rows, name, lambda r, ds=ds: r.dataset == ds), 4)
    return dict(out)


def _training(dataset: str, held_dataset: str, held_unit: str) -> Callable[[Record], bool]:
    return lambda r: r.dataset == dataset and (r.dataset, r.unit) != (held_dataset, held_unit)


def leave_one_unit_out(table: dict, headline: dict[str, str]) -> dict:
    """`table`: setting -> per-query (record, metrics). Each unit is scored with the setting
    that does best on all other units (the mean over kinds of data of `headline[kind]`)."""
    settings = list(table)
    any_rows = next(iter(table.values()))
    kinds = {r.dataset: r.kind for r, _ in any_rows}
    units = sorted({(r.dataset, r.unit) for r, _ in any_rows})
    held: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    held_rows: list[tuple[Record, dict]] = []  # every query, scored with its unit's held-out choice
    chosen = []
    for ds, unit in units:

        def objective(setting, ds=ds, unit=unit):
            return np.mean([_mean(table[setting], headline[k], _training(d, ds, unit)) for d, k in kinds.items()])

        best = max(settings, key=objective)
        chosen.append(best)
        in_unit = [(r, m) for r, m in table[best] if r.dataset == ds and r.unit == unit]
        held_rows += in_unit
        for name in in_unit[0][1]:
            held[ds][name].append(_mean(in_unit, name))
    spread = {
        ds: {
            name: {
                "mean": round(float(np.mean(v)), 4),
                "std": round(float(np.std(v)), 4),
                "min": round(float(np.min(v)), 4),
                "max": round(float(np.max(v)), 4),
                "units": len(v),
            }
            for name, v in names.items()
        }
        for ds, names in held.items()
    }
    return {
        "chosen_per_fold": [c if isinstance(c, float | int) else list(c) for c in chosen],
        "chosen": max(set(chosen), key=chosen.count),
        "held_out": spread,
        "held_out_pooled": pooled(held_rows),
        "grid": {str(k): pooled(rows) for k, rows in table.items()},
    }


def cross_validate(records: list[Record], grid=WEIGHTS, candidates: int = CANDIDATES) -> dict:
    """Leave one unit out: choose the convex weights on the rest of all three kinds, score the unit."""
    out = leave_one_unit_out({w: per_query(records, convex(w), candidates) for w in grid}, HEADLINE)
    out["alpha"] = tuple(out.pop("chosen"))
    return out


# group=session: what a session search is scored by, per kind of data.
SESSION_HEADLINE = {"beir": "ndcg@10", "locomo": "session_recall@5", "sessions": "hit@1"}
EVIDENCE = ((0.0, 0), *((w, n) for w in (0.1, 0.2, 0.3, 0.5) for n in (1, 2, 3, 5)))
SESSION_POOL = 100  # per arm: the documents a session search groups


def session_metrics(rec: Record, sessions: list[str]) -> dict[str, float]:
    """The kind's metrics for one query from its ranked sessions (a BEIR document is a session)."""
    q = rec.query
    if rec.kind == "beir":
        ideal = _dcg(sorted(q.relevant.values(), reverse=True)[:10])
        return {"ndcg@10": _dcg([q.relevant.get(s, 0) for s in sessions[:10]]) / ideal}
    if rec.kind == "locomo":
        return {
            "session_hit@1": float(bool(sessions) and sessions[0] in q.sessions),
            "session_recall@5": len(set(sessions[:5]) & q.sessions) / len(q.sessions),
        }
    expected = next(iter(q.sessions))
    rank = sessions.index(expected) + 1 if expected in sessions[:10] else None
    return {"hit@1": float(rank == 1), "mrr@10": 1 / rank if rank else 0.0}


def cross_validate_sessions(records: list[Record], alpha: float, grid=EVIDENCE) -> dict:
    """group=session: choose how much a session's further hits add to its best (rank_sessions)."""
    scorer = convex(alpha)
    table = {}
    for weight, hits in grid:
        rows = []
        for rec in (r for r in records if r.own):
            docs = ranked(rec, scorer, SESSION_POOL)
            order = rank_sessions(
                [(d.session_id, scorer(rec, d)) for d in docs], evidence_weight=weight, evidence_hits=hits
            )
            rows.append((rec, session_metrics(rec, [s.session_id for s in order])))
        table[(weight, hits)] = rows
    return leave_one_unit_out(table, SESSION_HEADLINE)


# -- confidence ------------------------------------------------------------------


def _relevant(rec: Record, c: Candidate) -> float:
    if not rec.own:
        return 0.0
    q = rec.query
    if rec.kind == "beir":
        return float(c.session_id in q.relevant)
    if rec.kind == "locomo":
        return float(c.event_id in q.relevant) if c.kind == "event" else float(c.session_id in q.sessions)
    return float(c.session_id in q.sessions)


def _features(mode: str, c: Candidate) -> list[float]:
    cosine = (c.cosine or 0.0) if mode != "text" else 0.0
    return [cosine, c.text_norm if mode != "vector" else 0.0, 1.0]


def _confidence(mode: str, c: Candidate, calibration) -> float:
    x = _features(mode, c)
    return confidence(mode, x[0], x[1], calibration)


def _scorer(mode: str, alpha: float):
    return {"hybrid": convex(alpha), "text": text_arm, "vector": vector_arm}[mode]


def _group(rec: Record) -> str:
    return rec.dataset if rec.own else f"{rec.dataset} (other projects)"


def calibration_rows(records: list[Record], mode: str, alpha: float, top: int = 10):
    X, y, groups = [], [], []
    for rec in records:
        for c in ranked(rec, _scorer(mode, alpha))[:top]:
            X.append(_features(mode, c))
            y.append(_relevant(rec, c))
            groups.append(_group(rec))
    return np.asarray(X), np.asarray(y), np.asarray(groups)


def fit_logistic(X: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float = 1e-4, steps: int = 50) -> np.ndarray:
    """Weighted logistic regression by Newton's method (a handful of features)."""
    coef = np.zeros(X.shape[1])
    active = X.std(axis=0) > 0
    active[-1] = True
    Xa = X[:, active]
    c = np.zeros(Xa.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-Xa @ c))
        grad = Xa.T @ (w * (p - y)) + l2 * c
        hess = (Xa * (w * p * (1 - p))[:, None]).T @ Xa + l2 * np.eye(Xa.shape[1])
        step = np.linalg.solve(hess, grad)
        c -= step
        if np.abs(step).max() < 1e-8:
            break
    coef[active] = c
    return coef


def fit_calibration(records: list[Record], alpha: float) -> dict[str, tuple[float, float, float]]:
    """Per mode: each group (kind of data, and queries in other projects) weighs the same."""
    out = {}
    for mode in ("hybrid", "vector", "text"):
        X, y, groups = calibration_rows(records, mode, alpha)
        sizes = {g: (groups == g).sum() for g in set(groups)}
        w = np.asarray([1.0 / sizes[g] for g in groups])
        out[mode] = tuple(round(float(v), 3) for v in fit_logistic(X, y, w))
    return out


def threshold_report(records: list[Record], calibration: dict, alpha: float, mode: str = "hybrid") -> dict:
    """At each threshold: each kind's headline metric over the hits kept, and for queries
    in other projects the hits kept per query and the share with none."""
    out = {}
    for t in (0.0, *THRESHOLDS):
        row: dict[str, dict] = {}
        by_group: dict[str, list] = defaultdict(list)
        for rec in records:
            hits = ranked(rec, _scorer(mode, alpha))[:10]
            kept = [h for h in hits if _confidence(mode, h, calibration) >= t]
            if rec.own:
                by_group[rec.dataset].append(metrics(rec, kept)[HEADLINE[rec.kind]])
                if rec.kind == "sessions":
                    by_group[f"{rec.dataset}: top hit kept"].append(float(bool(kept) and kept[0] is hits[0]))
            else:
                by_group[f"{rec.dataset} (other projects): hits"].append(len(kept))
                by_group[f"{rec.dataset} (other projects): none"].append(float(not kept))
        for g, v in by_group.items():
            row[g] = round(float(np.mean(v)), 4)
        out[str(t)] = row
    return out


def calibration_error(records: list[Record], calibration: dict, alpha: float, mode: str = "hybrid") -> dict:
    """Expected calibration error per group (10 equal-width bins over the top 10 hits)."""
    X, y, groups = calibration_rows(records, mode, alpha)
    p = np.asarray([confidence(mode, x[0], x[1], calibration) for x in X])
    out = {}
    for g in sorted(set(groups)):
        s = groups == g
        bins = np.minimum((p[s] * 10).astype(int), 9)
        ece = sum(abs(p[s][bins == b].mean() - y[s][bins == b].mean()) * (bins == b).sum() for b in set(bins))
        out[g] = {
            "ece": round(float(ece / s.sum()), 4),
            "mean_p": round(float(p[s].mean()), 4),
            "rate": round(float(y[s].mean()), 4),
        }
    return out


def cross_validated_thresholds(records: list[Record], alpha: float) -> dict:
    """The calibration fitted without one agent-session project, scored on that project's
    queries (own and in the other projects): how the threshold carries to a new project."""
    held = [r for r in records if r.kind == "sessions"]
    projects = sorted({r.unit for r in held})
    rows: dict[str, list] = defaultdict(list)
    for unit in projects:
        cal = fit_calibration([r for r in records if not (r.kind == "sessions" and r.unit == unit)], alpha)
        rep = threshold_report([r for r in held if r.unit == unit], cal, alpha)
        for t, vals in rep.items():
            rows[t].append(vals)
    return {t: {k: round(float(np.mean([v[k] for v in vs if k in v])), 4) for k in vs[0]} for t, vs in rows.items()}


def run(svc: Service, datasets: list[Dataset], progress=None) -> dict:
    records = collect(svc, datasets, progress=progress)
    cv = cross_validate(records)
    alpha = cv["alpha"]
    baselines = {
        "text": pooled(per_query(records, text_arm)),
        "vector": pooled(per_query(records, vector_arm)),
        "rrf (k 60, text 1.5)": pooled(per_query(records, rrf())),
        f"convex {alpha[0]} (code {alpha[1]})": pooled(per_query(records, convex(alpha))),
        f"convex {alpha[0]}, one weight": pooled(per_query(records, convex((alpha[0], alpha[0])))),
    }
    calibration = fit_calibration(records, alpha)
    return {
        "queries": {ds.name: sum(len(c.queries) for c in ds.corpora) for ds in datasets},
        "cv": cv,
        "sessions_cv": cross_validate_sessions(records, alpha),
        "pooled": baselines,
        "calibration": {"fitted": calibration, "in_use": CALIBRATION},
        "calibration_error": calibration_error(records, calibration, alpha),
        "thresholds": threshold_report(records, calibration, alpha),
        "thresholds_held_out": cross_validated_thresholds(records, alpha),
    }


def markdown(result: dict) -> str:
    cv = result["cv"]
    lines = [
        "convex weights of the vector arm (words, code-like queries) chosen per held-out unit: "
        f"{cv['chosen_per_fold']} (most often {cv['alpha']})",
        "",
        "| data | metric | " + " | ".join(result["pooled"]) + " | held out | per unit (mean ± sd, min–max, units) |",
        "| --- | --- | " + " | ".join("---" for _ in result["pooled"]) + " | --- | --- |",
    ]
    for ds, names in cv["held_out"].items():
        for name, s in names.items():
            arms = " | ".join(f"{result['pooled'][m][ds][name]:.3f}" for m in result["pooled"])
            pool = cv["held_out_pooled"][ds][name]
            lines.append(
                f"| {ds} | {name} | {arms} | **{pool:.3f}** | "
                f"{s['mean']:.3f} ± {s['std']:.3f} ({s['min']:.3f}–{s['max']:.3f}, {s['units']}) |"
            )
    sv = result["sessions_cv"]
    lines += [
        "",
        f"group=session, evidence (weight, next hits) chosen per held-out unit: {sv['chosen_per_fold']}",
        "",
        "| data | metric | held out (mean ± sd, min–max, units) |",
        "| --- | --- | --- |",
    ]
    for ds, names in sv["held_out"].items():
        for name, s in names.items():
            lines.append(
                f"| {ds} | {name} | {s['mean']:.3f} ± {s['std']:.3f} ({s['min']:.3f}–{s['max']:.3f}, {s['units']}) |"
            )
    lines += ["", "hybrid confidence, held out by agent-session project:", ""]
    rep = result["thresholds_held_out"]
    keys = list(next(iter(rep.values())))
    lines.append("| threshold | " + " | ".join(keys) + " |")
    lines.append("| --- | " + " | ".join("---" for _ in keys) + " |")
    for t, vals in rep.items():
        lines.append(f"| {t} | " + " | ".join(str(vals.get(k)) for k in keys) + " |")
    lines += ["", "calibration fitted on all units: " + json.dumps(result["calibration"]["fitted"])]
    return "\n".join(lines)
