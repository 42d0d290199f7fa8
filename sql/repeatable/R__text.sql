-- Text analysis shared by the write path (document tsvectors) and the read path (queries),
-- so both sides always agree on the configuration. Repeatable: re-applied whenever this
-- file changes. A change to ctxsearch_doc_tsv or ctxsearch_event_tsv applies to documents
-- written from then on; re-deriving the stored tsvectors is a versioned migration's job.

-- Title (type, tool, file names) weighs A, the body B.
CREATE OR REPLACE FUNCTION ctxsearch_doc_tsv(title text, body text) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A')
        || setweight(to_tsvector('english'::regconfig, coalesce(body, '')), 'B')
$$;

-- An event's tsvector: its own text as ctxsearch_doc_tsv has it, then the context (the
-- previous event's text) at the lowest weight, so that a reply is found by the words of
-- what it answers.
CREATE OR REPLACE FUNCTION ctxsearch_event_tsv(title text, body text, context text) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ctxsearch_doc_tsv(title, body) || setweight(to_tsvector('english'::regconfig, coalesce(context, '')), 'D')
$$;

-- A natural-language query matches documents holding any of its terms (OR); ranking, not
-- matching, rewards documents that hold more of them. The lexemes are already stemmed, so
-- they are re-read with 'simple' (no second stemming).
CREATE OR REPLACE FUNCTION ctxsearch_query(q text) RETURNS tsquery
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN numnode(p) = 0 THEN p
                ELSE to_tsquery('simple'::regconfig, replace(p::text, ' & ', ' | ')) END
    FROM plainto_tsquery('english'::regconfig, q) AS p
$$;

-- BM25's inverse document frequency (Lucene's form: never negative).
CREATE OR REPLACE FUNCTION ctxsearch_idf(n_docs float8, df float8) RETURNS float8
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ln(1 + greatest(n_docs - df + 0.5, 0) / (df + 0.5))
$$;
