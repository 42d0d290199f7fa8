-- Baseline: the schema as the previous release's chain (0001_schema … 0023_text_top, kept
-- in tests/data/legacy-schema/) left it, in one file. A database of that chain is adopted
-- without running this file (app/store/migrations.py); tests/integration/test_migrations.py
-- compares the two with pg_dump.
--
-- Versioned files are immutable once applied (their checksum is recorded). Functions that
-- evolve live in sql/repeatable/, re-applied whenever they change. Only what stored data
-- depends on is here: the generated column's ctxsearch_tsv_length.
--
-- Every table carries project_id in its key so that the data can be distributed by
-- project (Citus) without a schema change.

CREATE EXTENSION IF NOT EXISTS vector;

-- Raw events, append-only. An event's id is held once, by its document:
-- documents_event_uq (project_id, event_id) is the idempotency key, so events has no
-- primary key of its own (it cost about 84 bytes per event).
CREATE TABLE events (
    project_id  text        NOT NULL,
    event_id    text        NOT NULL,
    session_id  text        NOT NULL,
    ts          timestamptz NOT NULL,
    type        text        NOT NULL,
    tool        text,
    files       text[],
    tokens      integer,
    content     text        NOT NULL,
    payload     bytea,                       -- zstd-compressed JSON object
    received_at timestamptz NOT NULL DEFAULT now()
);
-- Keyed on (project_id, session_id) alone: B-tree deduplication stores each session's key
-- once (~9 bytes per event rather than ~99 with ts in the key); condense sorts a session's
-- events itself.
CREATE INDEX events_session_idx ON events (project_id, session_id);

-- One row per session: condensed metrics, key events and summaries.
CREATE TABLE sessions (
    project_id     text        NOT NULL,
    session_id     text        NOT NULL,
    started_at     timestamptz,
    ended_at       timestamptz,
    event_count    integer     NOT NULL DEFAULT 0,
    metrics        jsonb       NOT NULL DEFAULT '{}',
    key_events     jsonb       NOT NULL DEFAULT '[]',
    summary        text,                     -- extracted by condense
    agent_summary  text,                     -- written by the agent; wins over summary
    dirty          boolean     NOT NULL DEFAULT true,
    condensed_at   timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, session_id)
);
CREATE INDEX sessions_dirty_idx ON sessions (updated_at) WHERE dirty;

-- A document's length in tokens for BM25: every position counts (a lexeme stored without
-- positions counts once). The generated column documents.tlen stores its result, so a
-- change to it is a versioned migration that recomputes tlen, never a repeatable.
CREATE FUNCTION ctxsearch_tsv_length(t tsvector) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(sum(coalesce(array_length(u.positions, 1), 1)), 0)::integer FROM unnest(t) AS u
$$;

-- Searchable documents: one per event (kind 'event') and one per session (kind 'summary').
-- A changed document is deleted and inserted anew, so ids only grow and the tier
-- watermark stays meaningful. `context` is the text of the event before it in its session,
-- embedded and indexed (at the lowest weight) with the event: a short reply means little
-- without what it answers; NULL for a session's first event and for summaries.
CREATE TABLE documents (
    id            bigint GENERATED ALWAYS AS IDENTITY,
    project_id    text        NOT NULL,
    kind          text        NOT NULL CHECK (kind IN ('summary', 'event')),
    session_id    text        NOT NULL,
    event_id      text,
    type          text        NOT NULL,
    title         text        NOT NULL,
    body          text        NOT NULL,
    files         text[]      NOT NULL DEFAULT '{}',
    ts            timestamptz NOT NULL,
    importance    real        NOT NULL DEFAULT 0,
    content_hash  bytea       NOT NULL,
    embedding     vector(384),
    tsv           tsvector    NOT NULL,
    tlen          integer GENERATED ALWAYS AS (ctxsearch_tsv_length(tsv)) STORED,
    context       text,
    PRIMARY KEY (project_id, id)
);
CREATE UNIQUE INDEX documents_event_uq ON documents (project_id, event_id) WHERE kind = 'event';
CREATE UNIQUE INDEX documents_summary_uq ON documents (project_id, session_id) WHERE kind = 'summary';
CREATE INDEX documents_id_idx ON documents (id);
CREATE INDEX documents_pending_idx ON documents (id) WHERE embedding IS NULL;
CREATE INDEX documents_hash_idx ON documents (content_hash) WHERE embedding IS NOT NULL;

-- Search tiers.
--
-- warm: a materialized view over every document up to a watermark id, with a GIN index on
--       the weighted tsvector and ANN indexes on the embedding, plus its BM25 statistics
--       and top lists (one table each per generation). A rebuild (ctxsearch_rebuild_warm,
--       sql/repeatable/R__tiers.sql) builds generation n+1 under new names and swaps it in
--       behind the plain views warm_docs, warm_text_stats, warm_text_df and warm_text_top,
--       so searches never wait for a rebuild.
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
INSERT INTO tier_state (generation, watermark) VALUES (0, 0);

-- Generation 0: empty, of the same shape as a rebuild makes, so that the search finds
-- everything it reads before the first rebuild.
CREATE MATERIALIZED VIEW warm_docs_0 AS
    SELECT id, project_id, kind, session_id, type, files, ts, embedding, tsv, tlen
    FROM documents WHERE id <= 0 AND embedding IS NOT NULL
    ORDER BY project_id, id;
CREATE UNIQUE INDEX ON warm_docs_0 (project_id, id);
CREATE INDEX ON warm_docs_0 USING gin (tsv);

-- Per project: document count and total length (BM25's average document length).
CREATE TABLE warm_text_stats_0 (project_id text PRIMARY KEY, n_docs bigint, sum_len bigint);
-- Per project and lexeme: its document frequency.
CREATE TABLE warm_text_df_0 (
    project_id text NOT NULL, lexeme text NOT NULL, df integer NOT NULL,
    PRIMARY KEY (project_id, lexeme)
);
-- Per project and lexeme: its best documents and their BM25 term weights, best first.
CREATE TABLE warm_text_top_0 (
    project_id text NOT NULL, lexeme text NOT NULL, ids bigint[] NOT NULL, weights real[] NOT NULL,
    PRIMARY KEY (project_id, lexeme)
);

CREATE VIEW warm_docs AS SELECT * FROM warm_docs_0;
CREATE VIEW warm_text_stats AS SELECT * FROM warm_text_stats_0;
CREATE VIEW warm_text_df AS SELECT * FROM warm_text_df_0;
CREATE VIEW warm_text_top AS SELECT * FROM warm_text_top_0;
