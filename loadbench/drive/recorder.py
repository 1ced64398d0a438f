"""Locust plugin: every request event -> one record in the run directory's ``requests.csv``.

Attach with ``Recorder(run_dir, secrets).register(environment)``. It listens to Locust's
``request`` event (never its aggregated, rounded statistics), appends one record per request,
and flushes to the OS at least every `FLUSH_INTERVAL_S`, so a run killed at any moment keeps
all but the last fraction of a second. Once a second it also appends the active user count
to ``users.csv`` (``unix_s,users``). It keeps running counters and a short window of
latencies for the live progress line.

A request whose answer took longer than ``--timeout`` (the scenario option, when the run has
it) is recorded as failed, kind ``timeout``, even when the client let it finish: a body that
arrives at full speed is read without yielding to gevent, so the client's deadline cannot cut
it off, but it must not count as a success.

A request that failed with an HTTP status >= 400 keeps what the server said: the message of the
answer's body (`loadbench.protocols.errorbody.server_message`) and its ``Retry-After`` header,
in the ``server_message`` and ``retry_after`` columns. The body is read only when it is already
in memory (Locust reads it, unless the request was streamed) or declares at most
`MAX_BODY_BYTES` in its ``Content-Length``; no more than that is ever parsed or kept. A client
without HTTP bodies hands its server's words over as ``response.server_message`` (the gRPC
user's status details, `loadbench.scenario.grpcuser`), kept the same way.

A request whose answer is a 3xx is a failure (kind ``HTTP 3xx``), with where it pointed as the
server's message: loadbench's own users fail it in the client already
(`loadbench.scenario.session.DeadlineSession`), any other client's is failed here. With
``--follow-redirects N`` the hops a request followed (its answer's ``history``) go to the
``redirects`` column; one that gave up after N (kind ``too many redirects``) followed N.

With ``--server-time-header NAME`` an answer that says how long the server worked on it, in that
header (`loadbench.protocols.servertiming`), keeps it in the ``server_ms`` column, success or
failure; with ``--replica-header NAME`` the replica its header names goes to ``replica`` (a load
balancer's ``X-Served-By``), or with ``--replica-field PATH`` the one its JSON body names there
(a body already in memory: never one read for it). ``--server-time-field PATH`` reads the server's
time (ms) from that JSON body where the header is not given or absent. ``--cache-header NAME`` and
``--cache-field PATH`` fill ``cache`` with what the answer says of the server's cache (``hit``,
``miss``; `loadbench.drive.answers.cache_said`). Such a request is recorded by the general path, not
the hot one; the body is parsed at most once for all the options that read it.
Without any of these options the recorder's listener is the one it always was: a run that does not
ask pays nothing per request.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import gevent
from locust.env import Environment

from loadbench.analyze.stats import error_kind, failure_text
from loadbench.drive.answers import (
    AnswerJson,
    cache_in_value,
    cache_said,
    error_body,
    header_list,
    header_value,
    number_ms,
    path_option,
    redirect_hops,
    replica_value,
    status_of,
)
from loadbench.drive.openloop import INTENDED_KEY
from loadbench.protocols.errorbody import retry_after_text, server_message
from loadbench.protocols.extract import JsonPath
from loadbench.protocols.responses import (
    RedirectError,
    is_redirect_status,
    location_of,
    redirect_failure,
    redirect_said,
)
from loadbench.protocols.servertiming import server_time_ms, split_spec
from loadbench.record import rundir
from loadbench.record.records import (
    EMPTY_AFTER_ROUTE,
    EMPTY_BEFORE_ROUTE,
    EMPTY_TAIL,
    EXTRAS_KEY,
    MAX_LABEL_CHARS,
    ROUTE_KEY,
    RequestRecord,
    RequestWriter,
    Route,
    csv_field,
    one_line,
)
from loadbench.record.series import UsersWriter
from loadbench.redact import scrub

FLUSH_INTERVAL_S = 0.5


def scrub_extras(extras: dict[str, Any], secrets: list[str]) -> dict[str, Any]:
    """The extras with credentials scrubbed from their text values (labels come from servers)."""
    return {k: scrub(v, secrets) if isinstance(v, str) else v for k, v in extras.items()}


class LineSink(Protocol):
    """Where record lines go: `RequestWriter` (a file) or a distributed worker's shipper."""

    def write(self, r: RequestRecord) -> None: ...
    def write_line(self, line: str) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class RecordCounter(Protocol):
    """Counts every record as it is written (`loadbench.drive.livemetrics.LiveMetrics`): each one
    reaches it once, by the cheapest of three doors, and counts as its ``requests.csv`` line."""

    def count(self, r: RequestRecord) -> None: ...

    def count_ok(
        self, name: str, status: int, latency_ms: float, start_unix_s: float, intended_unix_s: float | None
    ) -> None:
        """A plain success, from the figures its line was formatted from (``name`` as written)."""

    def feed(self, text: str) -> None:
        """Lines formatted elsewhere (a distributed worker's, received by the master)."""


class Recorder:
    """Writes request records and the user-count timeline for one run directory."""

    def __init__(
        self, run_dir: Path | None, secrets: list[str] | None = None, requests: LineSink | None = None
    ) -> None:
        """``run_dir`` None: a distributed worker, whose records go to ``requests`` (shipped to
        the master) and whose user count the master records."""
        self.run_dir = run_dir
        self.secrets = secrets or []
        if requests is None:
            assert run_dir is not None
            requests = RequestWriter(run_dir / rundir.REQUESTS)
        self.requests = requests
        self._users = UsersWriter(run_dir / rundir.USERS) if run_dir is not None else None
        self.total = 0
        self.errors = 0
        # Latencies of successful requests since the progress line last took them.
        self.window_ms: list[float] = []
        self._environment: Environment | None = None
        self._flusher: gevent.Greenlet | None = None
        # (name, method) as the scenario gave them -> the line's name and method fields, and the name.
        self._name_fields: dict[tuple[str, str], tuple[str, str]] = {}
        # Set by `loadbench.drive.exporter` (--metrics-port, --pushgateway): counts each record too.
        self.counter: RecordCounter | None = None
        self.timeout_s: float | None = None
        self._timeout_ms = math.inf
        self.follow_redirects = 0  # --follow-redirects: 0, none followed (no history to look at)
        # --server-time-header: (header, Server-Timing metric or None); None: not read.
        self.server_time: tuple[str, str | None] | None = None
        self.replica_header: str | None = None  # --replica-header: None, not read
        self.replica_field: JsonPath | None = None  # --replica-field: None, not read
        self.server_time_field: JsonPath | None = None  # --server-time-field: None, not read
        self.cache_header: str | None = None  # --cache-header: None, not read
        self.cache_field: JsonPath | None = None  # --cache-field: None, not read
        self._listener: Callable[..., None] = self.on_request

    def register(self, environment: Environment) -> Recorder:
        """Attach to ``environment.events`` and start the periodic flush."""
        self._environment = environment
        timeout = getattr(environment.parsed_options, "timeout", None)
        if isinstance(timeout, int | float) and timeout > 0:
            self.timeout_s = float(timeout)
            self._timeout_ms = self.timeout_s * 1000.0
        follow = getattr(environment.parsed_options, "follow_redirects", 0)
        self.follow_redirects = follow if isinstance(follow, int) and follow > 0 else 0
        spec = getattr(environment.parsed_options, "server_time_header", None)
        self.server_time = split_spec(spec) if isinstance(spec, str) and spec else None
        replica = getattr(environment.parsed_options, "replica_header", None)
        self.replica_header = replica if isinstance(replica, str) and replica else None
        options = environment.parsed_options
        self.replica_field = path_option(options, "replica_field")
        self.server_time_field = path_option(options, "server_time_field")
        header = getattr(options, "cache_header", None)
        self.cache_header = header if isinstance(header, str) and header else None
        self.cache_field = path_option(options, "cache_field")
        said = (self.server_time, self.replica_header, self.replica_field, self.server_time_field)
        reads = any(value is not None for value in (*said, self.cache_header, self.cache_field))
        self._listener = self._on_request_timed if reads else self.on_request
        environment.events.request.add_listener(self._listener)
        environment.events.quitting.add_listener(self._on_quitting)
        environment.events.spawning_complete.add_listener(self._on_spawning_complete)
        self._flusher = gevent.spawn(self._flush_loop)
        return self

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float,
        response_length: int,
        exception: BaseException | None = None,
        start_time: float | None = None,
        response: Any = None,
        context: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        # `status_of`, inline: this is the hot path, where a call per request shows.
        status = getattr(response, "status_code", None) or 0
        if not isinstance(status, int):
            status = 0
        self.total += 1
        intended = context.get(INTENDED_KEY) if context else None
        extras = context.get(EXTRAS_KEY) if context else None
        hops = redirect_hops(response) if self.follow_redirects else 0
        plain = exception is None and status < 300 and not hops and response_time <= self._timeout_ms
        if plain and start_time is not None and not extras:
            # The hot path: one f-string, with the name and method fields formatted once per name.
            cached = self._name_fields.get((name, request_type))
            if cached is None:
                cached = self._name_fields_for(name, request_type)
            fields, written_name = cached
            self.window_ms.append(response_time)
            route = context.get(ROUTE_KEY) if context else None
            tail = (
                EMPTY_BEFORE_ROUTE + route.fields() + EMPTY_AFTER_ROUTE
                if isinstance(route, Route)
                else EMPTY_TAIL
            )
            # %-formatting: measurably cheaper than an f-string with float format specs here.
            if intended is None:
                self.requests.write_line(
                    "%.6f,%.3f%s%d,%d,1,,%s\n"  # noqa: UP031
                    % (start_time, response_time, fields, status, response_length or 0, tail)
                )
            else:
                self.requests.write_line(
                    "%.6f,%.3f%s%d,%d,1,,%.6f%s\n"  # noqa: UP031
                    % (
                        start_time,
                        response_time,
                        fields,
                        status,
                        response_length or 0,
                        intended,
                        tail,
                    )
                )
            if self.counter is not None:  # its figures as they are: parsing the line back costs more
                self.counter.count_ok(written_name, status, response_time, start_time, intended)
            return
        self._record(
            request_type,
            name,
            response_time,
            response_length,
            exception,
            start_time,
            response,
            status,
            context,
            hops,
        )

    def _on_request_timed(
        self,
        request_type: str,
        name: str,
        response_time: float,
        response_length: int,
        exception: BaseException | None = None,
        start_time: float | None = None,
        response: Any = None,
        context: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        """The request listener with an option that reads the answer (``--server-time-header``,
        ``--replica-header``, ``--cache-header``, their ``-field`` forms): `on_request`, and an answer
        that says the server's time, its replica or its cache goes the general way, with them."""
        body = AnswerJson(response)
        server_ms = self._server_ms(response, body)
        replica = self._replica(response, body)
        cache = self._cache(response, body)
        if server_ms is None and not replica and not cache:
            self.on_request(
                request_type, name, response_time, response_length, exception, start_time, response, context
            )
            return
        self.total += 1
        hops = redirect_hops(response) if self.follow_redirects else 0
        self._record(
            request_type,
            name,
            response_time,
            response_length,
            exception,
            start_time,
            response,
            status_of(response),
            context,
            hops,
            server_ms,
            replica,
            cache,
        )

    def _record(
        self,
        request_type: str,
        name: str,
        response_time: float,
        response_length: int,
        exception: BaseException | None,
        start_time: float | None,
        response: Any,
        status: int,
        context: dict[str, Any] | None,
        hops: int,
        server_ms: float | None = None,
        replica: str = "",
        cache: str = "",
    ) -> None:
        """The general path: any request, as a `RequestRecord` (``status`` already checked, 0 for
        none; ``hops`` as the answer's history says)."""
        intended = context.get(INTENDED_KEY) if context else None
        extras = context.get(EXTRAS_KEY) if context else None
        route = context.get(ROUTE_KEY) if context else None
        route = route if isinstance(route, Route) else Route()
        error = message = retry_after = ""
        if exception is None:
            exception = self._answer_failure(status, response, response_time)
        if exception is not None:
            self.errors += 1
            # The real failure, not its wrapper (a timeout, not RetriesExceeded); one line, scrubbed.
            error = one_line(scrub(failure_text(exception), self.secrets))
            message, retry_after = self._failure_said(status, response)
            if self.follow_redirects and error_kind(status, error) == "too many redirects":
                hops = self.follow_redirects  # it gave up after following them all
        else:
            self.window_ms.append(response_time)
        record = RequestRecord(
            # Locust sets start_time on every HTTP request; a custom client might not.
            start_unix_s=start_time if start_time is not None else time.time() - response_time / 1000,
            latency_ms=response_time,
            name=scrub(one_line(str(name), 200), self.secrets),
            method=one_line(str(request_type), 50),
            status=status,
            response_bytes=int(response_length or 0),
            ok=exception is None,
            error=error,
            intended_unix_s=intended if isinstance(intended, float) else None,
            extras=scrub_extras(extras, self.secrets) if isinstance(extras, dict) else None,
            server_message=message,
            retry_after=retry_after,
            redirects=hops,
            server_ms=server_ms,
            replica=replica,
            target=route.target,
            attempt=route.attempt,
            request_id=route.request_id,
            cache=cache,
        )
        self.requests.write(record)
        if self.counter is not None:
            self.counter.count(record)

    def write_lines(self, text: str) -> None:
        """Record lines formatted elsewhere (what a distributed master receives from a worker)."""
        self.requests.write_line(text)
        if self.counter is not None:
            self.counter.feed(text)

    def _server_ms(self, response: Any, body: AnswerJson) -> float | None:
        """The server's own time the answer says in the ``--server-time-header`` (or, without one
        in the answer, its JSON body at ``--server-time-field``), None when it says none or there
        was no answer (a failed request's stand-in response, status 0)."""
        status = getattr(response, "status_code", None)
        if not isinstance(status, int) or status <= 0:
            return None
        value = None
        if self.server_time is not None:
            header, metric = self.server_time
            value = server_time_ms(header_list(getattr(response, "headers", None), header), metric)
        if value is None and self.server_time_field is not None:
            value = number_ms(body.at(self.server_time_field))
        return value

    def _replica(self, response: Any, body: AnswerJson) -> str:
        """The replica the ``--replica-header`` (or, without one in the answer, the JSON body at
        ``--replica-field``) names, one line, bounded and scrubbed; "" for none."""
        value = (
            header_list(getattr(response, "headers", None), self.replica_header)
            if self.replica_header
            else None
        )
        if not value and self.replica_field is not None:
            value = replica_value(body.at(self.replica_field))
        return scrub(one_line(value, MAX_LABEL_CHARS), self.secrets) if value else ""

    def _cache(self, response: Any, body: AnswerJson) -> str:
        """What the answer says of the server's cache: the ``--cache-header`` (or, without one in
        the answer, the JSON body at ``--cache-field``): ``hit``, ``miss``, or "" when it says neither."""
        if self.cache_header is None and self.cache_field is None:
            return ""
        status = getattr(response, "status_code", None)
        if not isinstance(status, int) or status <= 0:
            return ""  # no answer: nothing said
        said = ""
        if self.cache_header is not None:
            value = header_list(getattr(response, "headers", None), self.cache_header)
            said = cache_said(value, age=self.cache_header.lower() == "age")
        if not said and self.cache_field is not None:
            said = cache_in_value(body.at(self.cache_field))
        return said

    def _answer_failure(self, status: int, response: Any, response_time: float) -> BaseException | None:
        """Why an answer the client took as a success is a failure: later than ``--timeout``, or a
        3xx (not followed); None when it is one."""
        if response_time > self._timeout_ms:
            return TimeoutError(
                f"timed out: answered after {response_time / 1000:.3f} s, over --timeout {self.timeout_s:g} s"
            )
        if is_redirect_status(status):
            location = location_of(getattr(response, "headers", None))
            return RedirectError(redirect_failure(status, location, self.follow_redirects))
        return None

    def _failure_said(self, status: int, response: Any) -> tuple[str, str]:
        """A failed request's ``server_message`` and ``retry_after`` (scrubbed; "" for none)."""
        if status >= 400 and response is not None:
            return self._server_said(response)
        location = location_of(getattr(response, "headers", None)) if is_redirect_status(status) else ""
        if location:
            return scrub(redirect_said(location), self.secrets), ""
        if isinstance(getattr(response, "server_message", None), str):
            # A client that hands over the server's own words (gRPC: its status details).
            return server_message(response.server_message.encode(), "text/plain", self.secrets), ""
        return "", ""

    def _server_said(self, response: Any) -> tuple[str, str]:
        """The message of a failed answer's body and its ``Retry-After``, scrubbed; "" for none."""
        headers = getattr(response, "headers", None)
        content_type = header_value(headers, "Content-Type") or ""
        message = server_message(error_body(response, headers), content_type, self.secrets)
        return message, retry_after_text(header_value(headers, "Retry-After"), self.secrets)

    def _name_fields_for(self, name: str, request_type: str) -> tuple[str, str]:
        if len(self._name_fields) >= 10_000:
            self._name_fields.clear()  # a scenario with a new name per request: keep memory bounded
        written = scrub(one_line(str(name), 200), self.secrets)  # a name may carry a query string
        cached = f",{csv_field(written)},{csv_field(one_line(str(request_type), 50))},", written
        self._name_fields[(name, request_type)] = cached
        return cached

    def flush(self) -> None:
        self.requests.flush()
        if self._users is not None:
            self._users.flush()

    @property
    def write_failure(self) -> str | None:
        """Why the records can no longer be written (a full disk), or None: the run must stop."""
        users = self._users.failure if self._users is not None else None
        return getattr(self.requests, "failure", None) or users

    def _flush_loop(self) -> None:
        # Also covers quiet spells with no requests; records the user count once a second.
        next_users = 0.0
        while True:
            now = time.monotonic()
            if now >= next_users and self._users is not None:
                runner = self._environment.runner if self._environment else None
                users = runner.user_count if runner is not None else 0
                self._users.write(time.time(), users)
                next_users = now + 1.0
            self.flush()
            gevent.sleep(FLUSH_INTERVAL_S)

    def _on_spawning_complete(self, user_count: int, **_: Any) -> None:
        # Ramp-ups finish between the once-a-second samples; record the new level as it lands.
        if self._users is not None:
            self._users.write(time.time(), user_count)

    def _on_quitting(self, **_: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop the flusher, write what is buffered, close the files. Safe to call twice."""
        if self._flusher is not None:
            self._flusher.kill(block=False)
            self._flusher = None
        if self._environment is not None:
            self._environment.events.request.remove_listener(self._listener)
            self._environment.events.quitting.remove_listener(self._on_quitting)
            self._environment.events.spawning_complete.remove_listener(self._on_spawning_complete)
            self._environment = None
        self.requests.close()
        if self._users is not None:
            self._users.close()
