-- Undo 0012_session_revocations: signing out clears the cookie only.
DROP TABLE IF EXISTS taskqueue.revoked_sessions;
