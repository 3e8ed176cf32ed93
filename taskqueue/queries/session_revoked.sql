-- Whether a dashboard session was signed out (by its primary key).
--   $1 bytea the session's id
SELECT EXISTS (
    SELECT 1 FROM taskqueue.revoked_sessions WHERE session_id = $1
) AS revoked;
