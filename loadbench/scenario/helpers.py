"""Helpers for locustfiles that drive model endpoints (the built-in ``scenarios/`` use them).

A scenario is an ordinary locustfile: it runs under ``loadbench run --scenario path.py`` and
under plain ``locust -f path.py --host URL`` alike. This module gives it:

- `add_request_options(parser)`: the options every built-in scenario takes (``--header``,
  ``--payload``, ``--data``); call it from an ``init_command_line_parser`` listener.
- `Payloads`: request bodies from ``--payload JSON``, ``--data FILE.jsonl`` or a default,
  handed out round-robin, or as ``--popularity`` says (``--distinct K``: K variants of them,
  ``--seed``: the draws' seed; `add_workload_control`). Top-level keys that start with ``_``
  (e.g. ``_expected``) are loadbench metadata: stripped before sending, kept beside the body.
- `ModelUser`: a ``FastHttpUser`` (Locust's fast client) that sends ``--header`` headers, follows
  no redirect unless ``--follow-redirects`` (a 3xx answer is a failure) and keeps no more of a
  response body than ``--max-body`` (`DeadlineSession`).
- `check_json(response, key)`: mark a response failed unless it is JSON holding ``key`` (any JSON
  without one), or ``body over --max-body`` when the body was too large to keep.
- `add_extras(response, **fields)`: per-request fields for ``requests.csv`` (tokens, labels).
- ``--http2`` (in `add_request_options`): `ModelUser` sends through `loadbench.scenario.http2` instead.
- `on_setup`: decorate the scenario's set-up; its failure stops the run with one clear line.
- `fire_init(environment, runner)`: how loadbench's drivers fire Locust's ``init``; returns the
  set-ups' failures.

loadbench's tab in plain ``locust -f SCENARIO``'s web UI is `loadbench.ui.hook`'s: a scenario
that wants it imports that module (the built-in ones do).

Imports locust: only driving code and scenarios may import this module.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from locust import FastHttpUser, constant, events

from loadbench.errors import LoadbenchError, ScenarioError, UsageError
from loadbench.load.popularity import Picker, Popularity, parse_popularity
from loadbench.protocols.extract import json_path_text
from loadbench.protocols.variety import distinct_bodies, payload_key
from loadbench.record.records import EXTRAS_KEY
from loadbench.scenario.routing import add_routing_options, router_for
from loadbench.scenario.session import BODY_OVER_LIMIT, DeadlineSession, discarded_body
from loadbench.scenario.workloadctl import add_workload_control
from loadbench.values import (
    DEFAULT_FOLLOW_REDIRECTS,
    DEFAULT_MAX_BODY_BYTES,
    argument_type,
    body_size,
    format_size,
    header_name,
    json_field_path,
    parse_header,
    redirect_bound,
    server_time_header,
)

Body = Any
DEFAULT_TIMEOUT_S = 60.0
Extras = dict[str, Any]
SETUP_FAILURES = "loadbench_setup_failures"  # the attribute of a Locust environment `fire_init` sets
# A payload's metadata key holding its `payload_key` (set by `Payloads`, never sent, never read
# from a row): the record's ``payload_key`` column.
PAYLOAD_KEY_META = "_payload_key"


def add_request_options(parser: argparse.ArgumentParser, payload_help: str = "") -> None:
    """``--header``, ``--payload`` and ``--data``: how every built-in scenario builds requests."""
    group = parser.add_argument_group("loadbench request options")
    group.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="HTTP header sent with every request; repeatable (values of credential headers are never written)",
    )
    group.add_argument(
        "--payload",
        default=None,
        metavar="JSON",
        help="one JSON request body, sent every time. " + payload_help,
    )
    group.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"per-request timeout; a slower answer is an error (default {DEFAULT_TIMEOUT_S:g})",
    )
    group.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    group.add_argument(
        "--data",
        default=None,
        metavar="FILE.jsonl",
        help="JSON Lines file of request bodies, sent in order round-robin; "
        "keys starting with '_' are metadata, not sent",
    )
    group.add_argument(
        "--http2",
        action="store_true",
        help="send over HTTP/2 (httpx; h2c by prior knowledge for http://, ALPN for https://); "
        "slower per core than the default HTTP/1.1 client: see docs/benchmarks.md",
    )
    # `loadbench run` and `ui` take these themselves (cli.options.RESPONSE_OPTIONS) and set them
    # here (drive.locustfiles.apply_transport_settings); plain `locust -f` reads them here.
    group.add_argument(
        "--follow-redirects",
        type=redirect_bound,
        nargs="?",
        const=DEFAULT_FOLLOW_REDIRECTS,
        default=0,
        metavar="N",
        help=f"follow up to N redirects per request (default N {DEFAULT_FOLLOW_REDIRECTS}); "
        "without it a 3xx answer is a failure",
    )
    group.add_argument(
        "--max-body",
        type=body_size,
        default=DEFAULT_MAX_BODY_BYTES,
        metavar="BYTES",
        help=f"keep at most BYTES of a response body (default {format_size(DEFAULT_MAX_BODY_BYTES)}); "
        "a larger one is read, counted and dropped",
    )
    group.add_argument(
        "--server-time-header",
        type=server_time_header,
        default=None,
        metavar="NAME",
        help="record the server's own time per request (requests.csv server_ms) from this header: "
        "milliseconds, or Server-Timing (the sum of its dur=, or NAME:METRIC for one metric)",
    )
    add_replica_options(group)
    add_answer_options(group)
    add_workload_control(group)
    add_routing_options(parser)


def add_replica_options(group: Any) -> None:
    """``--replica-header`` and ``--replica-field``: which replica served each request."""
    group.add_argument(
        "--replica-header",
        type=header_name,
        default=None,
        metavar="NAME",
        help="record which replica served each request (requests.csv replica) from this header, "
        "e.g. X-Served-By behind a load balancer: the report then has per-replica statistics",
    )
    group.add_argument(
        "--replica-field",
        type=argument_type(json_path_text),
        default=None,
        metavar="PATH",
        help="the same from the answer's JSON body at this dotted path (e.g. meta.replica)",
    )


def add_answer_options(group: Any) -> None:
    """``--server-time-field``, ``--cache-header`` and ``--cache-field``: more the recorder reads
    from each answer (`loadbench.drive.recorder`)."""
    group.add_argument(
        "--server-time-field",
        type=json_field_path,
        default=None,
        metavar="PATH",
        help="record the server's own time per request (requests.csv server_ms, in ms) from the answer's "
        "JSON body at this dotted path (e.g. timings.total_ms), where --server-time-header is absent",
    )
    group.add_argument(
        "--cache-header",
        type=header_name,
        default=None,
        metavar="NAME",
        help="record whether the server's cache answered (requests.csv cache: hit/miss) from this header: "
        "X-Cache (HIT/MISS, TCP_HIT, 'Hit from cloudfront'), or Age (a hit when above 0)",
    )
    group.add_argument(
        "--cache-field",
        type=json_field_path,
        default=None,
        metavar="PATH",
        help="the same from the answer's JSON body at this dotted path (true/'hit' a hit, false/'miss' a miss)",
    )


def tls_verify(options: argparse.Namespace | None) -> bool:
    """Whether to verify TLS certificates (yes, unless ``--insecure``)."""
    return not getattr(options, "insecure", False)


def headers_from_options(options: argparse.Namespace | None) -> dict[str, str]:
    """The ``--header`` values as a dict (later repeats of a name win)."""
    raw = getattr(options, "header", None) or []
    return dict(parse_header(h) for h in raw)


def _split_meta(body: Body) -> tuple[Body, Extras]:
    if isinstance(body, dict) and any(k.startswith("_") for k in body):
        return {k: v for k, v in body.items() if not k.startswith("_")}, {
            k: v for k, v in body.items() if k.startswith("_")
        }
    return body, {}


def read_jsonl(path: Path) -> list[Body]:
    """Every line of a JSON Lines file; blank lines skipped; a bad line -> one-line `ScenarioError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(f"data file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"cannot read data file {path}: {exc}") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ScenarioError(f"data file {path} line {number}: invalid JSON ({exc.msg})") from None
    if not rows:
        raise ScenarioError(f"data file {path} holds no JSON lines")
    return rows


class Payloads:
    """Request bodies handed out round-robin (or as ``popularity`` says), shared by all users of a
    process. ``keyed`` (or a ``popularity``): each payload's metadata holds its `payload_key`
    (`PAYLOAD_KEY_META`), computed here once."""

    def __init__(
        self, bodies: list[Body], popularity: Popularity | None = None, seed: int = 0, keyed: bool = False
    ) -> None:
        if not bodies:
            raise ScenarioError("no request bodies to send")
        self.items: list[tuple[Body, Extras]] = [_split_meta(b) for b in bodies]
        self.popularity = popularity
        self.seed = seed
        self.keyed = keyed or popularity is not None
        if self.keyed:
            for body, meta in self.items:
                meta[PAYLOAD_KEY_META] = payload_key(body)
        self._cycle: Iterator[tuple[Body, Extras]] = itertools.cycle(self.items)
        self._picker = Picker(popularity, len(self.items), seed) if popularity is not None else None

    def with_bodies(self, bodies: list[Body]) -> Payloads:
        """Other bodies (a scenario's requests made from these rows), handed out as these are."""
        return Payloads(bodies, self.popularity, self.seed, self.keyed)

    @classmethod
    def from_options(cls, options: argparse.Namespace | None, default: list[Body] | None = None) -> Payloads:
        """From ``--payload`` or ``--data`` (not both); else ``default``; else a `UsageError`."""
        payload = getattr(options, "payload", None)
        data = getattr(options, "data", None)
        if payload and data:
            raise UsageError("give --payload or --data, not both")
        if payload:
            try:
                rows = [json.loads(payload)]
            except json.JSONDecodeError as exc:
                raise UsageError(f"--payload is not valid JSON ({exc.msg} at character {exc.pos})") from None
        elif data:
            rows = read_jsonl(Path(data))
        elif default:
            rows = default
        else:
            raise UsageError("this scenario needs a request body: give --payload JSON or --data FILE.jsonl")
        distinct = getattr(options, "distinct", None)
        if distinct:
            rows = distinct_rows(rows, int(distinct))
        popularity = getattr(options, "popularity", None)
        keyed = bool(
            distinct
            or popularity
            or getattr(options, "cache_header", None)
            or getattr(options, "cache_field", None)
        )
        seed = getattr(options, "seed", None)
        return cls(rows, parse_popularity(popularity) if popularity else None, int(seed or 0), keyed)

    def indexes(self) -> Iterator[int]:
        """The index in `items` of each next request's payload, endless: for a scenario that sends
        its own forms of the items (serialized at set-up), in the order `next` would."""
        if self._picker is None:
            return itertools.cycle(range(len(self.items)))
        return iter(self._picker.next, -1)  # never -1: endless

    def next(self) -> tuple[Body, Extras]:
        """The next (body, metadata) pair."""
        if self._picker is None:
            return next(self._cycle)
        return self.items[self._picker.next()]


def payload_context(meta: Extras) -> dict[str, Any]:
    """A request's context carrying its payload's key (``context=`` of a client call), {} when the
    payload has none: for scenarios that record no other extras."""
    key = meta.get(PAYLOAD_KEY_META)
    return {EXTRAS_KEY: {"payload_key": key}} if key else {}


def distinct_rows(rows: list[Body], count: int) -> list[Body]:
    """``count`` distinct bodies from ``rows`` (`loadbench.protocols.variety.distinct_bodies`), each
    with its row's metadata (its ``_expected`` label) kept."""
    split = [_split_meta(row) for row in rows]
    bodies = distinct_bodies([body for body, _ in split], count)
    joined = []
    for i, body in enumerate(bodies):
        meta = split[i % len(split)][1]
        joined.append(body | meta if meta and isinstance(body, dict) else body)
    return joined


class ModelUser(FastHttpUser):
    """Base user for model endpoints: Locust's fast HTTP client, ``--header`` headers, no think time.

    Users send back to back (a closed loop): throughput is what ``--users`` concurrent
    clients get. Subclasses add ``@task`` methods.
    """

    abstract = True
    wait_time = constant(0)
    network_timeout = DEFAULT_TIMEOUT_S
    connection_timeout = DEFAULT_TIMEOUT_S
    insecure = False  # Locust's FastHttpUser skips TLS verification unless told otherwise

    def __init__(self, environment: Any) -> None:
        # The client is built in the base __init__: set what it reads from the options first.
        options = environment.parsed_options
        timeout = getattr(options, "timeout", None)
        if timeout:
            self.network_timeout = self.connection_timeout = float(timeout)
        self.insecure = not tls_verify(options)
        follow = int(getattr(options, "follow_redirects", 0) or 0)
        self.max_redirects = follow  # Locust's knob: the hops its client follows by itself
        self.max_body_bytes = int(getattr(options, "max_body", None) or DEFAULT_MAX_BODY_BYTES)
        super().__init__(environment)
        session: Any = self.client
        if getattr(options, "http2", False):
            # Only with --http2: httpx is far slower per core than the fast client (HTTP/1.1).
            from loadbench.scenario.http2 import Http2Session

            session = Http2Session(
                self.host or "",
                environment.events.request,
                self,
                self.network_timeout,
                not self.insecure,
                max_redirects=follow,
            )
        self.client = DeadlineSession(  # type: ignore[assignment]
            session, self.network_timeout, self.max_body_bytes, follow, router_for(environment)
        )

    def on_start(self) -> None:
        self.headers = headers_from_options(self.environment.parsed_options)


def add_extras(response: Any, **fields: Any) -> None:
    """Add per-request fields (``input_tokens=12``, ...) to a ``catch_response=True`` response's record.

    They go to the request event's ``context["loadbench"]`` (merged: the ``--http2`` client's
    phase timings stay), which the recorder writes as the extra columns of ``requests.csv``.
    """
    context = response.request_meta.setdefault("context", {})
    context[EXTRAS_KEY] = {**(context.get(EXTRAS_KEY) or {}), **fields}


def check_json(response: Any, key: str | tuple[str, ...] | None = None) -> Any:
    """Parse a ``catch_response=True`` response; mark it failed unless it is JSON with ``key``
    (one of them, for a tuple; any JSON value when ``key`` is None).

    Returns the parsed JSON on success, None on failure. HTTP error statuses are left to
    Locust (they already fail).
    """
    if getattr(response, "request_meta", {}).get("exception") is not None:
        return None  # already failed (timeout, reset, HTTP error): keep that reason
    if response.status_code is None or response.status_code >= 400 or not response.status_code:
        return None
    discarded = discarded_body(response)
    if discarded is not None:
        response.failure(
            f"{BODY_OVER_LIMIT}: {discarded.size:,} bytes, more than the {format_size(discarded.limit)} "
            "a body may keep (not parsed)"
        )
        return None
    try:
        body = response.json()
    except (ValueError, TypeError):
        response.failure(f"invalid response: body is not JSON ({len(response.content or b'')} bytes)")
        return None
    keys = (key,) if isinstance(key, str) else key or ()
    if keys and (not isinstance(body, dict) or not any(k in body for k in keys)):
        response.failure(f"invalid response: no {' or '.join(map(repr, keys))} in the JSON body")
        return None
    return body


def on_setup(function: Callable[[Any], None]) -> Callable[[Any], None]:
    """Register a scenario's set-up (load data, discover the model) to run once Locust starts.

    Locust logs and swallows exceptions raised in event listeners; a scenario whose set-up
    failed must not run anyway. Under loadbench's drivers (`fire_init`) the failure goes to the
    list the driver reads (``loadbench run`` turns the first into a one-line error, exit 2);
    under plain ``locust`` it is logged as one line before the runner quits.
    """

    @events.init.add_listener
    def listener(environment: Any, **_: Any) -> None:
        try:
            function(environment)
        except Exception as exc:
            message = str(exc) if isinstance(exc, LoadbenchError) else f"{type(exc).__name__}: {exc}"
            failures = getattr(environment, SETUP_FAILURES, None)
            if failures is not None:
                failures.append(message)
                return
            logging.getLogger("loadbench").error("scenario set-up failed: %s", message)
            if environment.runner is not None:
                environment.process_exit_code = 2
                environment.runner.quit()

    return function


def fire_init(environment: Any, runner: Any, web_ui: Any = None) -> list[str]:
    """Fire Locust's ``init`` as loadbench's driver (library mode); return the set-ups' failures.

    The failures are kept on this environment, so each driver reads its own run's and nothing
    is shared between runs. Library mode also tells `loadbench.ui.hook` that the driver
    installs the web UI plugin itself.
    """
    failures: list[str] = []
    environment.loadbench_library_mode = True
    setattr(environment, SETUP_FAILURES, failures)
    environment.events.init.fire(environment=environment, runner=runner, web_ui=web_ui)
    return failures
