-- Sign a dashboard session out everywhere: its id is refused until the
-- cookie would have expired anyway. Rows past that are dropped on the way
-- (sign-outs are rare; the table stays as small as the live sessions).
--   $1 bytea       the session's id (SHA-256 of its CSRF token)
--   $2 timestamptz when the session's cookie expires
WITH expired AS (
    DELETE FROM taskqueue.revoked_sessions WHERE expires_at < now()
)
INSERT INTO taskqueue.revoked_sessions (session_id, expires_at)
VALUES ($1, $2)
ON CONFLICT (session_id) DO NOTHING;
