"""uvicorn's httptools protocol with a cap on the request head, and read
timeouts for the head and the body.

httptools has no limit of its own on the request line and headers, and it
gathers a header's value by concatenating each read onto what it has: one
connection sending a 128 MB header kept the event loop (and everything on
it) busy for seconds. Here the bytes of a request head are counted as they
arrive, before the parser sees them; past MAX_HEAD_BYTES the connection gets
a 431 and is closed. Bodies are not counted (they have their own limit,
TASKQUEUE_MAX_BODY_BYTES).

uvicorn times out idle keep-alive connections only: a client that sends half
a head, or a head and half its body, held its connection (and a file
descriptor) forever, so a few thousand of them starved the server. Here a
head must be complete within ``head_timeout`` of the connection being made
(or of its first byte, for the next request on a kept-alive connection) and
a body within ``body_timeout`` of its head (TASKQUEUE_REQUEST_HEAD_TIMEOUT,
10 s, and TASKQUEUE_REQUEST_BODY_TIMEOUT, 30 s); otherwise a 408 and the
connection is closed. A request that arrives whole in one read, as nearly
all do, arms no timer."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024
HEAD_TIMEOUT_SECONDS = 10.0
BODY_TIMEOUT_SECONDS = 30.0
_END_OF_HEAD = b"\r\n\r\n"

logger = logging.getLogger("taskqueue.api")


def _refusal(limit: int) -> bytes:
    return _closing_answer(
        b"431 Request Header Fields Too Large",
        "request_header_fields_too_large",
        f"the request line and headers exceed {limit} bytes",
    )


def _closing_answer(status_line: bytes, error: str, message: str) -> bytes:
    status = int(status_line.split()[0])
    body = msgspec.json.encode({"status": status, "error": error, "message": message})
    return (
        b"HTTP/1.1 " + status_line + b"\r\n"
        b"content-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"connection: close\r\n\r\n" + body
    )


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    max_head_bytes = MAX_HEAD_BYTES
    head_timeout = HEAD_TIMEOUT_SECONDS
    body_timeout = BODY_TIMEOUT_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # until the current request's headers are complete
        self._in_body = False  # from then until the request's body is complete
        self._head_bytes = 0  # bytes of the current head received so far
        self._tail = b""  # the last bytes of it, for a terminator split across reads
        self._refused = False
        self._timer: asyncio.TimerHandle | None = None
        self._timing = ""  # what _timer waits for: "head", "body" or nothing

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm("head")

    def connection_lost(self, exc: Exception | None) -> None:
        self._arm("")
        super().connection_lost(exc)

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
        # Whatever this read left unfinished has a deadline; what it
        # finished has none. The deadline runs from the first unfinished read.
        waiting = "body" if self._in_body else "head" if self._in_head and self._head_bytes else ""
        if waiting != self._timing:
            self._arm(waiting)

    def _arm(self, what: str) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timing = what
        if what:
            seconds = self.head_timeout if what == "head" else self.body_timeout
            self._timer = self.loop.call_later(seconds, self._timed_out, what, seconds)

    def _timed_out(self, what: str, seconds: float) -> None:
        self._timer = None
        self._timing = ""
        if self.transport.is_closing():
            return
        client = self.client[0] if self.client else "?"
        logger.warning(
            "closed a connection from %s: its request %s took over %gs", client, what, seconds
        )
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(
                _closing_answer(
                    b"408 Request Timeout",
                    "request_timeout",
                    f"the request {what} did not arrive within {seconds:g} s",
                )
            )
        self._refused = True
        self.transport.close()

    def _head_ends_in_time(self, data: bytes) -> bool:
        # The read may hold the end of the head and the start of the body.
        end = (self._tail + data).find(_END_OF_HEAD)
        if end == -1:
            return False
        head_length = self._head_bytes - len(self._tail) + end + len(_END_OF_HEAD)
        return head_length <= self.max_head_bytes

    def _refuse(self) -> None:
        self._refused = True
        self._arm("")
        client = self.client[0] if self.client else "?"
        logger.warning("refused a request head over %d bytes from %s", self.max_head_bytes, client)
        self.transport.write(_refusal(self.max_head_bytes))
        self.transport.close()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._in_body = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        super().on_message_complete()
        # The next request on this connection (keep-alive) starts a new head.
        self._in_head = True
        self._head_bytes = 0
        self._tail = b""
