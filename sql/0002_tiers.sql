-- Search tiers.
--
-- warm: a materialized view over every document up to a watermark id, with a GIN
--       index on the weighted tsvector and an ANN index on the embedding. It is
--       rebuilt in the background under a new name and swapped in behind the
--       plain view `warm_docs`, so searches never wait for a rebuild and the ANN
--       index is retrained on the data it serves.
-- hot:  documents above the watermark, read straight from `documents`. Small by
--       construction; every search covers both tiers.

CREATE TABLE tier_state (
    singleton     boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    generation    integer     NOT NULL,
    watermark     bigint      NOT NULL,
    warm_rows     bigint      NOT NULL DEFAULT 0,
    index_kind    text,
    index_lists   integer,
    refreshed_at  timestamptz NOT NULL DEFAULT now(),
    build_ms      double precision
);

CREATE MATERIALIZED VIEW warm_docs_0 AS
    SELECT id, project_id, kind, session_id, type, files, ts, embedding, tsv
    FROM documents WHERE false;
CREATE VIEW warm_docs AS SELECT * FROM warm_docs_0;
INSERT INTO tier_state (generation, watermark) VALUES (0, 0);

-- Writers of documents hold this lock shared for their transaction; a rebuild takes
-- it exclusively for an instant so that every id up to the watermark it reads is
-- committed (identity values are handed out before commit).
CREATE FUNCTION ctxsearch_tier_lock_key() RETURNS bigint
    LANGUAGE sql IMMUTABLE AS $$ SELECT 7243090112::bigint $$;

-- Rebuild the warm tier. index_kind: 'ivfflat', 'hnsw' or 'auto' (ivfflat once
-- the tier holds min_rows documents, exact scan below that).
CREATE FUNCTION ctxsearch_rebuild_warm(index_kind text DEFAULT 'ivfflat', min_rows bigint DEFAULT 5000)
RETURNS TABLE (generation integer, watermark bigint, warm_rows bigint, lists integer)
LANGUAGE plpgsql AS $$
DECLARE
    old_gen   integer;
    new_gen   integer;
    wm        bigint;
    min_pend  bigint;
    n_rows    bigint;
    n_lists   integer := NULL;
    used_kind text := NULL;
    t0        timestamptz := clock_timestamp();
BEGIN
    -- Only one rebuild at a time.
    IF NOT pg_try_advisory_xact_lock(ctxsearch_tier_lock_key() + 1) THEN
        RAISE EXCEPTION 'a warm tier rebuild is already running' USING ERRCODE = '55P03';
    END IF;

    PERFORM pg_advisory_lock(ctxsearch_tier_lock_key());
    SELECT coalesce(max(d.id), 0) INTO wm FROM documents d;
    PERFORM pg_advisory_unlock(ctxsearch_tier_lock_key());

    -- Never pass a document still waiting for its embedding: it stays hot.
    SELECT min(d.id) INTO min_pend FROM documents d WHERE d.embedding IS NULL AND d.id <= wm;
    IF min_pend IS NOT NULL THEN
        wm := min_pend - 1;
    END IF;

    SELECT s.generation INTO old_gen FROM tier_state s;
    new_gen := old_gen + 1;

    EXECUTE format(
        'CREATE MATERIALIZED VIEW warm_docs_%s AS
           SELECT id, project_id, kind, session_id, type, files, ts, embedding, tsv
           FROM documents WHERE id <= %s AND embedding IS NOT NULL
           ORDER BY project_id, id', new_gen, wm);
    EXECUTE format('SELECT count(*) FROM warm_docs_%s', new_gen) INTO n_rows;

    EXECUTE format('CREATE UNIQUE INDEX ON warm_docs_%s (project_id, id)', new_gen);
    EXECUTE format('CREATE INDEX ON warm_docs_%s USING gin (tsv)', new_gen);
    IF index_kind = 'hnsw' THEN
        EXECUTE format('CREATE INDEX ON warm_docs_%s USING hnsw (embedding vector_cosine_ops)', new_gen);
        used_kind := 'hnsw';
    ELSIF n_rows >= min_rows THEN
        -- pgvector's guidance: rows/1000 lists up to 1M rows, sqrt(rows) beyond.
        n_lists := CASE WHEN n_rows <= 1000000 THEN greatest(n_rows / 1000, 10)
                        ELSE sqrt(n_rows)::integer END;
        EXECUTE format('CREATE INDEX ON warm_docs_%s USING ivfflat (embedding vector_cosine_ops) WITH (lists = %s)',
                       new_gen, n_lists);
        used_kind := 'ivfflat';
    END IF;
    EXECUTE format('ANALYZE warm_docs_%s', new_gen);

    EXECUTE format('CREATE OR REPLACE VIEW warm_docs AS SELECT * FROM warm_docs_%s', new_gen);
    UPDATE tier_state s SET generation = new_gen, watermark = wm, warm_rows = n_rows,
        index_kind = used_kind, index_lists = n_lists, refreshed_at = now(),
        build_ms = 1000 * extract(epoch FROM clock_timestamp() - t0);
    EXECUTE format('DROP MATERIALIZED VIEW warm_docs_%s', old_gen);

    RETURN QUERY SELECT new_gen, wm, n_rows, n_lists;
END;
$$;
