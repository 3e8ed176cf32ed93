"""Moved to taskqueue.http.auth, which the dashboard shares; this old path
keeps working."""

from taskqueue.http.auth import (
    ACTOR_STATE_KEY,
    ALL_SCOPES,
    LOCAL_ACTOR,
    MIN_JWT_SECRET_BYTES,
    READ,
    WRITE,
    Authenticator,
    SessionActor,
    actor_of,
    auth_middleware,
    check_binding,
    is_loopback,
    scopes_text,
)

__all__ = [
    "ACTOR_STATE_KEY",
    "ALL_SCOPES",
    "LOCAL_ACTOR",
    "MIN_JWT_SECRET_BYTES",
    "READ",
    "WRITE",
    "Authenticator",
    "SessionActor",
    "actor_of",
    "auth_middleware",
    "check_binding",
    "is_loopback",
    "scopes_text",
]
