-- Dashboard sessions ended by signing out. A session cookie is signed, not
-- stored, so signing out alone would leave a copy of it valid until it
-- expires; its id (the SHA-256 of the session's random CSRF token, never the
-- token) is kept here until then, and every API process refuses it.
-- depends: 0011_expiry_callbacks

CREATE TABLE taskqueue.revoked_sessions (
    session_id bytea PRIMARY KEY,
    expires_at timestamptz NOT NULL  -- when the cookie would have expired anyway
);
