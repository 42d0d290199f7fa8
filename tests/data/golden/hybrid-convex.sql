-- hybrid-convex: build_search_sql(mode='hybrid')
-- Rendered by tests/unit/test_golden_sql.py; rewrite with CTXSEARCH_UPDATE_GOLDEN=1.
WITH
qry AS (SELECT ctxsearch_query(%(query)s) AS tq),
vec AS (
    SELECT u.id, u.dist, row_number() OVER (ORDER BY u.dist, u.id) AS rank
    FROM (
        (SELECT w.id, w.embedding <=> %(qvec)b AS dist FROM warm_docs w
         WHERE "w".project_id = %(project_id)s ORDER BY w.embedding <=> %(qvec)b LIMIT %(candidates)s)
        UNION ALL
        (SELECT d.id, d.embedding <=> %(qvec)b AS dist FROM documents d
         WHERE "d".project_id = %(project_id)s AND d.id > (SELECT watermark FROM tier_state) AND d.embedding IS NOT NULL
         ORDER BY 2 LIMIT %(candidates)s)
    ) u
    WHERE EXISTS (SELECT 1 FROM documents x WHERE x.project_id = %(project_id)s AND x.id = u.id)
    ORDER BY u.dist, u.id LIMIT %(candidates)s
),
qlex AS MATERIALIZED (
    SELECT u.lexeme, coalesce(array_length(u.positions, 1), 1) AS qtf
    FROM unnest(to_tsvector('english'::regconfig, %(query)s)) AS u
),
qarr AS MATERIALIZED (SELECT coalesce(array_agg(lexeme), '{}') AS lexemes FROM qlex),
tstat AS MATERIALIZED (
    SELECT (w.n_docs + h.n_docs)::float8 AS n_docs,
           greatest((w.sum_len + h.sum_len)::float8 / nullif(w.n_docs + h.n_docs, 0), 1) AS avgdl
    FROM (SELECT count(*) AS n_docs, coalesce(sum(tlen), 0) AS sum_len FROM documents
          WHERE project_id = %(project_id)s AND id > (SELECT watermark FROM tier_state)) h
    CROSS JOIN (SELECT coalesce(sum(n_docs), 0) AS n_docs, coalesce(sum(sum_len), 0) AS sum_len
                FROM warm_text_stats WHERE project_id = %(project_id)s) w
),
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
    FROM (SELECT id, approx FROM tlist ORDER BY approx DESC, id LIMIT %(text_pool)s) a
    JOIN warm_docs w ON w.project_id = %(project_id)s AND w.id = a.id
    WHERE "w".project_id = %(project_id)s
    ORDER BY a.approx DESC, a.id LIMIT %(text_pool)s
),
tcand AS MATERIALIZED (
    (SELECT id, tsv, tlen, false AS hot, true AS keep FROM twarm) UNION ALL
    (SELECT w.id, w.tsv, w.tlen, false AS hot, true AS keep FROM warm_docs w, qry q
     WHERE "w".project_id = %(project_id)s
         AND w.tsv @@ q.tq
         AND NOT EXISTS (SELECT 1 FROM warm_text_top t WHERE t.project_id = %(project_id)s)
     ORDER BY ts_rank(w.tsv, q.tq, 1) DESC LIMIT %(match_pool)s)
    UNION ALL
    (SELECT d.id, d.tsv, d.tlen, true AS hot, ("d".project_id = %(project_id)s) AS keep FROM documents d, qry q
     WHERE d.project_id = %(project_id)s AND d.id > (SELECT watermark FROM tier_state) AND d.tsv @@ q.tq)
),
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
),
scored AS (
    SELECT coalesce(v.id, t.id) AS id,
           v.rank AS vector_rank, t.rank AS text_rank,
           coalesce(1 - v.dist, (SELECT 1 - (e.embedding <=> %(qvec)b) FROM documents e
              WHERE e.project_id = %(project_id)s AND e.id = t.id)) AS vector_score, t.tscore::float8 AS text_score,
           coalesce(t.tscore::float8, 0) / (SELECT greatest(sum(w), 1e-9) FROM tidf) AS text_norm
    FROM vec v FULL OUTER JOIN txt t ON t.id = v.id
),
fused AS (
    SELECT p.*, p.vector_part + p.text_part AS score
    FROM (SELECT s.*, %(w_vector)s * coalesce(s.vector_score, 0) AS vector_part,
                  %(w_text)s * coalesce(s.text_norm, 0) AS text_part
           FROM scored s) p
)
SELECT f.id AS doc_id, f.score, f.vector_rank, f.text_rank, f.vector_score, f.text_score, f.text_norm,
       f.vector_part, f.text_part,
       d.kind, d.project_id, d.session_id, d.event_id, d.type, d.title, d.files, d.ts,
       ts_headline('english', left(d.body, 20000), q.tq, %(headline)s) AS snippet,
       numnode(q.tq) = 0 AS empty_query,
       coalesce(%(max_id)s::bigint, (SELECT max(m.id) FROM documents m WHERE m.project_id = %(project_id)s)) AS snapshot_id
FROM (
    SELECT u.* FROM (
        SELECT fused.*, row_number() OVER (PARTITION BY t.session_id, t.twin ORDER BY fused.score DESC, fused.id) AS twin_rank
        FROM fused
        CROSS JOIN LATERAL (SELECT x.session_id, md5(x.title || x.body) AS twin FROM documents x
                            WHERE x.project_id = %(project_id)s AND x.id = fused.id) t
        WHERE true
    ) u
    WHERE u.twin_rank = 1
    ORDER BY u.score DESC, u.id LIMIT %(limit)s OFFSET %(offset)s
) f
JOIN documents d ON d.project_id = %(project_id)s AND d.id = f.id
CROSS JOIN qry q
ORDER BY f.score DESC, f.id
