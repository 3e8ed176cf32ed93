"""uvicorn's httptools protocol with a cap on the request head.

httptools has no limit of its own on the request line and headers, and it
gathers a header's value by concatenating each read onto what it has: one
connection sending a 128 MB header kept the event loop (and everything on
it) busy for seconds. Here the bytes of a request head are counted as they
arrive, before the parser sees them; past MAX_HEAD_BYTES the connection gets
a 431 and is closed. Bodies are not counted (they have their own limit,
TASKQUEUE_MAX_BODY_BYTES)."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024
_END_OF_HEAD = b"\r\n\r\n"

logger = logging.getLogger("taskqueue.api")


def _refusal(limit: int) -> bytes:
    body = msgspec.json.encode(
        {
            "status": 431,
            "error": "request_header_fields_too_large",
            "message": f"the request line and headers exceed {limit} bytes",
        }
    )
    return (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
        b"content-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"connection: close\r\n\r\n" + body
    )


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    max_head_bytes = MAX_HEAD_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # until the current request's headers are complete
        self._head_bytes = 0  # bytes of the current head received so far
        self._tail = b""  # the last bytes of it, for a terminator split across reads
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            seen = self._head_bytes + len(data)
            if seen > self.max_head_bytes and not self._head_ends_in_time(data):
                self._refuse()
                return
            self._head_bytes = seen
            self._tail = data[-3:]
        super().data_received(data)

    def _head_ends_in_time(self, data: bytes) -> bool:
        # The read may hold the end of the head and the start of the body.
        end = (self._tail + data).find(_END_OF_HEAD)
        if end == -1:
            return False
        head_length = self._head_bytes - len(self._tail) + end + len(_END_OF_HEAD)
        return head_length <= self.max_head_bytes

    def _refuse(self) -> None:
        self._refused = True
        client = self.client[0] if self.client else "?"
        logger.warning("refused a request head over %d bytes from %s", self.max_head_bytes, client)
        self.transport.write(_refusal(self.max_head_bytes))
        self.transport.close()

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # The next request on this connection (keep-alive) starts a new head.
        self._in_head = True
        self._head_bytes = 0
        self._tail = b""
