-- Text analysis shared by the write path (document tsvectors) and the read path
-- (queries), so both sides always agree on the configuration.

-- Title (type, tool, file names) weighs A, the body B.
CREATE FUNCTION ctxsearch_doc_tsv(title text, body text) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A')
        || setweight(to_tsvector('english'::regconfig, coalesce(body, '')), 'B')
$$;

-- A natural-language query matches documents holding any of its terms (OR);
-- ranking, not matching, rewards documents that hold more of them. The lexemes
-- are already stemmed, so they are re-read with 'simple' (no second stemming).
CREATE FUNCTION ctxsearch_query(q text) RETURNS tsquery
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN numnode(p) = 0 THEN p
                ELSE to_tsquery('simple'::regconfig, replace(p::text, ' & ', ' | ')) END
    FROM plainto_tsquery('english'::regconfig, q) AS p
$$;
