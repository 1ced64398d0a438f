"""The session every loadbench user sends through (`DeadlineSession`): a deadline on the whole
request, redirects followed only when asked, and response bodies kept only up to ``--max-body``.

`read_whole_body` reads a ``stream=True`` response's body within that limit (the LLM scenarios
call it for an answer that is not a stream); `discarded_body` says when a body was too large to
keep, and checks then fail with `BODY_OVER_LIMIT` instead of parsing part of it. Definitions:
docs/metrics.md, "Redirects" and "Response bodies".

Imports gevent (no Locust): only scenarios and driving code use it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import gevent

from loadbench.protocols.bodystream import BodyReadError, body_stream, read_body
from loadbench.protocols.responses import (
    BODY_OVER_LIMIT,
    RedirectError,
    is_redirect_status,
    location_of,
    redirect_failure,
)
from loadbench.scenario.routing import Router
from loadbench.values import DEFAULT_MAX_BODY_BYTES

# The attribute of a response whose body was over --max-body: a `DiscardedBody`.
DISCARDED = "loadbench_discarded_body"
__all__ = [
    "BODY_OVER_LIMIT",
    "DISCARDED",
    "DeadlineSession",
    "DiscardedBody",
    "discarded_body",
    "read_whole_body",
]


@dataclass(frozen=True)
class DiscardedBody:
    """A response body over ``--max-body``: read to its end and counted, never kept."""

    size: int  # decoded bytes read
    limit: int  # --max-body


class DeadlineSession:
    """The session of loadbench's users, around Locust's fast client or the ``--http2`` one.

    - **Deadline**: the client's own timeout bounds each socket read, so an endpoint that keeps
      sending (an endless stream, a trickle) would never time out. Here the whole request, body
      included, must finish within ``seconds``, or ``TimeoutError`` fails it.
    - **Redirects**: the client follows up to ``follow_redirects`` hops itself (Locust's
      ``FastHttpUser.max_redirects``, httpx's ``max_redirects``); a 3xx that is still the answer
      fails the request here (`RedirectError`: where it pointed, and ``--follow-redirects`` when
      it is off), before the scenario's checks look at its body.
    - **Bodies**: every request goes out with ``stream=True``; unless the caller reads the
      stream itself, its body is read here in blocks (`read_whole_body`), kept when it fits
      ``max_body_bytes``, else counted and dropped. The request's ``response_time`` and
      ``response_length`` are what Locust records for a body read whole: to its end, its decoded
      size. Locust reads a body whole, however large (a 200 MB answer took 685 MB).

    - **Targets and retries**: with a `loadbench.scenario.routing.Router` (several targets, or
      ``--retries``), each request goes through it: it picks the target and sends each attempt
      through `send_once`.

    Locust's request event fires as the client fires it: when the ``catch_response`` block ends,
    or before the request returns without one. Anything else is passed to the wrapped session.
    """

    def __init__(
        self,
        session: Any,
        seconds: float,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        follow_redirects: int = 0,
        router: Router | None = None,
    ) -> None:
        self.session = session
        self.seconds = seconds
        self.max_body_bytes = max_body_bytes
        self.follow_redirects = follow_redirects
        self.router = router

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        if self.router is not None:
            return self.router.send(self.send_once, method, url, kwargs)
        return self.send_once(method, url, **kwargs)

    def send_once(self, method: str, url: str, **kwargs: Any) -> Any:
        """One attempt: the deadline, redirects and body limit described above."""
        catch_response = bool(kwargs.pop("catch_response", False))
        streamed = bool(kwargs.pop("stream", False))
        error = TimeoutError(f"timed out: no complete response within {self.seconds:g} s")
        with gevent.Timeout(self.seconds, error):
            response = self.session.request(method, url, catch_response=True, stream=True, **kwargs)
            if is_redirect_status(response.status_code):
                _fail_redirect(response, self.follow_redirects)
            if not streamed:
                read_whole_body(response, self.max_body_bytes)
        if not catch_response:
            with response:
                pass  # the request event fires here, as the client fires it without a block
        return response

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> Any:
        return self.request("PUT", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Any:
        return self.request("DELETE", url, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)


def read_whole_body(response: Any, limit: int) -> int:
    """Read a ``stream=True`` response's body to its end, keeping it when it is at most ``limit``
    bytes (else `discarded_body` says so and ``content`` is empty); returns its size.

    A body that breaks midway fails the request with what broke it (a timeout, a close), as
    Locust's own read does. Time and size go on the request's record (`DeadlineSession`).
    """
    if not response.status_code:
        return 0  # no answer (refused, reset, timed out): nothing to read
    meta = response.request_meta
    started = time.perf_counter()
    content: bytes | None = _read_already(response)
    if content is not None:
        size = len(content)
        content = content if size <= limit else None
    else:
        stream = body_stream(response)
        try:
            body = read_body(stream.chunks(), limit)
            content, size = body.content, body.size
        except BodyReadError as exc:
            stream.abort()  # not read to its end: the connection is not reused
            if meta.get("exception") is None:
                meta["exception"] = exc.error
            content, size = b"", exc.size
    # Locust's response_time of a streamed request ends at the headers: the body's read is added.
    meta["response_time"] = float(meta.get("response_time") or 0.0) + (time.perf_counter() - started) * 1000.0
    meta["response_length"] = size
    _keep_body(response, content if content is not None else b"")
    if content is None:
        setattr(response, DISCARDED, DiscardedBody(size, limit))
    return size


def discarded_body(response: Any) -> DiscardedBody | None:
    """How large a body over ``--max-body`` was (it was dropped, not kept), or None."""
    discarded = getattr(response, DISCARDED, None)
    return discarded if isinstance(discarded, DiscardedBody) else None


def _read_already(response: Any) -> bytes | None:
    """The body when the client has read it whole already, else None (nothing is read here).

    geventhttpclient reads an error answer's body (status >= 400) into its ``_cached_content``
    to describe the error before the response is handed over, whatever ``stream`` said.
    """
    cached = getattr(response, "_cached_content", None)
    return bytes(cached) if isinstance(cached, bytes | bytearray) else None


def _keep_body(response: Any, content: bytes) -> None:
    """Make ``content`` the body that ``response.content`` (``.text``, ``.json()``) gives.

    The ``--http2`` response keeps it itself. Locust's fast client returns the body that
    geventhttpclient caches in ``_cached_content`` once read; it is set on the response the
    scenario holds and on the one the request event carries, where the recorder reads a
    refusal's message (`loadbench.drive.recorder.error_body`).
    """
    keep = getattr(response, "keep_body", None)
    if keep is not None:
        keep(content)
        return
    for holder in (response, response.request_meta.get("response")):
        if holder is not None:
            holder._cached_content = content


def _fail_redirect(response: Any, follow_redirects: int) -> None:
    """Fail a request whose answer is a 3xx (module `loadbench.protocols.redirects`)."""
    if response.request_meta.get("exception") is None:
        location = location_of(getattr(response, "headers", None))
        response.request_meta["exception"] = RedirectError(
            redirect_failure(response.status_code, location, follow_redirects)
        )
