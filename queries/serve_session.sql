-- `serve --auth platform`: whose session this is. $1: the SHA-256 (hex)
-- of the token the browser sent; the stored hash is compared, never
-- selected. Nothing else of users or sessions is read (no e-mail, no
-- password hash, no user agent, no address). The user's id names the
-- reader in `serve`'s access lines.
SELECT u.user_id, u.role, u.tenant_id, s.expires_at
FROM {schema}.sessions s
JOIN {schema}.users u ON u.user_id = s.user_id
WHERE s.session_hash = $1 AND s.expires_at > now()
