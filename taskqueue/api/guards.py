"""Moved to taskqueue.http.guards, which guards the dashboard too; this old
path keeps working."""

from taskqueue.http.guards import UNSAFE_METHODS, check_request, request_guard_middleware

__all__ = ["UNSAFE_METHODS", "check_request", "request_guard_middleware"]
