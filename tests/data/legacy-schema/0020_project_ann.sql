-- Filtered vector recall. pgvector 0.6 has no iterative index scans: a search with a
-- project filter through one global ANN index walks the nearest lists (or graph
-- nodes) of all projects and drops the other projects' rows afterwards, so a
-- project that holds a small share of the data gets too few (and wrong) rows.
--
-- The rebuild now gives, instead of one global ANN index, every project with at least
-- `ctxsearch.project_index_min_rows` warm documents (a custom setting read at run
-- time, default 10000; 0 turns it off) an ANN index of its own: a partial index
-- `WHERE project_id = '<project>'` on the new warm view, trained on that
-- project's rows. The planner picks it for `project_id = $1` (custom plans), and
-- smaller projects are read exactly through the (project_id, id) index: the view
-- is ordered by project, so their rows lie together.
--
-- Each generation also carries the document lengths (`tlen`) and builds the
-- per-project text statistics of 0010, swapped in together with the view.
-- With project_index_min_rows > 0 (the default) it builds the per-project partial
-- indexes and no global ANN index; with 0 it builds the global index as before.

-- Rebuild the warm tier. index_kind: 'ivfflat' or 'hnsw'; without per-project indexes
-- (project_index_min_rows = 0), one global ivfflat index once the tier holds min_rows
-- documents, an exact scan below that.
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
    proj_min  bigint := coalesce(nullif(current_setting('ctxsearch.project_index_min_rows', true), '')::bigint, 10000);
    big_projects text[];
    big_counts   bigint[];
    p_lists   integer;
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
           SELECT id, project_id, kind, session_id, type, files, ts, embedding, tsv, tlen
           FROM documents WHERE id <= %s AND embedding IS NOT NULL
           ORDER BY project_id, id', new_gen, wm);
    EXECUTE format('SELECT count(*) FROM warm_docs_%s', new_gen) INTO n_rows;

    EXECUTE format('CREATE UNIQUE INDEX ON warm_docs_%s (project_id, id)', new_gen);
    EXECUTE format('CREATE INDEX ON warm_docs_%s USING gin (tsv)', new_gen);
    IF proj_min > 0 THEN
        -- per-project ANN indexes (see the note at the top of this file). No global
        -- ANN index: every search names its project, and a global index would tempt
        -- the planner into a filtered scan for mid-sized projects.
        -- Read the list first: an open cursor on the view would forbid CREATE INDEX on it.
        EXECUTE format(
            'SELECT coalesce(array_agg(project_id ORDER BY project_id), ''{}''), coalesce(array_agg(n ORDER BY project_id), ''{}'')
             FROM (SELECT project_id, count(*) AS n FROM warm_docs_%s GROUP BY project_id HAVING count(*) >= %s) p',
            new_gen, greatest(proj_min, min_rows)) INTO big_projects, big_counts;
        FOR i IN 1 .. coalesce(array_length(big_projects, 1), 0)
        LOOP
            IF index_kind = 'hnsw' THEN
                EXECUTE format('CREATE INDEX ON warm_docs_%s USING hnsw (embedding vector_cosine_ops) WHERE project_id = %L',
                               new_gen, big_projects[i]);
            ELSE
                p_lists := greatest(big_counts[i] / 1000, 10);
                EXECUTE format('CREATE INDEX ON warm_docs_%s USING ivfflat (embedding vector_cosine_ops) WITH (lists = %s) WHERE project_id = %L',
                               new_gen, p_lists, big_projects[i]);
            END IF;
            used_kind := index_kind;
        END LOOP;
    ELSIF index_kind = 'hnsw' THEN
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
    PERFORM ctxsearch_build_text_stats(new_gen);

    EXECUTE format('CREATE OR REPLACE VIEW warm_docs AS SELECT * FROM warm_docs_%s', new_gen);
    EXECUTE format('CREATE OR REPLACE VIEW warm_text_stats AS SELECT * FROM warm_text_stats_%s', new_gen);
    EXECUTE format('CREATE OR REPLACE VIEW warm_text_df AS SELECT * FROM warm_text_df_%s', new_gen);
    UPDATE tier_state s SET generation = new_gen, watermark = wm, warm_rows = n_rows,
        index_kind = used_kind, index_lists = n_lists, refreshed_at = now(),
        build_ms = 1000 * extract(epoch FROM clock_timestamp() - t0);
    EXECUTE format('DROP MATERIALIZED VIEW warm_docs_%s', old_gen);
    EXECUTE format('DROP TABLE IF EXISTS warm_text_stats_%s, warm_text_df_%s', old_gen, old_gen);

    RETURN QUERY SELECT new_gen, wm, n_rows, n_lists;
END;
$$;

-- Rebuild once now so that the warm view carries lengths and the text statistics exist
-- (keeping the kind of ANN index the current generation has).
SELECT ctxsearch_rebuild_warm(coalesce((SELECT index_kind FROM tier_state), 'ivfflat'));
