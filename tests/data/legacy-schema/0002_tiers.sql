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

-- The rebuild itself, `ctxsearch_rebuild_warm(index_kind, min_rows)`, is defined in
-- 0020_project_ann.sql, once the text statistics it builds (0010) exist.
