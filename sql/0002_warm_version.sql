-- Which layout of a warm generation the current one was built with. A rebuild stamps the
-- version of the function that built it (ctxsearch_warm_version(), sql/repeatable/R__tiers.sql).
-- When a changed R__tiers.sql builds generations differently it raises that version: the
-- current generation is then stale, and the worker rebuilds it in the background
-- (ctxsearch_warm_stale()) while searches keep reading it. No migration rebuilds the tier:
-- that would hold the migration lock, and every starting process, for as long as it takes.
--
-- Generations of the previous release were built with the layout of version 1.
ALTER TABLE tier_state ADD COLUMN warm_version integer NOT NULL DEFAULT 1;
