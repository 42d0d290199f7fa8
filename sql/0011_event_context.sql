-- The text of the event before it in its session, embedded with the event: a short
-- reply ("yes, the golden one", "that fixed it") means little without what it answers.
-- Filled at ingest; NULL for the first event of a session and for summaries.
ALTER TABLE documents ADD COLUMN context text;
