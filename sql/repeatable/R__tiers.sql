-- The warm tier's functions: the writers' lock, the steps of a rebuild, the text statistics
-- each generation carries, and the erasure of rows from the generations (the tables and
-- views of generation 0 are in 0001_baseline.sql). Repeatable: re-applied whenever this file
-- changes. Never rebuild here: a migration runs under the migration lock. When a change
-- alters what a generation holds, raise ctxsearch_warm_version(): the worker then rebuilds
-- in the background while searches keep reading the current generation (which must stay
-- readable by the current search SQL: add new per-generation tables to the current
-- generation empty, in a versioned file).
--
-- A rebuild is orchestrated by app/store/tiers.py, each step in a transaction of its own so
-- that no search or ingest waits on it: the watermark (an instant under the writers' lock),
-- the build of generation n+1 (long, but locking nothing that others take), the swap (short,
-- under lock_timeout, retried with back-off) and the drop of older generations (each under
-- lock_timeout; one a reader still holds is left for a later pass).

-- Writers of documents hold this lock shared for their transaction; a rebuild takes it
-- exclusively for an instant so that every id up to the watermark it reads is committed
-- (identity values are handed out before commit).
CREATE OR REPLACE FUNCTION ctxsearch_tier_lock_key() RETURNS bigint
    LANGUAGE sql IMMUTABLE AS $$ SELECT 7243090112::bigint $$;

-- Held (session-level, by the rebuild's connection, for the whole rebuild) so that only one
-- rebuild runs at a time.
CREATE OR REPLACE FUNCTION ctxsearch_rebuild_lock_key() RETURNS bigint
    LANGUAGE sql IMMUTABLE AS $$ SELECT ctxsearch_tier_lock_key() + 1 $$;

-- The layout of the generations ctxsearch_build_warm builds (tier_state.warm_version,
-- 0002_warm_version.sql). 1: a materialized view with document lengths, BM25 statistics and
-- top lists. 2: a plain table (rows can be erased from it), with an index of its summaries
-- by session, and top lists weighted with the service's k1, b and context weight.
CREATE OR REPLACE FUNCTION ctxsearch_warm_version() RETURNS integer
    LANGUAGE sql IMMUTABLE AS $$ SELECT 2 $$;

-- Whether the current generation was built with an older layout and needs a rebuild (an
-- empty one has nothing to rebuild).
CREATE OR REPLACE FUNCTION ctxsearch_warm_stale() RETURNS boolean
    LANGUAGE sql STABLE AS $$
    SELECT s.warm_rows > 0 AND s.warm_version < ctxsearch_warm_version() FROM tier_state s
$$;

-- The generations that have tables: the current one, older ones a reader still held when a
-- rebuild tried to drop them, and one a failed rebuild built but never swapped in.
CREATE OR REPLACE FUNCTION ctxsearch_warm_generations() RETURNS SETOF integer
    LANGUAGE sql STABLE AS $$
    SELECT DISTINCT substring(c.relname FROM '_([0-9]+)$')::integer
    FROM pg_class c
    WHERE c.relkind IN ('r', 'm') AND c.relname ~ '^warm_(docs|text_stats|text_df|text_top)_[0-9]+$'
      AND pg_table_is_visible(c.oid)
    ORDER BY 1
$$;

-- BM25 for the text arm. PostgreSQL's ts_rank knows nothing of how rare a term is across
-- the corpus, which costs it dearly against BM25 (SciFact nDCG@10 0.61 vs 0.67). BM25 needs
-- per-project corpus statistics: the document count, the average document length and each
-- lexeme's document frequency, computed with each rebuild into a table pair per generation
-- and swapped in behind the views warm_text_stats and warm_text_df together with the warm
-- table itself; the search adds the hot tier's share on the fly, so a fresh project with no
-- warm documents is scored with exact statistics too.
CREATE OR REPLACE FUNCTION ctxsearch_build_text_counts(gen integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    p text;
BEGIN
    EXECUTE format(
        'CREATE TABLE warm_text_stats_%s AS
           SELECT project_id, count(*)::bigint AS n_docs, coalesce(sum(tlen), 0)::bigint AS sum_len
           FROM warm_docs_%s GROUP BY project_id', gen, gen);
    EXECUTE format('ALTER TABLE warm_text_stats_%s ADD PRIMARY KEY (project_id)', gen);
    EXECUTE format('CREATE TABLE warm_text_df_%s (project_id text NOT NULL, lexeme text NOT NULL, df integer NOT NULL)', gen);
    -- ts_stat counts each lexeme's documents in C, far quicker than unnest + GROUP BY.
    FOR p IN EXECUTE format('SELECT project_id FROM warm_text_stats_%s', gen) LOOP
        EXECUTE format('INSERT INTO warm_text_df_%s SELECT %L, word, ndoc FROM ts_stat(%L)', gen, p,
                       format('SELECT tsv FROM warm_docs_%s WHERE project_id = %L', gen, p));
    END LOOP;
    EXECUTE format('ALTER TABLE warm_text_df_%s ADD PRIMARY KEY (project_id, lexeme)', gen);
    EXECUTE format('ANALYZE warm_text_df_%s', gen);
END;
$$;

-- Bounded text candidates for large projects. Taking as candidates all warm documents that
-- match any query term costs a read of each match, and a common term of a large project
-- matches tens of thousands of rows (worse: the GIN index is global, so its posting list
-- covers every project). Each generation therefore carries, per project and lexeme, the
-- lexeme's postings as arrays of document ids and BM25 term weights, best first, cut at
-- `top_docs` entries: a common lexeme keeps the documents where it weighs most (its
-- "champion list"), a rarer one all of its documents. The search sums idf x weight over the
-- query's lists to rank candidates without reading a document, then scores the best
-- `text_pool` of them exactly. The weights are the scorer's (app/store/search.py, _TEXT_SCORE)
-- term weights with the same k1, b and context weight, passed in from the service's settings
-- (bm25_k1, bm25_b, text_context_weight): tf saturated with k1 and length-normalised with b
-- against the project's average length, a position of the previous event's text (weight D)
-- counting `context_weight`.
CREATE OR REPLACE FUNCTION ctxsearch_build_text_top(gen integer, top_docs integer, k1 float8, b float8,
                                                    context_weight float8) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    p text;
    avgdl float8;
BEGIN
    -- Project by project: one sort of a project's postings at a time.
    PERFORM set_config('work_mem', '256MB', true);
    EXECUTE format('CREATE TABLE warm_text_top_%s (project_id text NOT NULL, lexeme text NOT NULL,
                    ids bigint[] NOT NULL, weights real[] NOT NULL)', gen);
    FOR p, avgdl IN EXECUTE format(
            'SELECT project_id, greatest(sum_len::float8 / nullif(n_docs, 0), 1) FROM warm_text_stats_%s', gen) LOOP
        EXECUTE format(
            'INSERT INTO warm_text_top_%1$s
             SELECT $1, lexeme, array_agg(id ORDER BY rn), array_agg(w ORDER BY rn)
             FROM (SELECT lexeme, id, w, row_number() OVER (PARTITION BY lexeme ORDER BY w DESC, id) AS rn
                   FROM (SELECT d.id, u.lexeme COLLATE "C" AS lexeme,
                                (f.tf * ($3 + 1) / (f.tf + $3 * (1 - $4 + $4 * d.tlen / $2)))::real AS w
                         FROM warm_docs_%1$s d
                         CROSS JOIN LATERAL unnest(d.tsv) AS u
                         CROSS JOIN LATERAL (SELECT coalesce(cardinality(u.positions), 1)::float8
                             - (1 - $5) * coalesce(cardinality(array_positions(u.weights, ''D'')), 0) AS tf) f
                         WHERE d.project_id = $1) t) r
             WHERE rn <= $6
             GROUP BY lexeme', gen) USING p, avgdl, k1, b, context_weight, top_docs;
    END LOOP;
    EXECUTE format('ALTER TABLE warm_text_top_%s ADD PRIMARY KEY (project_id, lexeme)', gen);
END;
$$;

-- Step 1 of a rebuild, in a short transaction of its own (the caller sets lock_timeout): the
-- highest id up to which every document is committed, and the erase epoch then. Holds the
-- writers' lock exclusively until its transaction ends: in-flight writers (and erasures)
-- finish first, new ones wait for this instant only.
CREATE OR REPLACE FUNCTION ctxsearch_warm_watermark(OUT watermark bigint, OUT erase_epoch bigint)
LANGUAGE plpgsql AS $$
DECLARE
    min_pend bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(ctxsearch_tier_lock_key());
    SELECT coalesce(max(d.id), 0) INTO watermark FROM documents d;
    SELECT s.erase_epoch INTO erase_epoch FROM tier_state s;
    -- Never pass a document still waiting for its embedding: it stays hot. One whose
    -- embedding failed too often (skipped, app/store/queue.py) no longer holds it back.
    SELECT min(d.id) INTO min_pend FROM documents d
    WHERE d.embedding IS NULL AND d.id <= watermark
      AND NOT EXISTS (SELECT 1 FROM embed_failures f
                      WHERE f.project_id = d.project_id AND f.id = d.id AND f.skipped_at IS NOT NULL);
    IF min_pend IS NOT NULL THEN
        watermark := min_pend - 1;
    END IF;
END;
$$;

-- Filtered vector recall. pgvector 0.6 has no iterative index scans: a search with a
-- project filter through one global ANN index walks the nearest lists (or graph nodes) of
-- all projects and drops the other projects' rows afterwards, so a project that holds a
-- small share of the data gets too few (and wrong) rows. So every project with at least
-- `project_min_rows` warm documents (0 turns it off) gets an ANN index of its own: a partial
-- index `WHERE project_id = '<project>'` on the new warm table, trained on that project's
-- rows. The planner picks it for `project_id = $1` (custom plans), and smaller projects are
-- read exactly through the (project_id, id) index: the table is written in project order,
-- so their rows lie together. With project_min_rows = 0, one global index as before.
--
-- index_kind: 'ivfflat' or 'hnsw'; without per-project indexes, one global ivfflat index
-- once the tier holds min_rows documents, an exact scan below that.
--
-- Step 2 of a rebuild: generation `gen` (its table, indexes and text statistics) from the
-- documents up to `wm`, not yet visible to searches. A plain table, not a materialized
-- view, so that an erasure can delete from it.
CREATE OR REPLACE FUNCTION ctxsearch_build_warm(gen integer, wm bigint, index_kind text, min_rows bigint,
                                                project_min_rows bigint, top_docs integer, k1 float8,
                                                b float8, context_weight float8)
RETURNS TABLE (warm_rows bigint, lists integer, used_kind text)
LANGUAGE plpgsql AS $$
DECLARE
    n_rows    bigint;
    n_lists   integer := NULL;
    kind      text := NULL;
    big_projects text[];
    big_counts   bigint[];
    p_lists   integer;
BEGIN
    EXECUTE format(
        'CREATE TABLE warm_docs_%s AS
           SELECT id, project_id, kind, session_id, type, files, ts, embedding, tsv, tlen
           FROM documents WHERE id <= %s AND embedding IS NOT NULL
           ORDER BY project_id, id', gen, wm);
    EXECUTE format('SELECT count(*) FROM warm_docs_%s', gen) INTO n_rows;

    EXECUTE format('CREATE UNIQUE INDEX ON warm_docs_%s (project_id, id)', gen);
    EXECUTE format('CREATE INDEX ON warm_docs_%s USING gin (tsv)', gen);
    -- Erasing a session finds its summaries here, rewritten ones included (documents no
    -- longer holds those); its events it finds by id. One entry per session: small.
    EXECUTE format('CREATE INDEX ON warm_docs_%s (project_id, session_id) WHERE kind = ''summary''', gen);
    IF project_min_rows > 0 THEN
        -- Per-project ANN indexes (see the note above this function). No global ANN index:
        -- every search names its project, and a global index would tempt the planner into a
        -- filtered scan for mid-sized projects. Read the list first: an open cursor on the
        -- table would forbid CREATE INDEX on it.
        EXECUTE format(
            'SELECT coalesce(array_agg(project_id ORDER BY project_id), ''{}''), coalesce(array_agg(n ORDER BY project_id), ''{}'')
             FROM (SELECT project_id, count(*) AS n FROM warm_docs_%s GROUP BY project_id HAVING count(*) >= %s) p',
            gen, greatest(project_min_rows, min_rows)) INTO big_projects, big_counts;
        FOR i IN 1 .. coalesce(array_length(big_projects, 1), 0)
        LOOP
            IF index_kind = 'hnsw' THEN
                EXECUTE format('CREATE INDEX ON warm_docs_%s USING hnsw (embedding vector_cosine_ops) WHERE project_id = %L',
                               gen, big_projects[i]);
            ELSE
                p_lists := greatest(big_counts[i] / 1000, 10);
                EXECUTE format('CREATE INDEX ON warm_docs_%s USING ivfflat (embedding vector_cosine_ops) WITH (lists = %s) WHERE project_id = %L',
                               gen, p_lists, big_projects[i]);
            END IF;
            kind := index_kind;
        END LOOP;
    ELSIF index_kind = 'hnsw' THEN
        EXECUTE format('CREATE INDEX ON warm_docs_%s USING hnsw (embedding vector_cosine_ops)', gen);
        kind := 'hnsw';
    ELSIF n_rows >= min_rows THEN
        -- pgvector's guidance: rows/1000 lists up to 1M rows, sqrt(rows) beyond.
        n_lists := CASE WHEN n_rows <= 1000000 THEN greatest(n_rows / 1000, 10)
                        ELSE sqrt(n_rows)::integer END;
        EXECUTE format('CREATE INDEX ON warm_docs_%s USING ivfflat (embedding vector_cosine_ops) WITH (lists = %s)',
                       gen, n_lists);
        kind := 'ivfflat';
    END IF;
    EXECUTE format('ANALYZE warm_docs_%s', gen);
    PERFORM ctxsearch_build_text_counts(gen);
    PERFORM ctxsearch_build_text_top(gen, top_docs, k1, b, context_weight);
    RETURN QUERY SELECT n_rows, n_lists, kind;
END;
$$;

-- Step 3 of a rebuild, in a short transaction of its own (the caller sets lock_timeout and
-- retries with back-off): point the four views at generation `gen` and record it. The
-- tier_state row first: an erasure holds it until it commits, so none is half done once
-- this has it. Returns false, changing nothing, when an erasure committed since `epoch`
-- (the epoch the generation was reconciled to): reconcile again, then retry. The views'
-- ACCESS EXCLUSIVE locks wait for in-flight searches of the old generation; under
-- lock_timeout, new searches queue behind them for at most that long.
CREATE OR REPLACE FUNCTION ctxsearch_swap_warm(gen integer, wm bigint, epoch bigint, n_rows bigint,
                                               used_kind text, n_lists integer, build_ms float8,
                                               built_version integer) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    current_epoch bigint;
BEGIN
    SELECT s.erase_epoch INTO current_epoch FROM tier_state s FOR UPDATE;
    IF current_epoch <> epoch THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE OR REPLACE VIEW warm_docs AS SELECT * FROM warm_docs_%s', gen);
    EXECUTE format('CREATE OR REPLACE VIEW warm_text_stats AS SELECT * FROM warm_text_stats_%s', gen);
    EXECUTE format('CREATE OR REPLACE VIEW warm_text_df AS SELECT * FROM warm_text_df_%s', gen);
    EXECUTE format('CREATE OR REPLACE VIEW warm_text_top AS SELECT * FROM warm_text_top_%s', gen);
    UPDATE tier_state s SET generation = gen, watermark = wm, warm_rows = n_rows, index_kind = used_kind,
        index_lists = n_lists, refreshed_at = now(), build_ms = ctxsearch_swap_warm.build_ms,
        warm_version = built_version;
    RETURN true;
END;
$$;

-- Step 4 of a rebuild (and of the worker's cleanup pass): drop a generation that is not the
-- current one. The caller sets lock_timeout: a reader still holding the generation makes
-- this fail rather than queue searches, and the generation is dropped by a later pass.
-- Tables in the order an erasure takes them (docs, stats, df, top), so neither waits on the
-- other in a cycle.
CREATE OR REPLACE FUNCTION ctxsearch_drop_warm_generation(gen integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF gen = (SELECT s.generation FROM tier_state s) THEN
        RAISE EXCEPTION 'warm generation % is the current one', gen;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_class c WHERE c.relname = format('warm_docs_%s', gen) AND c.relkind = 'm'
               AND pg_table_is_visible(c.oid)) THEN
        EXECUTE format('DROP MATERIALIZED VIEW warm_docs_%s', gen);  -- built before warm version 2
    ELSE
        EXECUTE format('DROP TABLE IF EXISTS warm_docs_%s', gen);
    END IF;
    EXECUTE format('DROP TABLE IF EXISTS warm_text_stats_%1$s, warm_text_df_%1$s, warm_text_top_%1$s', gen);
END;
$$;

-- Rows of generation `gen` out of its text statistics: `rows_sql` yields them (project_id,
-- id, tsv, tlen), typically a DELETE ... RETURNING on warm_docs_<gen>; $1, $2, $3 in it are
-- p, ids and s. Document counts and lengths drop, each lexeme's document frequency drops (a
-- lexeme left in no document goes), and the rows leave the top lists (a list left empty
-- goes): nothing of their text is counted or listed afterwards. The weights of what stays
-- keep the average length of the build (the ranking they give is approximate anyway; exact
-- scores use the statistics as they are now). Returns how many rows.
CREATE OR REPLACE FUNCTION ctxsearch_warm_forget(gen integer, rows_sql text, p text, ids bigint[], s text)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    EXECUTE format($q$
        WITH del AS (%1$s),
        cnt AS (SELECT project_id, count(*) AS n, coalesce(sum(tlen), 0) AS len FROM del GROUP BY project_id),
        st_upd AS (UPDATE warm_text_stats_%2$s t SET n_docs = t.n_docs - c.n, sum_len = t.sum_len - c.len
                   FROM cnt c WHERE t.project_id = c.project_id AND t.n_docs > c.n RETURNING 1),
        st_del AS (DELETE FROM warm_text_stats_%2$s t USING cnt c
                   WHERE t.project_id = c.project_id AND t.n_docs <= c.n RETURNING 1),
        lex AS (SELECT d.project_id, u.lexeme, count(*)::integer AS n, array_agg(d.id) AS ids
                FROM del d CROSS JOIN LATERAL unnest(d.tsv) AS u GROUP BY d.project_id, u.lexeme),
        df_upd AS (UPDATE warm_text_df_%2$s t SET df = t.df - l.n FROM lex l
                   WHERE t.project_id = l.project_id AND t.lexeme = l.lexeme AND t.df > l.n RETURNING 1),
        df_del AS (DELETE FROM warm_text_df_%2$s t USING lex l
                   WHERE t.project_id = l.project_id AND t.lexeme = l.lexeme AND t.df <= l.n RETURNING 1),
        top_upd AS (UPDATE warm_text_top_%2$s t
                    SET ids = (SELECT array_agg(u.i ORDER BY u.o) FROM unnest(t.ids) WITH ORDINALITY AS u(i, o)
                               WHERE u.i <> ALL (l.ids)),
                        weights = (SELECT array_agg(u.w ORDER BY u.o)
                                   FROM unnest(t.ids, t.weights) WITH ORDINALITY AS u(i, w, o)
                                   WHERE u.i <> ALL (l.ids))
                    FROM lex l
                    WHERE t.project_id = l.project_id AND t.lexeme = l.lexeme AND t.ids && l.ids
                      AND NOT t.ids <@ l.ids RETURNING 1),
        top_del AS (DELETE FROM warm_text_top_%2$s t USING lex l
                    WHERE t.project_id = l.project_id AND t.lexeme = l.lexeme AND t.ids <@ l.ids RETURNING 1)
        SELECT count(*) FROM del
    $q$, rows_sql, gen) INTO n USING p, ids, s;
    RETURN n;
END;
$$;

-- Erase from generation `gen`: the project's documents `ids` and the summaries of session
-- `s` (rewritten ones too), or with s NULL the whole project. Returns how many rows left it.
-- A generation built before warm version 2 is a materialized view, which cannot be deleted
-- from: its statistics (tables) forget the rows and its rows go with the background rebuild
-- a stale generation gets (until then the search drops them: it checks documents).
CREATE OR REPLACE FUNCTION ctxsearch_warm_erase_generation(gen integer, p text, s text, ids bigint[])
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    is_table boolean;
    n bigint := 0;
BEGIN
    SELECT c.relkind = 'r' INTO is_table FROM pg_class c
    WHERE c.relname = format('warm_docs_%s', gen) AND pg_table_is_visible(c.oid);
    IF s IS NULL THEN
        IF is_table THEN
            EXECUTE format('DELETE FROM warm_docs_%s WHERE project_id = $1', gen) USING p;
            GET DIAGNOSTICS n = ROW_COUNT;
        END IF;
        EXECUTE format('DELETE FROM warm_text_stats_%s WHERE project_id = $1', gen) USING p;
        EXECUTE format('DELETE FROM warm_text_df_%s WHERE project_id = $1', gen) USING p;
        EXECUTE format('DELETE FROM warm_text_top_%s WHERE project_id = $1', gen) USING p;
        RETURN n;
    ELSIF is_table THEN
        RETURN ctxsearch_warm_forget(gen, format(
            'DELETE FROM warm_docs_%s w WHERE w.project_id = $1
               AND (w.id = ANY ($2) OR (w.kind = ''summary'' AND w.session_id = $3))
             RETURNING w.project_id, w.id, w.tsv, w.tlen', gen), p, ids, s);
    ELSIF is_table IS NOT NULL THEN
        -- By id only: documents hands out each id once, so no row is forgotten twice.
        PERFORM ctxsearch_warm_forget(gen, format(
            'SELECT w.project_id, w.id, w.tsv, w.tlen FROM warm_docs_%s w
             WHERE w.project_id = $1 AND w.id = ANY ($2)', gen), p, ids, s);
    END IF;
    RETURN 0;
END;
$$;

-- The warm side of an erasure (app/store/erase.py), in its transaction, after the rows left
-- documents and with the writers' lock held shared: every generation, the current one and
-- any older or unswapped one, forgets them. The tier_state row lock pins the current
-- generation until the erasure commits (a swap waits for it), and the raised epoch tells a
-- rebuild whose generation was built from an earlier snapshot to reconcile it before its
-- swap. Returns how many rows left the current generation.
CREATE OR REPLACE FUNCTION ctxsearch_warm_erase(p text, s text, ids bigint[]) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    cur integer;
    g integer;
    n bigint;
    removed bigint := 0;
BEGIN
    UPDATE tier_state t SET erase_epoch = t.erase_epoch + 1 RETURNING t.generation INTO cur;
    FOR g IN SELECT ctxsearch_warm_generations() LOOP
        BEGIN
            n := ctxsearch_warm_erase_generation(g, p, s, ids);
        EXCEPTION WHEN undefined_table THEN
            n := 0;  -- an old generation dropped meanwhile
        END;
        IF g = cur THEN
            removed := n;
        END IF;
    END LOOP;
    UPDATE tier_state t SET warm_rows = greatest(t.warm_rows - removed, 0);
    RETURN removed;
END;
$$;

-- Before a swap whose build overlapped an erasure: rows of generation `gen` whose document
-- is gone (erased, or a summary rewritten meanwhile) leave it and its statistics. One probe
-- of documents per row; only needed when the erase epoch moved during the build.
CREATE OR REPLACE FUNCTION ctxsearch_warm_reconcile(gen integer) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    RETURN ctxsearch_warm_forget(gen, format(
        'DELETE FROM warm_docs_%s w WHERE NOT EXISTS (
           SELECT 1 FROM documents d WHERE d.project_id = w.project_id AND d.id = w.id)
         RETURNING w.project_id, w.id, w.tsv, w.tlen', gen), NULL, NULL, NULL);
END;
$$;

-- The functions of the previous layout keep their signatures (a database of the previous
-- release, and tests/integration/test_migrations.py, compare them), but the rebuild now runs
-- in steps from app/store/tiers.py: as one transaction it would swap under the ACCESS
-- EXCLUSIVE locks that queue every search behind a reader of the old generation.
CREATE OR REPLACE FUNCTION ctxsearch_build_text_stats(gen integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ctxsearch_build_text_stats(%) is superseded by ctxsearch_build_text_top (BM25 parameters from the settings)', gen
        USING ERRCODE = 'feature_not_supported';
END;
$$;

CREATE OR REPLACE FUNCTION ctxsearch_rebuild_warm(index_kind text DEFAULT 'ivfflat', min_rows bigint DEFAULT 5000)
RETURNS TABLE (generation integer, watermark bigint, warm_rows bigint, lists integer)
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the warm tier is rebuilt in steps by ctxsearch.store.tiers.rebuild_warm (the worker does it)'
        USING ERRCODE = 'feature_not_supported',
              HINT = 'from Python: rebuild_warm(conn=conn, settings=settings)';
END;
$$;
