"""Several targets and retries: where each attempt of a request goes, and whether it is sent again.

One `Router` per load-generating process (`router_for(environment)`), shared by its users:
the targets (replicas of one model) with their `loadbench.load.balance.Balancer`, and the
`loadbench.load.retry.RetryPolicy` with its budget. `DeadlineSession` hands each request to
`Router.send`, which

- picks the target (``--balance``) and sends the scenario's path there (an absolute URL, so
  Locust's fast client keeps one connection pool per target); the name stays the scenario's;
- tags the attempt's request event with a `loadbench.record.records.Route` (``target``,
  ``attempt``, ``request_id``: the last columns of ``requests.csv``);
- with ``--retries``: fires the failed attempt's request event (a record of its own), waits the
  backoff, and sends again, to a target this request has not tried while one is left; the
  scenario sees only the last attempt, so its checks and extras are the user-visible request's.

A request counts as in flight on its target (for ``least-outstanding`` and ``p2c``) from the
send until its body was read; a stream read by the scenario, until the scenario's
``catch_response`` block ends.

The options are the scenario's (`add_routing_options`): under ``loadbench run`` and ``ui`` they
are set from the command line's ``--target`` (repeated), ``--targets FILE``, ``--balance`` and
``--retries ...`` (`loadbench.drive.locustfiles.apply_transport_settings`); under plain ``locust
-f`` they are given to the locustfile: ``--host`` is the first target and ``--targets FILE``
adds the others.

Imports gevent (no Locust): only scenarios and driving code use it.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import gevent

from loadbench.analyze.stats import error_kind, failure_text
from loadbench.load.balance import DEFAULT_POLICY, POLICIES, Balancer, policy_name
from loadbench.load.retry import (
    DEFAULT_BACKOFF_S,
    DEFAULT_RETRY_ON,
    RetryBudget,
    RetryPolicy,
    parse_backoff,
    parse_budget,
    parse_retry_on,
    retry_after_seconds,
    retry_count,
)
from loadbench.record.records import ROUTE_KEY, Route
from loadbench.values import argument_type, check_targets, read_targets_file, target_base

ROUTER_ATTRIBUTE = "loadbench_router"  # the attribute of a Locust environment holding its `Router`
TARGETS_OPTION = "loadbench_targets"  # the options' attribute loadbench's drivers set: every target
Send = Callable[..., Any]  # DeadlineSession's own send: (method, url, **kwargs) -> response


@dataclass(frozen=True)
class Target:
    """One target: its base URL without credentials (what records show) and its basic auth, if any."""

    base: str
    authorization: str | None = None

    @classmethod
    def of(cls, url: str) -> Target:
        parts = urlsplit(url)
        auth = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            auth = "Basic " + base64.b64encode(pair.encode()).decode()
        return cls(target_base(url), auth)


@dataclass
class Router:
    """A process's targets, balancer and retry policy (see the module docstring)."""

    targets: list[Target]
    balancer: Balancer
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    rng: random.Random = field(default_factory=random.Random)
    budget: RetryBudget = field(init=False)
    _prefix: str = field(init=False)
    _ids: itertools.count[int] = field(init=False)

    def __post_init__(self) -> None:
        self.budget = RetryBudget(self.policy.budget)
        # Unique across the processes of a distributed run: a random prefix per process.
        self._prefix = os.urandom(4).hex()
        self._ids = itertools.count(1)
        # Per request these cost a measurable share of a fast endpoint's round trip
        # (benchmarks/routing_overhead.py): decided once. Without retries an attempt's Route
        # depends on its target alone, so each target has one, shared (it is frozen).
        self._several = len(self.targets) > 1
        self._retrying = self.policy.retries > 0
        self._routes = [Route(t.base if self._several else "") for t in self.targets]

    def send(self, send: Send, method: str, url: str, kwargs: dict[str, Any]) -> Any:
        """Send one request of the scenario (its attempts) through ``send``; returns the last
        attempt's response as the session would return it."""
        catch_response = kwargs.pop("catch_response", False)
        streamed = kwargs.get("stream", False)
        if "name" not in kwargs:
            kwargs["name"] = url.split("?", 1)[0]  # the scenario's path, not the target's URL
        context = kwargs.pop("context", None)
        headers = kwargs.get("headers")
        retrying = self._retrying
        request_id = ""
        if retrying:
            request_id = f"{self._prefix}-{next(self._ids)}"
            self.budget.request()
        balancer = self.balancer
        attempt = 1
        tried: frozenset[int] = frozenset()
        while True:
            index = balancer.pick(tried) if tried else balancer.pick()
            target = self.targets[index]
            route = (
                Route(target.base if self._several else "", attempt, request_id)
                if retrying
                else self._routes[index]
            )
            if target.authorization and not _has_authorization(headers):
                kwargs["headers"] = {**(headers or {}), "Authorization": target.authorization}
            try:
                response = send(
                    method,
                    _absolute(target.base, url) if self._several else url,
                    catch_response=True,
                    context={**context, ROUTE_KEY: route} if context else {ROUTE_KEY: route},
                    **kwargs,
                )
            except BaseException:
                balancer.done(index)
                raise
            if not streamed:
                balancer.done(index)
            if not retrying:
                break
            status = response.status_code
            if type(status) is int and 0 < status < 400:
                break  # answered: the common case, decided without looking further
            wait = self._retry_wait(response, attempt)
            if wait is None:
                break
            if streamed:
                balancer.done(index)
            with response:
                pass  # this attempt's request event: a record of its own
            gevent.sleep(wait)
            attempt += 1
            tried |= {index}
            kwargs["headers"] = headers  # the next target's own credentials, not this one's
        if streamed:
            response = _DoneOnExit(response, lambda: balancer.done(index))
        if not catch_response:
            with response:
                pass
        return response

    def _retry_wait(self, response: Any, attempt: int) -> float | None:
        """Seconds to wait before sending ``response``'s request again; None: it is final."""
        if attempt > self.policy.retries:
            return None
        meta = getattr(response, "request_meta", None) or {}
        status = response.status_code if isinstance(getattr(response, "status_code", None), int) else 0
        exception = meta.get("exception")
        if status < 400 and (exception is None or status > 0):
            return None  # answered: a success, or a failure of the body (not the server's refusal)
        timed_out = (
            status == 0 and exception is not None and error_kind(0, failure_text(exception)) == "timeout"
        )
        if not self.policy.retryable(status, timed_out):
            return None
        headers = getattr(response, "headers", None)
        retry_after = retry_after_seconds(headers.get("Retry-After") if headers is not None else None)
        wait = self.policy.delay_s(attempt, self.rng, retry_after)
        if wait is None or not self.budget.take():
            return None
        return wait


class _DoneOnExit:
    """A streamed response whose target is told the request ended when its block ends."""

    def __init__(self, response: Any, done: Callable[[], None]) -> None:
        self._response = response
        self._done = done

    def __enter__(self) -> Any:
        return self._response.__enter__()

    def __exit__(self, *exc: Any) -> Any:
        try:
            return self._response.__exit__(*exc)
        finally:
            self._done()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._response, name)


def _absolute(base: str, path: str) -> str:
    return path if "://" in path.split("?", 1)[0] else base + path


def _has_authorization(headers: Any) -> bool:
    return bool(headers) and any(str(k).lower() == "authorization" for k in headers)


def add_routing_options(parser: argparse.ArgumentParser) -> None:
    """``--targets FILE``, ``--balance`` and the retry options, for plain ``locust -f``; loadbench's
    drivers set them from their own command line."""
    group = parser.add_argument_group("loadbench replicas and retries")
    group.add_argument(
        "--targets",
        default=None,
        metavar="FILE",
        help="more targets (replicas of the same model), one URL per line, besides --host; "
        "each request goes to one of them by --balance",
    )
    group.add_argument(
        "--balance",
        type=argument_type(policy_name),
        default=DEFAULT_POLICY,
        metavar="POLICY",
        help=f"with several targets: {', '.join(POLICIES)} (default {DEFAULT_POLICY})",
    )
    group.add_argument(
        "--retries",
        type=argument_type(retry_count),
        default=0,
        metavar="N",
        help="send a failed request again up to N times (default 0)",
    )
    group.add_argument(
        "--retry-on",
        type=argument_type(parse_retry_on, "--retry-on "),
        default=DEFAULT_RETRY_ON,
        metavar="LIST",
        help=f"failures to retry: 5xx, connect, timeout, or a status such as 429 (default {','.join(DEFAULT_RETRY_ON)})",
    )
    group.add_argument(
        "--retry-backoff",
        type=argument_type(parse_backoff, "--retry-backoff "),
        default=DEFAULT_BACKOFF_S,
        metavar="MIN..MAX",
        help="exponential backoff with jitter between attempts (default 50ms..2s); Retry-After is honoured",
    )
    group.add_argument(
        "--retry-budget",
        type=argument_type(parse_budget, "--retry-budget "),
        default=None,
        metavar="P%",
        help="retry only while retries stay under P%% of requests (default: no budget)",
    )


def routing_targets(options: argparse.Namespace | None) -> list[str]:
    """Every target of a run: what loadbench's driver set, else ``--host`` and ``--targets FILE``."""
    preset = getattr(options, TARGETS_OPTION, None)
    if preset:
        return list(preset)
    host = str(getattr(options, "host", None) or "")
    more = getattr(options, "targets", None)
    urls = ([host] if host else []) + (read_targets_file(more) if more else [])
    return check_targets(urls) if len(urls) > 1 else urls


def retry_policy(options: argparse.Namespace | None) -> RetryPolicy:
    """The ``--retries`` options as a policy (no retries without them)."""
    retries = int(getattr(options, "retries", 0) or 0)  # 0 to 10: checked where it was parsed
    low, high = getattr(options, "retry_backoff", None) or DEFAULT_BACKOFF_S
    return RetryPolicy(
        retries=retries,
        on=tuple(getattr(options, "retry_on", None) or DEFAULT_RETRY_ON),
        backoff_min_s=float(low),
        backoff_max_s=float(high),
        budget=getattr(options, "retry_budget", None),
    )


def router_for(environment: Any) -> Router | None:
    """The environment's `Router` (made once), or None when the run has one target and no retries
    (the session then sends as it always did)."""
    if hasattr(environment, ROUTER_ATTRIBUTE):
        router: Router | None = getattr(environment, ROUTER_ATTRIBUTE)
        return router
    options = environment.parsed_options
    urls = routing_targets(options)
    policy = retry_policy(options)
    router = None
    if len(urls) > 1 or policy.retries > 0:
        targets = [Target.of(u) for u in urls] or [Target("")]
        balance = getattr(options, "balance", None) or DEFAULT_POLICY
        router = Router(targets, Balancer(len(targets), balance), policy)
    setattr(environment, ROUTER_ATTRIBUTE, router)
    return router
