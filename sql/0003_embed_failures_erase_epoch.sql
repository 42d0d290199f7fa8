-- Documents whose embedding failed, and the erasure counter of the warm tier.

-- A document the embedder fails on is retried with exponential back-off and skipped after
-- `embed_max_attempts` attempts (app/store/queue.py): a skipped one no longer pins the warm
-- watermark, is left out of the warm tier and of `pending`, and counts as failed. A side
-- table rather than columns of documents: failures are rare, and bookkeeping them there
-- would write a new version of a wide document row (and of its pending-index entry) on
-- every attempt. No foreign key: a document deleted later (a rewritten summary) leaves a
-- row that matches nothing (ids only grow) and that the queue's readers join away;
-- erasure deletes its rows explicitly.
CREATE TABLE embed_failures (
    project_id       text        NOT NULL,
    id               bigint      NOT NULL,   -- documents.id
    attempts         integer     NOT NULL,
    last_error       text        NOT NULL,
    next_attempt_at  timestamptz NOT NULL,
    skipped_at       timestamptz,            -- set once attempts reached the limit: no longer tried
    PRIMARY KEY (project_id, id)
);

-- Raised by every erasure (app/store/erase.py) in the transaction that removes the rows from
-- the current warm generation. A rebuild reads it with its watermark; when it has moved by
-- the time of the swap, the new generation may hold erased rows (built from a snapshot taken
-- before the erasure committed) and is reconciled against documents before it is swapped in.
ALTER TABLE tier_state ADD COLUMN erase_epoch bigint NOT NULL DEFAULT 0;
