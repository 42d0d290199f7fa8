-- Storage per event. The session index carried ts in its key, so every event had an
-- entry of its own (~99 bytes per event). Keyed on (project_id, session_id) alone,
-- PostgreSQL's B-tree deduplication stores each session's key once with a list of
-- row pointers (~9 bytes per event); condense sorts a session's events itself.
DROP INDEX IF EXISTS events_session_idx;
CREATE INDEX events_session_idx ON events (project_id, session_id);
