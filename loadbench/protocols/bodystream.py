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

``chunks()`` reads the same body in large blocks, decoded (``Content-Encoding``), when no one
times its pieces: `read_body` takes a whole body that way and keeps it only up to a limit
(``--max-body``): the rest is read, counted and dropped, so a 200 MB answer never sits in memory
(docs/metrics.md, "Response bodies"). Decompression is bounded per block too: a small gzip body
that inflates to gigabytes is counted as it inflates, never held.

No locust import (the fast client's response is used through its attributes only).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.client import HTTPException
from typing import Any, Protocol, runtime_checkable

import httpx

# What reading a broken body raises: geventhttpclient's HTTPParseError (an HTTPException) when
# the connection closes mid-body, resets and socket timeouts (OSError), httpx's errors on --http2.
STREAM_ERRORS: tuple[type[BaseException], ...] = (HTTPException, OSError, httpx.HTTPError)
# What decoding a body that is not what its Content-Encoding says raises (brotli's error is a
# ValueError too, as is an encoding no one knows).
DECODE_ERRORS: tuple[type[BaseException], ...] = (zlib.error, ValueError)
# Bytes asked of the socket per read when a body is read whole, and the most one decoding step
# may inflate to.
BLOCK_BYTES = 256 * 1024


@runtime_checkable
class BodyStream(Protocol):
    """A response body read as it arrives."""

    def pieces(self) -> Iterator[bytes]:
        """The body's bytes, each piece as soon as it has arrived; ends when the body is complete."""
        ...

    def chunks(self) -> Iterator[bytes]:
        """The body's bytes, decoded, in blocks of up to about `BLOCK_BYTES`: for reading it whole."""
        ...

    def abort(self) -> None:
        """Stop reading: the connection (HTTP/1.1) or the stream (HTTP/2) is closed, not reused."""
        ...


class FastBodyStream:
    """`BodyStream` over Locust's ``FastResponse`` (module docstring: why ``_response``)."""

    def __init__(self, response: Any) -> None:
        self._raw = response._response  # geventhttpclient's HTTPSocketPoolResponse
        headers = getattr(response, "headers", None)
        encoding = headers.get("content-encoding") if headers is not None else None
        self._encoding = encoding if isinstance(encoding, str) else ""

    def chunks(self) -> Iterator[bytes]:
        # The client decodes only when it reads a body whole (``content``); read in blocks, it
        # hands over the bytes as sent.
        decode = decoder(self._encoding)
        while True:
            block = self._raw.read(BLOCK_BYTES)
            if not block:
                break
            yield from decode(block)
        yield from decode(b"")

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
    # Not isinstance(response, BodyStream): a runtime Protocol check costs tens of microseconds,
    # and every request of a run comes here.
    if callable(getattr(response, "pieces", None)):
        return response  # type: ignore[no-any-return]
    return FastBodyStream(response)


@dataclass(frozen=True)
class Body:
    """A body read whole: its bytes when they fit the limit (None: discarded), and its size."""

    content: bytes | None
    size: int  # decoded bytes read, kept or not


def read_body(chunks: Iterator[bytes], limit: int) -> Body:
    """Read every chunk; keep them while the total is at most ``limit`` bytes, then only count.

    A read that breaks raises as the chunks do (`STREAM_ERRORS`, `DECODE_ERRORS`); the caller
    still learns how far it got from `BodyReadError.size`.
    """
    kept: list[bytes] | None = []
    size = 0
    try:
        for chunk in chunks:
            size += len(chunk)
            if kept is not None:
                if size <= limit:
                    kept.append(chunk)
                else:
                    kept = None  # over the limit: what was kept goes too, the rest is counted
    except (*STREAM_ERRORS, *DECODE_ERRORS) as exc:
        raise BodyReadError(exc, size) from exc
    return Body(b"".join(kept) if kept is not None else None, size)


class BodyReadError(Exception):
    """Reading a body broke after ``size`` bytes; ``error`` is what broke it."""

    def __init__(self, error: BaseException, size: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.size = size


Decoder = Callable[[bytes], Iterator[bytes]]


def decoder(content_encoding: str) -> Decoder:
    """A decoder for a body sent with ``content_encoding``: feed it the body's blocks, then ``b""``
    to end it; each call yields the decoded bytes, in pieces of at most `BLOCK_BYTES`.

    ``gzip``, ``deflate`` (zlib, or raw as some servers send it), ``br`` (when the ``brotli``
    package, which geventhttpclient needs, is there) and ``identity``; anything else raises
    ``ValueError`` at the first block, as the fast client does for a body it reads whole.
    """
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return _identity
    if encoding in ("gzip", "x-gzip"):
        return _Inflate(zlib.MAX_WBITS | 16).feed
    if encoding == "deflate":
        return _Inflate(None).feed
    if encoding == "br":
        return _Brotli().feed
    raise ValueError(f"unknown content encoding {content_encoding[:40]!r}")


def _identity(block: bytes) -> Iterator[bytes]:
    if block:
        yield block


class _Inflate:
    """zlib's inflate, at most `BLOCK_BYTES` out per step (``wbits`` None: zlib or raw deflate,
    told by the first two bytes)."""

    def __init__(self, wbits: int | None) -> None:
        self._wbits = wbits
        self._inflate: Any = None if wbits is None else zlib.decompressobj(wbits)

    def feed(self, block: bytes) -> Iterator[bytes]:
        if self._inflate is None:
            if not block:
                return
            zlib_header = len(block) >= 2 and block[0] & 0x0F == 8 and (block[0] << 8 | block[1]) % 31 == 0
            self._inflate = zlib.decompressobj(zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS)
        if not block:
            tail = self._inflate.flush()
            if tail:
                yield tail
            return
        data = block
        while data:
            out = self._inflate.decompress(data, BLOCK_BYTES)
            if out:
                yield out
            data = self._inflate.unconsumed_tail


class _Brotli:
    def __init__(self) -> None:
        try:
            import brotli  # geventhttpclient's own dependency, used for its "br" bodies
        except ImportError:
            raise ValueError("unknown content encoding 'br' (the brotli package is missing)") from None
        self._brotli = brotli
        self._decompressor = brotli.Decompressor()

    def feed(self, block: bytes) -> Iterator[bytes]:
        try:
            out = self._decompressor.process(block, output_buffer_limit=BLOCK_BYTES)
            while out:  # output held back by the limit comes out of calls with no input
                yield out
                out = self._decompressor.process(b"", output_buffer_limit=BLOCK_BYTES)
        except self._brotli.error as exc:
            raise ValueError(f"bad brotli body: {exc}") from None
