-- Core tables. Every table carries project_id in its key so that the data can be
-- distributed by project (Citus) without a schema change.

CREATE EXTENSION IF NOT EXISTS vector;

-- Raw events, append-only. The client's id makes retries idempotent per project.
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
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, event_id)
);
CREATE INDEX events_session_idx ON events (project_id, session_id, ts);

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

-- Searchable documents: one per event (kind 'event') and one per session (kind 'summary').
-- A changed document is deleted and inserted anew, so ids only grow and the tier
-- watermark stays meaningful.
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
    PRIMARY KEY (project_id, id)
);
CREATE UNIQUE INDEX documents_event_uq ON documents (project_id, event_id) WHERE kind = 'event';
CREATE UNIQUE INDEX documents_summary_uq ON documents (project_id, session_id) WHERE kind = 'summary';
CREATE INDEX documents_id_idx ON documents (id);
CREATE INDEX documents_pending_idx ON documents (id) WHERE embedding IS NULL;
CREATE INDEX documents_hash_idx ON documents (content_hash) WHERE embedding IS NOT NULL;
