"""A streamed response body, piece by piece as its bytes arrive, on either of loadbench's clients.

`body_stream(response)` takes the response of a ``stream=True, catch_response=True`` request
and gives a `BodyStream`: ``pieces()`` yields the body's bytes in the pieces they came in
(the caller reads the clock as each piece is handed over: that is when its bytes arrived),
``abort()`` gives the connection up when the body was not read to its end. A piece may end in
the middle of a line or a character; `loadbench.protocols.sse.SSEParser` takes pieces of any size.

- ``--http2`` (`loadbench.scenario.http2.Http2Response`): it is a `BodyStream` itself; each piece is
  what httpx hands over per HTTP/2 DATA frame.
- Locust's fast client (``FastResponse`` over geventhttpclient): `FastBodyStream`. Locust offers
  no public incremental read (its ``iter_content`` waits until ``chunk_size`` bytes are in), so
  this is the one place that reads geventhttpclient's response under ``FastResponse._response``:
  its ``readline`` returns a line as soon as its bytes have arrived (it ``recv`` s whatever the
  socket holds, at most 4 KiB), so each piece is a line, handed over when its end arrived.

A body that breaks midway raises one of `STREAM_ERRORS` from ``pieces()``.

No locust import (the fast client's response is used through its attributes only).
"""

from __future__ import annotations

from collections.abc import Iterator
from http.client import HTTPException
from typing import Any, Protocol, runtime_checkable

import httpx

# What reading a broken body raises: geventhttpclient's HTTPParseError (an HTTPException) when
# the connection closes mid-body, resets and socket timeouts (OSError), httpx's errors on --http2.
STREAM_ERRORS: tuple[type[BaseException], ...] = (HTTPException, OSError, httpx.HTTPError)


@runtime_checkable
class BodyStream(Protocol):
    """A response body read as it arrives."""

    def pieces(self) -> Iterator[bytes]:
        """The body's bytes, each piece as soon as it has arrived; ends when the body is complete."""
        ...

    def abort(self) -> None:
        """Stop reading: the connection (HTTP/1.1) or the stream (HTTP/2) is closed, not reused."""
        ...


class FastBodyStream:
    """`BodyStream` over Locust's ``FastResponse`` (module docstring: why ``_response``)."""

    def __init__(self, response: Any) -> None:
        self._raw = response._response  # geventhttpclient's HTTPSocketPoolResponse

    def pieces(self) -> Iterator[bytes]:
        while True:
            line = self._raw.readline(b"\n")
            if not line:
                break
            yield line
        # The body is complete; a last line without a line end may remain.
        rest = self._raw.read()
        if rest:
            yield rest

    def abort(self) -> None:
        self._raw.release()


def body_stream(response: Any) -> BodyStream:
    """The `BodyStream` of a ``stream=True`` response from either client."""
    if isinstance(response, BodyStream):
        return response
    return FastBodyStream(response)
