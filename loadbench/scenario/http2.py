"""HTTP/2 for scenarios (``--http2``): an httpx client that reports to Locust like its fast client.

`Http2Session` has the part of Locust's ``FastHttpSession`` interface that scenarios use
(``request``/``get``/``post``/``put``/``delete``, ``name=``, ``json=``, ``data=``, ``headers=``,
``catch_response=``, ``context=``), and fires Locust's ``request`` event with the same fields:
``request_type``, ``name``, ``response_time`` (``time.perf_counter()`` ms from just before the
send until the body was read), ``response_length`` (body bytes), ``exception``, ``context``,
``start_time`` (wall clock), ``response`` (with ``status_code``; 0 when no answer came) and
``url``. So ``requests.csv`` is written the same way on both paths.

Every request is HTTP/2 (``http1=False``): ``http://`` targets by prior knowledge (h2c),
``https://`` by ALPN; a server that does not speak HTTP/2 fails the request. Each Locust user
has its own client, hence its own connection, like the fast client.

Per request, the phases measured through httpx's ``trace`` extension go to
``context["loadbench"]``: ``connect_ms``, ``ttfb_ms``, ``download_ms`` (`loadbench.analyze.network`).

``stream=True`` (the LLM scenarios' SSE, and every request of `loadbench.scenario.helpers.DeadlineSession`,
which reads bodies whole itself within ``--max-body``): the request returns once the response
headers are in (``response_time`` is then the time to them, as with Locust's clients) and the body
is read as it arrives through `Http2Response.pieces` or `Http2Response.chunks`
(`loadbench.protocols.bodystream.BodyStream`); the phases, the download included, are taken when
the ``catch_response`` block ends, and merged into the extras the scenario attached.

Redirects are followed only up to ``max_redirects`` hops (0, the default: none, as
``--follow-redirects`` is off by default); the hops are the response's ``history``.

A GOAWAY (a server ending a connection, e.g. hypercorn after 1,000 requests on it): a request
on a stream above its last stream id was not processed, so it is sent again, once, on a new
connection and recorded once (httpcore already does that itself when it sees the GOAWAY first,
through its internal ``ConnectionNotAvailable``; what reaches us is a ``RemoteProtocolError``
holding h2's ``ConnectionTerminated``). A request at or below the last stream id may have been
processed (hypercorn runs it, then never answers): not safe to resend, so it fails as
`GoawayConnectionClosedError` (error kind "connection closed"), not as a malformed response.

httpx is slower than Locust's fast client (a few hundred requests/s per core; see
``docs/benchmarks.md``): it is only used when ``--http2`` is given.

Imports locust (its exception types): driving code only.
"""

from __future__ import annotations

import json as jsonlib
import time
from collections.abc import Iterator
from typing import Any

import h2.events
import httpx
from locust.exception import CatchResponseError, LocustError

from loadbench.analyze.network import request_phases
from loadbench.record.records import EXTRAS_KEY


class BadStatusError(Exception):
    """An HTTP status of 400 or more (Locust's fast client fails those too)."""


class GoawayConnectionClosedError(Exception):
    """The server ended the connection with GOAWAY without answering a request it may have processed."""


def goaway_of(exc: BaseException) -> h2.events.ConnectionTerminated | None:
    """The GOAWAY behind an httpx error, if any: httpcore raises its ``RemoteProtocolError(event)``,
    which httpx re-raises as its own with the text only, the original as ``__cause__``."""
    seen: BaseException | None = exc
    for _ in range(3):  # httpx's error, httpcore's below it
        if seen is None:
            break
        for arg in seen.args:
            if isinstance(arg, h2.events.ConnectionTerminated):
                return arg
        seen = seen.__cause__
    return None


def unprocessed(goaway: h2.events.ConnectionTerminated, stream_id: int | None) -> bool:
    """RFC 9113 6.8: streams above GOAWAY's last stream id were not processed (nor was a request
    whose headers never went out), so sending it again is safe."""
    last = goaway.last_stream_id
    return stream_id is None or (last is not None and stream_id > last)


class Http2Response:
    """The answer to one request; a context manager when the request was sent with ``catch_response``.

    For a ``stream=True`` request the body is not read yet: `pieces` reads it as it arrives,
    ``content`` reads it whole on first use.
    """

    def __init__(
        self,
        response: httpx.Response | None,
        request_meta: dict[str, Any],
        fire: Any,
        catch_response: bool,
        trace: tuple[list[tuple[str, float]], float] | None = None,
    ) -> None:
        self._response = response
        self.request_meta = request_meta
        self._fire = fire
        self._catch_response = catch_response
        self._manual: bool | BaseException | None = None
        self._entered = False
        # Streamed: the trace events (still growing while the body is read) and the send time.
        self._trace = trace
        self._content: bytes | None = None
        self.status_code: int = response.status_code if response is not None else 0
        self.headers: httpx.Headers | dict[str, str] = response.headers if response is not None else {}
        self.http_version: str = response.http_version if response is not None else ""
        # As Locust's clients keep it: the preflight shows what was sent (`content`, the body).
        self.request: httpx.Request | None = response.request if response is not None else None
        if response is not None and trace is None:
            self._content = response.content

    @property
    def content(self) -> bytes | None:
        """The body (read whole now if the request was streamed); None when no answer came."""
        if self._content is None and self._response is not None:
            try:
                self._content = self._response.read()
            except httpx.HTTPError as exc:  # the body broke: the request failed
                self.request_meta["exception"] = exc
                self._content = b""
        return self._content

    def pieces(self) -> Iterator[bytes]:
        """The body as it arrives (`loadbench.protocols.bodystream.BodyStream`): one piece per DATA frame."""
        if self._response is not None:
            yield from self._response.iter_bytes()

    def chunks(self) -> Iterator[bytes]:
        """The body in blocks, decoded (httpx decodes its Content-Encoding), to be read whole."""
        return self.pieces()

    def keep_body(self, content: bytes) -> None:
        """Make ``content`` the body (`loadbench.scenario.helpers.read_whole_body` read it, within its limit)."""
        self._content = content

    @property
    def history(self) -> list[httpx.Response]:
        """The redirect answers that led to this one, oldest first (none unless redirects are followed)."""
        return list(self._response.history) if self._response is not None else []

    def abort(self) -> None:
        """Stop reading the body: the HTTP/2 stream is reset; the connection stays for the others."""
        if self._response is not None:
            self._response.close()

    @property
    def text(self) -> str | None:
        if self.content is None or self._response is None:
            return None
        return self._response.text

    def json(self) -> Any:
        if self.content is None:
            raise ValueError("no response body")
        return jsonlib.loads(self.content)

    def __enter__(self) -> Http2Response:
        if not self._catch_response:
            raise LocustError("a with-block needs catch_response=True")
        self._entered = True
        return self

    def __exit__(self, exc_type: Any, value: Any, traceback: Any) -> bool:
        if self._trace is not None:
            self._end_stream()
        if self._manual is True:
            self.request_meta["exception"] = None
        elif isinstance(self._manual, BaseException):
            self.request_meta["exception"] = self._manual
        elif exc_type is not None:
            return False  # an error in the scenario's own code: not a request failure
        self._fire(**self.request_meta)
        return exc_type is None

    def _end_stream(self) -> None:
        """Close a streamed body and merge its phases (download included) into the extras."""
        assert self._trace is not None
        self.abort()  # a no-op when the body was read to its end
        events, sent = self._trace
        context = dict(self.request_meta.get("context") or {})
        # A new dict: the scenario may have replaced the extras after the request returned.
        context[EXTRAS_KEY] = {**(context.get(EXTRAS_KEY) or {}), **request_phases(events, sent)}
        self.request_meta["context"] = context

    def success(self) -> None:
        if not self._entered:
            raise LocustError("success() needs catch_response=True and a with-block")
        self._manual = True

    def failure(self, exc: Any) -> None:
        if not self._entered:
            raise LocustError("failure() needs catch_response=True and a with-block")
        self._manual = exc if isinstance(exc, BaseException) else CatchResponseError(exc)


class Http2Session:
    """A Locust-compatible session over one httpx HTTP/2 client."""

    def __init__(
        self,
        base_url: str,
        request_event: Any,
        user: Any = None,
        timeout_s: float = 60.0,
        verify: bool = True,
        max_redirects: int = 0,
    ) -> None:
        self.base_url = base_url
        self.request_event = request_event
        self.user = user
        # trust_env=False: ignore proxy variables, like Locust's own client.
        self.client = httpx.Client(
            base_url=base_url,
            http1=False,
            http2=True,
            timeout=timeout_s,
            verify=verify,
            trust_env=False,
            follow_redirects=max_redirects > 0,
            max_redirects=max_redirects,
        )

    def close(self) -> None:
        self.client.close()

    def request(
        self,
        method: str,
        url: str,
        name: str | None = None,
        data: Any = None,
        catch_response: bool = False,
        stream: bool = False,
        headers: dict[str, str] | None = None,
        json: Any = None,
        context: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Http2Response:
        if kwargs:
            raise LocustError(f"--http2 does not support {', '.join(sorted(kwargs))} in requests")
        user_context = self.user.context() if self.user is not None else {}
        context = {**user_context, **(context or {})}
        body: Any = data
        headers = dict(headers or {})
        if data is None and json is not None:
            body = jsonlib.dumps(json)
            headers.setdefault("Content-Type", "application/json")
        events: list[tuple[str, float]] = []

        start_time = time.time()
        sent = time.perf_counter()
        response, exception = self._send(method, url, body, headers, stream, events)
        response_time = (time.perf_counter() - sent) * 1000.0
        extras = dict(context.get(EXTRAS_KEY) or {})
        extras.update(request_phases(events, sent))
        context[EXTRAS_KEY] = extras
        if response is not None and response.status_code >= 400:
            exception = BadStatusError(f"HTTP {response.status_code} from {method} {url}")
        request_meta: dict[str, Any] = {
            "request_type": method,
            "name": name or url,
            "context": context,
            "exception": exception,
            "start_time": start_time,
            "response_time": response_time,
            # A streamed body is not read yet: the scenario sets its length when it has read it.
            "response_length": len(response.content) if response is not None and not stream else 0,
            "url": str(response.url) if response is not None else url,
        }
        result = Http2Response(
            response,
            request_meta,
            self.request_event.fire,
            catch_response,
            (events, sent) if stream else None,
        )
        request_meta["response"] = result
        if not catch_response:
            self.request_event.fire(**request_meta)
        return result

    def _send(
        self,
        method: str,
        url: str,
        body: Any,
        headers: dict[str, str],
        stream: bool,
        events: list[tuple[str, float]],
    ) -> tuple[httpx.Response | None, BaseException | None]:
        """Send one logical request: the response or the failure, resent once when a GOAWAY left
        it unprocessed (module docstring); ``events`` gets httpx's trace of every attempt."""
        streams: list[int] = []

        def trace(event: str, info: dict[str, Any]) -> None:
            events.append((event, time.perf_counter()))
            if event == "http2.send_request_headers.started" and isinstance(info.get("stream_id"), int):
                streams.append(info["stream_id"])

        exception: BaseException | None = None
        for attempt in range(2):  # the second: a request a GOAWAY left unprocessed, once
            streams.clear()
            try:
                built = self.client.build_request(
                    method, url, content=body, headers=headers, extensions={"trace": trace}
                )
                # stream: back once the headers are in; the body is read by the caller (`pieces`).
                return self.client.send(built, stream=stream), None
            except (httpx.HTTPError, OSError) as exc:  # OSError: `DeadlineSession`'s TimeoutError
                exception = exc
                goaway = goaway_of(exc)
                if goaway is None:
                    break
                stream_id = streams[-1] if streams else None
                if attempt or not unprocessed(goaway, stream_id):
                    exception = GoawayConnectionClosedError(
                        f"the server ended the connection (GOAWAY, error code {goaway.error_code}, "
                        f"last stream {goaway.last_stream_id}) without answering stream "
                        f"{stream_id if stream_id is not None else '?'}, which it may have processed"
                    )
                    break
        return None, exception

    def get(self, url: str, **kwargs: Any) -> Http2Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Http2Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> Http2Response:
        return self.request("PUT", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Http2Response:
        return self.request("DELETE", url, **kwargs)
