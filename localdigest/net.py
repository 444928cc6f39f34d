"""Bounded HTTP reads: every request localdigest makes (feeds, inference servers) has an overall
deadline and a size cap.

httpx's timeouts are per read: a server that sends one byte a second never trips them, and one
that never stops sending fills the memory. Reading the body in chunks and checking both after
each one bounds the whole exchange.
"""

import time

import httpx


def printable(text: str) -> str:
    """Text a server sent, fit for a one-line message: no control characters (ANSI escapes)."""
    return "".join(ch if ch.isprintable() else " " for ch in text)


class TooLarge(Exception):
    """The answer passed the size cap (its size so far is in .size)."""

    def __init__(self, size: int):
        super().__init__(f"more than {size} bytes")
        self.size = size


def read_bounded(client: httpx.Client, method: str, url: str, *, deadline: float, max_bytes: int,
                 connect_timeout: float = 10.0, **request) -> tuple[int, httpx.Headers, bytes]:
    """(status, headers, body) of one request that ends by time.monotonic() == deadline.

    Raises httpx.TimeoutException when the deadline passes, TooLarge past max_bytes, and
    httpx.TransportError for connection problems."""
    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise httpx.ReadTimeout("the deadline passed")
        return remaining

    timeout = httpx.Timeout(left(), connect=min(connect_timeout, left()))
    with client.stream(method, url, timeout=timeout, **request) as response:
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise TooLarge(max_bytes)
            chunks.append(chunk)
            left()
        return response.status_code, response.headers, b"".join(chunks)
