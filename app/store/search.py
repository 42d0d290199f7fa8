"""The read path: vector and full-text candidates from both tiers, fused in one SQL statement."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from ctxsearch.domain.documents import text_query
from ctxsearch.domain.query_shape import vector_weight
from ctxsearch.store.locks import lock_warm_for_read

HEADLINE_OPTIONS = (
    'MaxWords=40, MinWords=12, ShortWord=2, MaxFragments=2, FragmentDelimiter=" … ", StartSel=<b>, StopSel=</b>'
)
SNIPPET_SOURCE_CHARS = 20_000


@dataclass
class SearchParams:
    query: str
    project_id: str
    session_id: str | None = None
    types: list[str] | None = None
    files: list[str] | None = None
    since: datetime | None = None
    until: datetime | None = None
    kinds: list[str] | None = None
    limit: int = 10
    offset: int = 0
    mode: str = "hybrid"
    fusion: str = "convex"
    rrf_k: int = 60
    weight_vector: float = 1.0
    weight_text: float = 1.0
    candidates: int = 50  # per arm, before fusion
    # Paging: documents above max_id (the first page's snapshot) are left out, except a
    # session's rewritten summary; already returned documents and summaries are skipped.
    max_id: int | None = None
    exclude_ids: list[int] = field(default_factory=list)
    exclude_summaries: list[str] = field(default_factory=list)
    # Sessions already returned by a `group: "session"` search: left out after fusion (like
    # exclude_ids), so that every page ranks the same fused list.
    exclude_sessions: list[str] = field(default_factory=list)
    snippets: bool = True  # False: no headline per row (sessions make them for their evidence only)
    bm25_k1: float = 1.2
    bm25_b: float = 0.75
    text_pool: int = 200  # warm candidates from the top lists scored exactly by BM25
    match_pool: int = 5000  # warm matches (best by ts_rank) scored when the lists are not used
    context_weight: float = 0.5  # a term from the previous event counts this much
    text_exact: bool = False  # read every warm match instead of the top lists (slow on large projects)


def tuning(settings, fusion: str | None = None, query: str = "") -> dict:
    """The service's ranking settings as SearchParams fields for `fusion` (default: the
    server's) and this query; a request may override the fusion, its weights and RRF's k."""
    fusion = fusion or settings.fusion
    if fusion == "convex":
        alpha = vector_weight(query, settings.convex_weight_vector, settings.convex_weight_vector_code)
        weights = (alpha, 1 - alpha)
    else:
        weights = (settings.weight_vector, settings.weight_text)
    return {
        "fusion": fusion,
        "rrf_k": settings.rrf_k,
        "weight_vector": weights[0],
        "weight_text": weights[1],
        "bm25_k1": settings.bm25_k1,
        "bm25_b": settings.bm25_b,
        "text_pool": settings.text_pool,
        "context_weight": settings.text_context_weight,
    }


def file_patterns(files: list[str]) -> list[str]:
    """LIKE patterns: `*` globs, a trailing `/` for a folder, a bare name for that file anywhere."""
    out: list[str] = []
    for f in files:
        esc = f.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        if "*" in f:
            out.append(esc.replace("*", "%"))
        elif f.endswith("/"):
            out.append(esc + "%")
        else:
            out.append(esc)
            if "/" not in f:
                out.append("%/" + esc)
    return out


# A page after the first sees the first page's documents, and a rewritten summary of a session
# that existed then (it replaces one the first page saw).
_SNAPSHOT = """({0}.id <= %(max_id)s OR ({0}.kind = 'summary' AND EXISTS (
    SELECT 1 FROM documents o WHERE o.project_id = {0}.project_id AND o.session_id = {0}.session_id
    AND o.id <= %(max_id)s)))"""


def _narrowed(p: SearchParams) -> bool:
    """Whether a filter beyond the project applies (a page's snapshot leaves out only
    documents newer than the first page: not a filter that empties the top lists)."""
    return bool(p.session_id is not None or p.types or p.kinds or p.since is not None or p.until is not None or p.files)


def _filters(alias: str, p: SearchParams) -> sql.Composable:
    a = sql.Identifier(alias)
    parts = [sql.SQL("{}.project_id = %(project_id)s").format(a)]
    if p.session_id is not None:
        parts.append(sql.SQL("{}.session_id = %(session_id)s").format(a))
    if p.types:
        parts.append(sql.SQL("{}.type = ANY(%(types)s)").format(a))
    if p.kinds:
        parts.append(sql.SQL("{}.kind = ANY(%(kinds)s)").format(a))
    if p.since is not None:
        parts.append(sql.SQL("{}.ts >= %(since)s").format(a))
    if p.until is not None:
        parts.append(sql.SQL("{}.ts <= %(until)s").format(a))
    if p.files:
        parts.append(
            sql.SQL(
                "EXISTS (SELECT 1 FROM unnest({}.files) AS f(path) WHERE f.path LIKE ANY(%(file_patterns)s))"
            ).format(a)
        )
    if p.max_id is not None:
        parts.append(sql.SQL(_SNAPSHOT).format(a))
    return sql.SQL(" AND ").join(parts)


# Each arm reads the warm view and the hot rows above its watermark, drops warm rows
# whose document has since been replaced, and ranks what is left.
_VECTOR_ARM = """
vec AS (
    SELECT u.id, u.dist, row_number() OVER (ORDER BY u.dist, u.id) AS rank
    FROM (
        (SELECT w.id, w.embedding <=> %(qvec)b AS dist FROM warm_docs w
         WHERE {warm_filters} ORDER BY w.embedding <=> %(qvec)b LIMIT %(candidates)s)
        UNION ALL
        (SELECT d.id, d.embedding <=> %(qvec)b AS dist FROM documents d
         WHERE {hot_filters} AND d.id > (SELECT watermark FROM tier_state) AND d.embedding IS NOT NULL
         ORDER BY 2 LIMIT %(candidates)s)
    ) u
    WHERE EXISTS (SELECT 1 FROM documents x WHERE x.project_id = %(project_id)s AND x.id = u.id)
    ORDER BY u.dist, u.id LIMIT %(candidates)s
)"""

# The text arm scores with Okapi BM25 inside the database, in two steps. Warm candidates
# come from the generation's top lists (sql/repeatable/R__tiers.sql): per query lexeme, its best documents
# with their term weights, so summing idf x weight ranks the candidates without reading
# a single document (a common lexeme's list holds only its `text_top_docs` best
# documents, a rarer lexeme's all of them). The best `text_pool` of those, and every hot
# match, are then scored exactly. With filters beyond the project, every listed
# document is checked against them; when fewer than the page needs pass, the warm
# matches are read instead (ranked by ts_rank, at most `match_pool`), as they are
# always with `text_exact` (the reference the bench measures the lists against).
#
# Exact scores: term frequencies are the position counts of the query's lexemes in the
# stored tsvector, cut down to those lexemes first (setweight marks them, ts_filter
# keeps them: C code, no row per lexeme of the document), where a position of the
# previous event's text (weight D) counts `context_weight`; document frequencies and
# lengths come from the warm generation's statistics plus the hot documents, counted
# here, so that even a project that has never been through a rebuild is scored exactly.
_TEXT_HEAD = """
qlex AS MATERIALIZED (
    SELECT u.lexeme, coalesce(array_length(u.positions, 1), 1) AS qtf
    FROM unnest(to_tsvector('english'::regconfig, %(query)s)) AS u
),
qarr AS MATERIALIZED (SELECT coalesce(array_agg(lexeme), '{{}}') AS lexemes FROM qlex),
tstat AS MATERIALIZED (
    SELECT (w.n_docs + h.n_docs)::float8 AS n_docs,
           greatest((w.sum_len + h.sum_len)::float8 / nullif(w.n_docs + h.n_docs, 0), 1) AS avgdl
    FROM (SELECT count(*) AS n_docs, coalesce(sum(tlen), 0) AS sum_len FROM documents
          WHERE project_id = %(project_id)s AND id > (SELECT watermark FROM tier_state)) h
    CROSS JOIN (SELECT coalesce(sum(n_docs), 0) AS n_docs, coalesce(sum(sum_len), 0) AS sum_len
                FROM warm_text_stats WHERE project_id = %(project_id)s) w
),"""

# Warm candidates from the top lists, ranked by approximate score (warm document frequencies).
_TEXT_LISTS = """
tlq AS MATERIALIZED (
    SELECT tt.ids, tt.weights, l.qtf * ctxsearch_idf(s.n_docs, wd.df) AS iw
    FROM qlex l
    JOIN warm_text_df wd ON wd.project_id = %(project_id)s AND wd.lexeme = l.lexeme
    JOIN warm_text_top tt ON tt.project_id = %(project_id)s AND tt.lexeme = l.lexeme
    CROSS JOIN tstat s
),
tlist AS MATERIALIZED (
    SELECT u.id, sum(q.iw * u.tw) AS approx
    FROM tlq q CROSS JOIN LATERAL unnest(q.ids, q.weights) AS u(id, tw)
    GROUP BY u.id
),
twarm AS MATERIALIZED (
    SELECT w.id, w.tsv, w.tlen
    FROM (SELECT id, approx FROM tlist ORDER BY approx DESC, id {pre_limit}) a
    JOIN warm_docs w ON w.project_id = %(project_id)s AND w.id = a.id
    WHERE {warm_filters}
    ORDER BY a.approx DESC, a.id LIMIT %(text_pool)s
),"""

# Every warm match, ranked by ts_rank: with `text_exact`, or when filters leave too few listed.
_TEXT_MATCHES = """
    (SELECT w.id, w.tsv, w.tlen, false AS hot, true AS keep FROM warm_docs w, qry q
     WHERE {warm_filters} AND w.tsv @@ q.tq {fallback}
     ORDER BY ts_rank(w.tsv, q.tq, 1) DESC LIMIT %(match_pool)s)"""

_FALLBACK = "AND (SELECT count(*) FROM twarm) < %(candidates)s AND w.id NOT IN (SELECT id FROM twarm)"

# A generation without top lists for the project (built before it carried them, until the
# worker's rebuild after a migration: sql/0002_warm_version.sql): its matches are read instead.
_NO_LISTS = "AND NOT EXISTS (SELECT 1 FROM warm_text_top t WHERE t.project_id = %(project_id)s)"

_TEXT_CANDIDATES = """
tcand AS MATERIALIZED (
    {warm}
    UNION ALL
    (SELECT d.id, d.tsv, d.tlen, true AS hot, ({hot_filters}) AS keep FROM documents d, qry q
     WHERE d.project_id = %(project_id)s AND d.id > (SELECT watermark FROM tier_state) AND d.tsv @@ q.tq)
),"""

_TEXT_SCORE = """
tterm AS MATERIALIZED (
    SELECT c.id, c.hot, c.keep, c.tlen::float8 AS tlen, u.lexeme,
           coalesce(cardinality(u.positions), 1)
         - (1 - %(context_weight)s) * coalesce(cardinality(array_positions(u.weights, 'D')), 0) AS tf
    FROM tcand c CROSS JOIN qarr a
    CROSS JOIN LATERAL unnest(c.tsv) AS u
    WHERE u.lexeme = ANY(a.lexemes)
),
tidf AS MATERIALIZED (
    SELECT l.lexeme, l.qtf * ctxsearch_idf(s.n_docs, l.df) AS w
    FROM (SELECT l.lexeme, l.qtf::float8 AS qtf, (coalesce(wd.df, 0) + coalesce(hd.df, 0))::float8 AS df
          FROM qlex l
          LEFT JOIN warm_text_df wd ON wd.project_id = %(project_id)s AND wd.lexeme = l.lexeme
          LEFT JOIN (SELECT lexeme, count(*) AS df FROM tterm WHERE hot GROUP BY lexeme) hd ON hd.lexeme = l.lexeme) l
    CROSS JOIN tstat s
),
txt AS (
    SELECT u.id, u.tscore, row_number() OVER (ORDER BY u.tscore DESC, u.id) AS rank
    FROM (
        SELECT t.id, sum(i.w * t.tf * (%(k1)s + 1) / (t.tf + %(k1)s * (1 - %(b)s + %(b)s * t.tlen / s.avgdl))) AS tscore
        FROM tterm t JOIN tidf i USING (lexeme) CROSS JOIN tstat s
        WHERE t.keep
        GROUP BY t.id
    ) u
    WHERE EXISTS (SELECT 1 FROM documents x WHERE x.project_id = %(project_id)s AND x.id = u.id)
    ORDER BY u.tscore DESC, u.id LIMIT %(candidates)s
)"""

_EMPTY_VECTOR_ARM = "vec AS (SELECT NULL::bigint AS id, NULL::float8 AS dist, NULL::bigint AS rank WHERE false)"
_EMPTY_TEXT_ARM = "txt AS (SELECT NULL::bigint AS id, NULL::float8 AS tscore, NULL::bigint AS rank WHERE false)"

# Each candidate with both arms' evidence: its cosine (computed for a text-only candidate
# too, so that score fusion never guesses a missing arm) and its BM25 score over the BM25
# score a document matching every query term once at average length would get (the sum of
# the query's idf weights), a scale that means the same for any query length and project.
_SCORED = """
scored AS (
    SELECT coalesce(v.id, t.id) AS id,
           v.rank AS vector_rank, t.rank AS text_rank,
           {vector_score} AS vector_score, t.tscore::float8 AS text_score,
           {text_norm} AS text_norm
    FROM vec v FULL OUTER JOIN txt t ON t.id = v.id
)"""

# A text-only candidate's cosine, from its stored vector (NULL while it waits to be embedded).
_COSINE_ANY = """coalesce(1 - v.dist, (SELECT 1 - (e.embedding <=> %(qvec)b) FROM documents e
              WHERE e.project_id = %(project_id)s AND e.id = t.id))"""

_IDF_SUM = "(SELECT greatest(sum(w), 1e-9) FROM tidf)"

# Each fusion names its arms' parts; the score is their sum (explain shows both).
_FUSED = """
fused AS (
    SELECT p.*, p.vector_part + p.text_part AS score
    FROM ({parts}) p
)"""

_PARTS_RRF = """SELECT s.*, coalesce(%(w_vector)s / (%(rrf_k)s + s.vector_rank), 0) AS vector_part,
                  coalesce(%(w_text)s / (%(rrf_k)s + s.text_rank), 0) AS text_part
           FROM scored s"""

# Convex combination of the arms' scores on fixed scales (cosine, idf-normalised BM25):
# unlike ranks, a weak arm's tail cannot outvote a strong match of the other arm.
_PARTS_CONVEX = """SELECT s.*, %(w_vector)s * coalesce(s.vector_score, 0) AS vector_part,
                  %(w_text)s * coalesce(s.text_norm, 0) AS text_part
           FROM scored s"""

# Weighted fusion: each arm's score min-max scaled over its candidates, then mixed.
_PARTS_WEIGHTED = """SELECT id, vector_rank, text_rank, vector_score, text_score, text_norm,
           %(w_vector)s * coalesce((vector_score - vmin) / nullif(vmax - vmin, 0), CASE WHEN vector_score IS NULL THEN 0 ELSE 1 END) AS vector_part,
           %(w_text)s * coalesce((text_score - tmin) / nullif(tmax - tmin, 0), CASE WHEN text_score IS NULL THEN 0 ELSE 1 END) AS text_part
    FROM (
        SELECT s.*, min(s.vector_score) OVER () AS vmin, max(s.vector_score) OVER () AS vmax,
               min(s.text_score) OVER () AS tmin, max(s.text_score) OVER () AS tmax
        FROM scored s
    ) s"""

_FUSIONS = {"rrf": _PARTS_RRF, "convex": _PARTS_CONVEX, "weighted": _PARTS_WEIGHTED}

_HEADLINE = "ts_headline('english', left(d.body, {snippet_chars}), q.tq, %(headline)s)"

_FINAL = """
SELECT f.id AS doc_id, f.score, f.vector_rank, f.text_rank, f.vector_score, f.text_score, f.text_norm,
       f.vector_part, f.text_part,
       d.kind, d.project_id, d.session_id, d.event_id, d.type, d.title, d.files, d.ts,
       {snippet} AS snippet,
       numnode(q.tq) = 0 AS empty_query,
       coalesce(%(max_id)s::bigint, (SELECT max(m.id) FROM documents m WHERE m.project_id = %(project_id)s)) AS snapshot_id
FROM (
    SELECT u.* FROM (
        SELECT fused.*, row_number() OVER (PARTITION BY t.session_id, t.twin ORDER BY fused.score DESC, fused.id) AS twin_rank
        FROM fused
        CROSS JOIN LATERAL (SELECT x.session_id, md5(x.title || x.body) AS twin FROM documents x
                            WHERE x.project_id = %(project_id)s AND x.id = fused.id) t
        WHERE {exclude}
    ) u
    WHERE u.twin_rank = 1
    ORDER BY u.score DESC, u.id LIMIT %(limit)s OFFSET %(offset)s
) f
JOIN documents d ON d.project_id = %(project_id)s AND d.id = f.id
CROSS JOIN qry q
ORDER BY f.score DESC, f.id
"""

# A document with the same title and text as another of its session ("Run the tests again.",
# an error repeated at every try) is its twin: only the best of them is a hit, and once one
# was returned, no later page returns another.
_SEEN_TWIN = """NOT EXISTS (SELECT 1 FROM documents s WHERE s.project_id = %(project_id)s AND s.id = ANY(%(exclude_ids)s)
    AND s.session_id = t.session_id AND md5(s.title || s.body) = t.twin)"""

# A session, once returned by a group=session search, is not returned again.
_SEEN_SESSION = """NOT EXISTS (SELECT 1 FROM documents s WHERE s.project_id = %(project_id)s AND s.id = fused.id
    AND s.session_id = ANY(%(exclude_sessions)s))"""

# A session's summary, once returned, is not returned again even after it is rewritten.
_SEEN_SUMMARY = """NOT EXISTS (SELECT 1 FROM documents s WHERE s.project_id = %(project_id)s AND s.id = fused.id
    AND s.kind = 'summary' AND s.session_id = ANY(%(exclude_summaries)s))"""


def _text_arm(p: SearchParams, warm: sql.Composable, hot: sql.Composable) -> sql.Composable:
    parts = [sql.SQL(_TEXT_HEAD).format()]
    if p.text_exact:
        warm_rows = sql.SQL(_TEXT_MATCHES).format(warm_filters=warm, fallback=sql.SQL(""))
    else:
        narrowed = _narrowed(p)
        # Unfiltered, the best listed documents are all it needs to read.
        pre_limit = sql.SQL("" if narrowed else "LIMIT %(text_pool)s")
        parts.append(sql.SQL(_TEXT_LISTS).format(pre_limit=pre_limit, warm_filters=warm))
        warm_rows = sql.SQL("(SELECT id, tsv, tlen, false AS hot, true AS keep FROM twarm)")
        fallback = sql.SQL(_FALLBACK if narrowed else _NO_LISTS)
        warm_rows = sql.SQL("{} UNION ALL {}").format(
            warm_rows, sql.SQL(_TEXT_MATCHES).format(warm_filters=warm, fallback=fallback)
        )
    parts.append(sql.SQL(_TEXT_CANDIDATES).format(warm=warm_rows, hot_filters=hot))
    parts.append(sql.SQL(_TEXT_SCORE).format())
    return sql.Composed(parts)


def build_search_sql(p: SearchParams) -> sql.Composed:
    warm = _filters("w", p)
    hot = _filters("d", p)
    ctes = [sql.SQL("qry AS (SELECT ctxsearch_query(%(query)s) AS tq)")]
    ctes.append(
        sql.SQL(_VECTOR_ARM if p.mode in ("hybrid", "vector") else _EMPTY_VECTOR_ARM).format(
            warm_filters=warm, hot_filters=hot
        )
    )
    if p.mode in ("hybrid", "text"):
        ctes.append(_text_arm(p, warm, hot))
    else:
        ctes.append(sql.SQL(_EMPTY_TEXT_ARM))
    vector_score = {"hybrid": _COSINE_ANY, "vector": "1 - v.dist", "text": "NULL::float8"}[p.mode]
    text_norm = "NULL::float8" if p.mode == "vector" else f"coalesce(t.tscore::float8, 0) / {_IDF_SUM}"
    ctes.append(sql.SQL(_SCORED).format(vector_score=sql.SQL(vector_score), text_norm=sql.SQL(text_norm)))
    ctes.append(sql.SQL(_FUSED).format(parts=sql.SQL(_FUSIONS[p.fusion])))
    exclude = [sql.SQL("true")]
    if p.exclude_ids:
        exclude.append(sql.SQL("id <> ALL(%(exclude_ids)s)"))
        exclude.append(sql.SQL(_SEEN_TWIN))
    if p.exclude_summaries:
        exclude.append(sql.SQL(_SEEN_SUMMARY))
    if p.exclude_sessions:
        exclude.append(sql.SQL(_SEEN_SESSION))
    snippet = (
        sql.SQL(_HEADLINE).format(snippet_chars=sql.Literal(SNIPPET_SOURCE_CHARS))
        if p.snippets
        else sql.SQL("''::text")
    )
    final = sql.SQL(_FINAL).format(snippet=snippet, exclude=sql.SQL(" AND ").join(exclude))
    return sql.SQL("WITH {} {}").format(sql.SQL(",").join(ctes), final)


def _arm_weights(p: SearchParams) -> dict[str, float]:
    """The arms' weights as the fusion uses them: a convex combination's sum to 1."""
    wv, wt = float(p.weight_vector), float(p.weight_text)
    if p.fusion == "convex":
        total = wv + wt
        wv, wt = (wv / total, wt / total) if total > 0 else (0.5, 0.5)
    return {"w_vector": wv, "w_text": wt}


def search(*, conn: psycopg.Connection, params: SearchParams, query_vector: np.ndarray | None) -> list[dict]:
    """Run one hybrid search; returns rows ordered by fused score."""
    if params.mode in ("hybrid", "vector") and query_vector is None:
        raise ValueError("a query vector is needed for the vector arm")
    values = {
        # The text arm's words: the query and its snake_case names whole, as documents index them.
        "query": text_query(params.query),
        "qvec": query_vector if query_vector is not None else np.zeros(384, dtype=np.float32),
        "project_id": params.project_id,
        "session_id": params.session_id,
        "types": params.types,
        "kinds": params.kinds,
        "since": params.since,
        "until": params.until,
        "file_patterns": file_patterns(params.files or []),
        "candidates": params.candidates + params.offset + len(params.exclude_ids),
        "max_id": params.max_id,
        "exclude_ids": params.exclude_ids,
        "exclude_summaries": params.exclude_summaries,
        "exclude_sessions": params.exclude_sessions,
        "limit": params.limit,
        "offset": params.offset,
        "rrf_k": float(params.rrf_k),
        **_arm_weights(params),
        "headline": HEADLINE_OPTIONS,
        "k1": float(params.bm25_k1),
        "b": float(params.bm25_b),
        "context_weight": float(params.context_weight),
        "text_pool": max(params.text_pool, params.candidates + params.offset),
        "match_pool": max(params.match_pool, params.candidates + params.offset),
    }
    statement = build_search_sql(params)
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        lock_warm_for_read(conn)
        return cur.execute(statement, values).fetchall()


_HEADLINES = sql.SQL(
    "SELECT d.id, " + _HEADLINE + " AS snippet"
    " FROM documents d CROSS JOIN (SELECT ctxsearch_query(%(query)s) AS tq) q"
    " WHERE d.project_id = %(project_id)s AND d.id = ANY(%(ids)s)"
).format(snippet_chars=sql.Literal(SNIPPET_SOURCE_CHARS))


def headlines(*, conn: psycopg.Connection, project_id: str, query: str, doc_ids: list[int]) -> dict[int, str]:
    """The snippets of these documents for the query, as the search makes them (by document id)."""
    if not doc_ids:
        return {}
    values = {"query": query, "project_id": project_id, "ids": doc_ids, "headline": HEADLINE_OPTIONS}
    return dict(conn.execute(_HEADLINES, values).fetchall())


# A session summary's hit id: the prefix and the session's id.
SUMMARY_PREFIX = "summary:"


def hit_id(row: dict) -> str:
    return row["event_id"] if row["kind"] == "event" else SUMMARY_PREFIX + row["session_id"]


def timed_search(*, conn: psycopg.Connection, params: SearchParams, embedder) -> tuple[list[dict], float]:
    t0 = time.perf_counter()
    qvec = embedder.embed_query(params.query) if params.mode in ("hybrid", "vector") else None
    rows = search(conn=conn, params=params, query_vector=qvec)
    return rows, (time.perf_counter() - t0) * 1000
