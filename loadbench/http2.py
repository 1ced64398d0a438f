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
``context["loadbench"]``: ``connect_ms``, ``ttfb_ms``, ``download_ms`` (`loadbench.network`).

httpx is slower than Locust's fast client (a few hundred requests/s per core; see
``docs/benchmarks.md``): it is only used when ``--http2`` is given.

Imports locust (its exception types): driving code only.
"""

from __future__ import annotations

import json as jsonlib
import time
from typing import Any

import httpx
from locust.exception import CatchResponseError, LocustError

from loadbench.network import request_phases

EXTRAS_KEY = "loadbench"  # as loadbench.recorder.EXTRAS_KEY (not imported: it pulls in the recorder)


class BadStatusError(Exception):
    """An HTTP status of 400 or more (Locust's fast client fails those too)."""


class Http2Response:
    """The answer to one request; a context manager when the request was sent with ``catch_response``."""

    def __init__(
        self,
        response: httpx.Response | None,
        request_meta: dict[str, Any],
        fire: Any,
        catch_response: bool,
    ) -> None:
        self._response = response
        self.request_meta = request_meta
        self._fire = fire
        self._catch_response = catch_response
        self._manual: bool | BaseException | None = None
        self._entered = False
        self.status_code: int = response.status_code if response is not None else 0
        self.headers: httpx.Headers | dict[str, str] = response.headers if response is not None else {}
        self.content: bytes | None = response.content if response is not None else None
        self.http_version: str = response.http_version if response is not None else ""

    @property
    def text(self) -> str | None:
        return self._response.text if self._response is not None else None

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
        if self._manual is True:
            self.request_meta["exception"] = None
        elif isinstance(self._manual, BaseException):
            self.request_meta["exception"] = self._manual
        elif exc_type is not None:
            return False  # an error in the scenario's own code: not a request failure
        self._fire(**self.request_meta)
        return exc_type is None

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
            follow_redirects=True,
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
        if stream or kwargs:
            extra = ["stream"] if stream else sorted(kwargs)
            raise LocustError(f"--http2 does not support {', '.join(extra)} in requests")
        user_context = self.user.context() if self.user is not None else {}
        context = {**user_context, **(context or {})}
        body: Any = data
        headers = dict(headers or {})
        if data is None and json is not None:
            body = jsonlib.dumps(json)
            headers.setdefault("Content-Type", "application/json")
        events: list[tuple[str, float]] = []

        def trace(event: str, _info: dict[str, Any]) -> None:
            events.append((event, time.perf_counter()))

        start_time = time.time()
        sent = time.perf_counter()
        response: httpx.Response | None = None
        exception: BaseException | None = None
        try:
            response = self.client.request(
                method, url, content=body, headers=headers, extensions={"trace": trace}
            )
        except (httpx.HTTPError, OSError) as exc:  # OSError: `DeadlineSession`'s TimeoutError
            exception = exc
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
            "response_length": len(response.content) if response is not None else 0,
            "url": str(response.url) if response is not None else url,
        }
        result = Http2Response(response, request_meta, self.request_event.fire, catch_response)
        request_meta["response"] = result
        if not catch_response:
            self.request_event.fire(**request_meta)
        return result

    def get(self, url: str, **kwargs: Any) -> Http2Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Http2Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> Http2Response:
        return self.request("PUT", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Http2Response:
        return self.request("DELETE", url, **kwargs)
