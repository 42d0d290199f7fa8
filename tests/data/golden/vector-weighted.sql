-- vector-weighted: build_search_sql(mode='vector', fusion='weighted')
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
),txt AS (SELECT NULL::bigint AS id, NULL::float8 AS tscore, NULL::bigint AS rank WHERE false),
scored AS (
    SELECT coalesce(v.id, t.id) AS id,
           v.rank AS vector_rank, t.rank AS text_rank,
           1 - v.dist AS vector_score, t.tscore::float8 AS text_score,
           NULL::float8 AS text_norm
    FROM vec v FULL OUTER JOIN txt t ON t.id = v.id
),
fused AS (
    SELECT p.*, p.vector_part + p.text_part AS score
    FROM (SELECT id, vector_rank, text_rank, vector_score, text_score, text_norm,
           %(w_vector)s * coalesce((vector_score - vmin) / nullif(vmax - vmin, 0), CASE WHEN vector_score IS NULL THEN 0 ELSE 1 END) AS vector_part,
           %(w_text)s * coalesce((text_score - tmin) / nullif(tmax - tmin, 0), CASE WHEN text_score IS NULL THEN 0 ELSE 1 END) AS text_part
    FROM (
        SELECT s.*, min(s.vector_score) OVER () AS vmin, max(s.vector_score) OVER () AS vmax,
               min(s.text_score) OVER () AS tmin, max(s.text_score) OVER () AS tmax
        FROM scored s
    ) s) p
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
