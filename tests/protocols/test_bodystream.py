"""Bodies read whole within a limit (loadbench.protocols.bodystream.read_body) and decoded block by
block (`decoder`), and what an unfollowed redirect is recorded as (loadbench.protocols.responses).
Pure: bytes in, no server (the end-to-end runs are tests/drive/test_hostile.py's)."""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterator

import brotli
import pytest

from loadbench.protocols.bodystream import BLOCK_BYTES, BodyReadError, decoder, read_body
from loadbench.protocols.responses import location_of, redirect_failure, redirect_said

# Text that compresses and bytes that do not: every decoder must give back both.
RAW = b"the quick brown fox " * 40_000 + os.urandom(200_000)
ENCODED = {
    "identity": RAW,
    "gzip": gzip.compress(RAW),
    "deflate": zlib.compress(RAW),  # zlib-wrapped, as HTTP's deflate says
    "br": brotli.compress(RAW),
}


def decoded(encoding: str, body: bytes, block: int) -> Iterator[bytes]:
    """The body as the network hands it over, ``block`` bytes at a time, through a decoder."""
    decode = decoder(encoding)
    for start in range(0, len(body), block):
        yield from decode(body[start : start + block])
    yield from decode(b"")


@pytest.mark.parametrize("encoding", ENCODED)
@pytest.mark.parametrize("block", [1000, 64 * 1024, 10**9])
def test_every_encoding_decodes_whole_in_bounded_pieces(encoding: str, block: int) -> None:
    pieces = list(decoded(encoding, ENCODED[encoding], block))
    assert b"".join(pieces) == RAW
    # A block inflates to at most BLOCK_BYTES per piece (brotli may overshoot by one output buffer).
    assert max(len(p) for p in pieces) <= max(block, 2 * BLOCK_BYTES)


def test_raw_deflate_as_some_servers_send_it() -> None:
    compress = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw_deflate = compress.compress(RAW) + compress.flush()
    assert b"".join(decoded("deflate", raw_deflate, 4096)) == RAW


@pytest.mark.parametrize("encoding", ENCODED)
def test_a_body_within_the_limit_is_kept_and_one_over_it_only_counted(encoding: str) -> None:
    body = read_body(decoded(encoding, ENCODED[encoding], 8192), len(RAW))
    assert (body.content, body.size) == (RAW, len(RAW))
    over = read_body(decoded(encoding, ENCODED[encoding], 8192), len(RAW) - 1)
    assert (over.content, over.size) == (None, len(RAW))  # read to its end, counted, not kept


def test_a_small_body_that_inflates_to_a_gigabyte_is_counted_piece_by_piece() -> None:
    # 1 GiB of zeros is a 1 MB gzip body: read block by block it never exists whole.
    compress = zlib.compressobj(wbits=zlib.MAX_WBITS | 16)
    zeros = bytes(1024 * 1024)
    bomb = b"".join(compress.compress(zeros) for _ in range(1024)) + compress.flush()
    largest = 0

    def pieces() -> Iterator[bytes]:
        nonlocal largest
        for piece in decoded("gzip", bomb, 64 * 1024):
            largest = max(largest, len(piece))
            yield piece

    body = read_body(pieces(), 1024)
    assert (body.content, body.size) == (None, 1024**3)
    assert largest <= BLOCK_BYTES


def test_a_broken_body_says_how_far_it_got() -> None:
    def breaks() -> Iterator[bytes]:
        yield b"x" * 10
        raise ConnectionResetError("reset by peer")

    with pytest.raises(BodyReadError) as caught:
        read_body(breaks(), 100)
    assert caught.value.size == 10 and isinstance(caught.value.error, ConnectionResetError)


@pytest.mark.parametrize(
    ("encoding", "body"), [("gzip", b"not gzip at all"), ("br", b"not brotli"), ("zstd", b"\x28\xb5\x2f\xfd")]
)
def test_a_body_that_is_not_its_encoding_fails_the_read(encoding: str, body: bytes) -> None:
    with pytest.raises(BodyReadError):
        read_body(decoded(encoding, body, 4096), 100)


def test_an_unfollowed_redirect_says_where_it_pointed() -> None:
    assert (
        redirect_failure(302, "/v2/models/m", 0)
        == "HTTP 302 redirect to /v2/models/m (pass --follow-redirects)"
    )
    assert redirect_failure(307, "/x", 5) == "HTTP 307 redirect to /x (not followed)"
    assert redirect_failure(301, "", 0) == "HTTP 301 redirect without a Location"
    assert redirect_failure(304, "/x", 0) == "HTTP 304 answer (a 3xx that is no redirect to follow)"
    assert redirect_said("/v2/models/m") == "redirect to /v2/models/m" and redirect_said("") == ""


def test_a_location_is_one_bounded_line() -> None:
    assert location_of({"location": "/a\r\n  b"}) == "/a b"
    long = location_of({"location": "/" + "x" * 500})
    assert len(long) == 200 and long.endswith("…")
    assert location_of({}) == "" and location_of(None) == "" and location_of({"location": ["/a", "/b"]}) == ""
