"""Moved to taskqueue.http.protocol (it caps every request head, the
dashboard's too); this old path keeps working."""

from taskqueue.http.protocol import MAX_HEAD_BYTES, BoundedHttpToolsProtocol

__all__ = ["MAX_HEAD_BYTES", "BoundedHttpToolsProtocol"]
