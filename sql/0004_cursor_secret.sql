-- A secret of this installation that signs search cursors, so that a cursor one server
-- wrote is not accepted by another (the setting cursor_secret, when set, is used instead).
-- Every API process of one database shares it. Not per project: a small global table (in
-- a distributed setup, a reference table).
CREATE TABLE service_secrets (
    name  text PRIMARY KEY,
    value text NOT NULL
);

-- Two random UUIDs (gen_random_uuid uses the server's strong random source): 244 random bits.
INSERT INTO service_secrets (name, value)
VALUES ('cursor', replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''));
