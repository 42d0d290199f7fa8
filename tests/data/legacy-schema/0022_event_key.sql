-- An event's id is held once, by its document: documents_event_uq (project_id, event_id)
-- is the idempotency key. Ingest inserts the documents first, skipping ids already
-- stored, and then only the events whose document was new. The events primary key held
-- the same keys a second time, about 84 bytes per event.
ALTER TABLE events DROP CONSTRAINT events_pkey;
