"""Moved to taskqueue.http.errors, which the dashboard shares; this old path
keeps working."""

from taskqueue.http.errors import (
    ApiError,
    ErrorBody,
    database_unavailable,
    error_response,
    handle_exception,
)

__all__ = ["ApiError", "ErrorBody", "database_unavailable", "error_response", "handle_exception"]
