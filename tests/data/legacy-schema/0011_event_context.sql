-- The text of the event before it in its session, embedded with the event: a short
-- reply ("yes, the golden one", "that fixed it") means little without what it answers.
-- Filled at ingest; NULL for the first event of a session and for summaries.
ALTER TABLE documents ADD COLUMN context text;

-- An event's tsvector: its own text as ctxsearch_doc_tsv has it, then the context at the
-- lowest weight, so that a reply is found by the words of what it answers.
CREATE FUNCTION ctxsearch_event_tsv(title text, body text, context text) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ctxsearch_doc_tsv(title, body) || setweight(to_tsvector('english'::regconfig, coalesce(context, '')), 'D')
$$;
