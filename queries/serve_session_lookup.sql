-- `serve --auth platform` where deploy/roles.sql made the lookup function
-- (the sessions role may only call it: one hash in, at most one row out;
-- it cannot list sessions, hashes or users). $1: the SHA-256 (hex) of the
-- token the browser sent.
SELECT user_id, role, tenant_id, expires_at
FROM {schema}.callrollup_session($1::text)
