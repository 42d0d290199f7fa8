-- Bounded text candidates for large projects.
--
-- The text arm scores with BM25 (0010). Taking as candidates all warm documents that
-- match any query term costs a read of each match, and a common term of a large project
-- matches tens of thousands of rows (worse: the GIN index is global, so its posting list
-- covers every project). Each warm generation now carries, per project and lexeme, the
-- lexeme's postings as arrays of document ids and BM25 term weights (tf saturated with
-- k1 = 1.2 and length-normalised with b = 0.75 against the project's average length; a
-- position of the previous event's text counts half, as in the search), best first,
-- cut at `ctxsearch.text_top_docs` entries (a custom setting read at run time, default
-- 2000): a common lexeme keeps the documents where it weighs most (its "champion
-- list"), a rarer one all of its documents. The search sums idf x weight over the
-- query's lists to rank candidates without reading a document, then scores the best
-- `text_pool` of them exactly.

-- BM25's inverse document frequency (Lucene's form: never negative).
CREATE FUNCTION ctxsearch_idf(n_docs float8, df float8) RETURNS float8
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ln(1 + greatest(n_docs - df + 0.5, 0) / (df + 0.5))
$$;

-- Statistics of warm generation `gen` (0010) and its top lists: a table per generation,
-- swapped in behind the view `warm_text_top` in the rebuild's own transaction, that is
-- together with the warm view.
ALTER FUNCTION ctxsearch_build_text_stats(integer) RENAME TO ctxsearch_build_text_counts;

CREATE FUNCTION ctxsearch_build_text_stats(gen integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    p text;
    avgdl float8;
    top_docs integer := coalesce(nullif(current_setting('ctxsearch.text_top_docs', true), '')::integer, 2000);
BEGIN
    PERFORM ctxsearch_build_text_counts(gen);
    -- Top lists, project by project: one sort of a project's postings at a time.
    PERFORM set_config('work_mem', '256MB', true);
    EXECUTE format('CREATE TABLE warm_text_top_%s (project_id text NOT NULL, lexeme text NOT NULL,
                    ids bigint[] NOT NULL, weights real[] NOT NULL)', gen);
    FOR p, avgdl IN EXECUTE format(
            'SELECT project_id, greatest(sum_len::float8 / nullif(n_docs, 0), 1) FROM warm_text_stats_%s', gen) LOOP
        EXECUTE format(
            'INSERT INTO warm_text_top_%1$s
             SELECT %2$L, lexeme, array_agg(id ORDER BY rn), array_agg(w ORDER BY rn)
             FROM (SELECT lexeme, id, w, row_number() OVER (PARTITION BY lexeme ORDER BY w DESC, id) AS rn
                   FROM (SELECT d.id, u.lexeme COLLATE "C" AS lexeme,
                                (f.tf * 2.2 / (f.tf + 1.2 * (0.25 + 0.75 * d.tlen / %3$s::float8)))::real AS w
                         FROM warm_docs_%1$s d
                         CROSS JOIN LATERAL unnest(d.tsv) AS u
                         CROSS JOIN LATERAL (SELECT coalesce(cardinality(u.positions), 1)::float8
                             - 0.5 * coalesce(cardinality(array_positions(u.weights, ''D'')), 0) AS tf) f
                         WHERE d.project_id = %2$L) t) r
             WHERE rn <= %4$s
             GROUP BY lexeme', gen, p, avgdl, top_docs);
    END LOOP;
    EXECUTE format('ALTER TABLE warm_text_top_%s ADD PRIMARY KEY (project_id, lexeme)', gen);
    EXECUTE format('CREATE OR REPLACE VIEW warm_text_top AS SELECT * FROM warm_text_top_%s', gen);
    EXECUTE format('DROP TABLE IF EXISTS warm_text_top_%s', gen - 1);
END;
$$;

-- Rebuild once now so that the current generation has its top lists.
SELECT ctxsearch_rebuild_warm(coalesce((SELECT index_kind FROM tier_state), 'ivfflat'));
