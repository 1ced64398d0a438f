"""The preflight: one real request of the scenario before the load, so a run whose requests the
endpoint refuses stops at once, quoting the server, instead of recording a run of failures.

The seam: the scenario's own User classes, in a Locust `Environment` of their own with a private
`Events` (never Locust's global ``events``, where the recorder, the watchdog and the load's
statistics listen), run as one user by a `LocalRunner` until Locust's ``request`` event reports
its first request; then that runner quits. So the request goes through exactly the code the
load runs (the scenario's task, its client and headers, ``--timeout``, its checks: not JSON,
empty stream, ...), after the scenario's set-up, and is counted nowhere: not in
``requests.csv``, not in the load's Locust statistics, not in the summary. With several User
classes or tasks it is the first request the user Locust spawns sends (its ``on_start``'s, if
that sends one). The load's wrappers (open-loop senders, in-flight counting) are left out: they
change when a request is sent, not what it is; the one wrapper here stops the user after its
first task, which a task that sends no request ends without a request event.

`preflight` passes quietly or says ``loadbench: preflight: POST /path -> 200 in 12 ms`` (or that
the first task sent no request: nothing to check, and the load runs); a failed request, a
scenario that raised instead of sending one, or no answer within the run's ``--timeout`` (and
`GRACE_S`, for clients without loadbench's deadline) is a `TargetError` (exit 2, before anything is written) that quotes the status and
the server's words (`loadbench.protocols.errorbody.server_text`, credentials scrubbed and control
characters escaped), shows the shape of what was sent (`loadbench.protocols.sent.body_shape`) and
the command line with the scenario's request options to change. Its callers: `loadbench run`
(`loadbench.drive.runner`, on the master before any worker starts) and `loadbench ui`, once
before the web UI serves (`loadbench.ui.plugin.serve`).
"""

from __future__ import annotations

import logging
import shlex
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO
from urllib.parse import urlsplit

import gevent
import gevent.event
from locust import User
from locust.env import Environment
from locust.event import Events
from locust.exception import StopUser

from loadbench.analyze.stats import error_kind, failure_text
from loadbench.drive.answers import error_body
from loadbench.drive.config import RunConfig
from loadbench.drive.locustfiles import Scenario
from loadbench.errors import TargetError
from loadbench.protocols.errorbody import escape_controls, server_text
from loadbench.protocols.sent import body_shape
from loadbench.protocols.v2grpc import GRPC_REQUEST_TYPE
from loadbench.record.records import one_line
from loadbench.redact import redact_argv, redact_url, scrub, secret_values
from loadbench.scenario.routing import ROUTER_ATTRIBUTE
from loadbench.values import is_inprocess_url, target_base

# Beyond --timeout, how long to wait for the request event: a client without loadbench's
# deadline (a custom locustfile's) may take its connect and read timeouts one after the other.
GRACE_S = 5.0
MAX_SERVER_CHARS = 300
# The scenario options that say what a request holds, as they are shown in the command to copy.
REQUEST_OPTIONS = (
    ("model", "--model NAME"),
    ("path", "--path /PATH"),
    ("payload", "--payload JSON"),
    ("data", "--data FILE.jsonl"),
    ("template", "--template JSON"),
    ("audio", "--audio FILE.wav"),
    ("prompt", "--prompt TEXT"),
    ("input", "--input TEXT"),
)
# Options that set the body: replaced by the body option the scenario takes in the command to copy.
BODY_FLAGS = (
    "--payload",
    "--data",
    "--template",
    "--template-file",
    "--audio",
    "--prompt",
    "--sharegpt",
    "--input",
)
# Locust's loggers of a user's errors: the preflight reports its own error in one message.
USER_LOGGERS = ("locust.user.task", "locust.user.users")


@dataclass
class Answer:
    """The first request of the preflight's user, as Locust's request event reported it."""

    method: str
    path: str
    response_time_ms: float
    status: int
    exception: BaseException | None
    body: bytes  # the answer's body as far as it was read (at most the recorder's error bytes)
    content_type: str
    sent: bytes | str | None  # the request's body, when the client keeps it


@dataclass
class NoRequest:
    """The scenario's first task ended without sending a request: nothing to check."""


@dataclass
class Raised:
    """The scenario's user raised before its first request was reported."""

    exception: BaseException
    where: str  # "file:line in function"


def preflight(scenario: Scenario, config: RunConfig, target: str, argv: list[str], log: TextIO) -> None:
    """Send one request of the scenario (module docstring); a `TargetError` when it fails. Not for
    an in-process target: its scenario's set-up calls the model with the first row instead."""
    if is_inprocess_url(target):
        return
    secrets = secret_values(
        config.headers, config.target, [*config.scenario_args, *config.scrapes, *config.targets]
    )
    # Several targets: each replica once, so a broken one stops the run before the load.
    for url in [target, *config.targets[1:]]:
        _preflight_one(scenario, config, url, argv, log, secrets, len(config.targets) > 1)


def _preflight_one(
    scenario: Scenario,
    config: RunConfig,
    target: str,
    argv: list[str],
    log: TextIO,
    secrets: list[str],
    several: bool,
) -> None:
    where = f"{redact_url(target_base(target))}: " if several else ""
    outcome = send_one(scenario, target, config.timeout_s)
    if isinstance(outcome, Answer):
        problem = _problem(outcome, config.timeout_s)
        if problem is None:
            if not config.quiet:
                log.write(f"loadbench: preflight: {where}{_said(outcome, secrets)}\n")
                log.flush()
            return
    elif isinstance(outcome, NoRequest):
        if not config.quiet:
            log.write("loadbench: preflight: the scenario's first task sent no request: nothing to check\n")
            log.flush()
        return
    elif isinstance(outcome, Raised):
        problem = (
            f"the scenario raised {failure_text(outcome.exception)}{outcome.where} before its first request"
        )
    else:
        problem = (
            f"no answer within {config.timeout_s:g} s (the run's --timeout): the server is slow or stuck; "
            "a longer --timeout gives it more time"
        )
    message = _failure_message(problem, outcome, scenario, argv, secrets)
    if several:  # which replica refused
        message = message.replace("preflight request failed", f"preflight request to {where[:-2]} failed", 1)
    raise TargetError(message)


def send_one(scenario: Scenario, target: str, timeout_s: float) -> Answer | Raised | NoRequest | None:
    """Run the scenario as one user until its first request is reported; None: none within
    ``timeout_s`` (and `GRACE_S`)."""
    first: gevent.event.AsyncResult[Answer | Raised | NoRequest] = gevent.event.AsyncResult()
    env = Environment(
        user_classes=[_stopping_after_a_task(cls, first) for cls in scenario.user_classes],
        events=Events(),  # private: nothing of the load (recorder, statistics, watchdog) hears it
        host=target,
        parsed_options=scenario.options,
        locustfile=str(scenario.path),
    )
    # One request to this target as it is: no balancing over several, no retry of a failure.
    setattr(env, ROUTER_ATTRIBUTE, None)

    # Each listener runs in the user's greenlet and stops the user there (Locust lets a request
    # handler raise StopUser), so no second request is sent while this one is looked at.
    def on_request(request_type: str, name: str, response_time: float, **kwargs: Any) -> None:
        if not first.ready():
            first.set(_answer(request_type, name, response_time, kwargs))
        raise StopUser()

    def on_user_error(exception: BaseException, tb: TracebackType | None = None, **_: Any) -> None:
        if not first.ready():
            first.set(Raised(exception, _where(tb)))
        raise StopUser()

    env.events.request.add_listener(on_request)
    env.events.user_error.add_listener(on_user_error)
    runner = env.create_local_runner()
    hush = _Hush()
    for name in USER_LOGGERS:
        logging.getLogger(name).addFilter(hush)
    try:
        runner.start(1, spawn_rate=1, wait=False)
        return first.get(timeout=timeout_s + GRACE_S)
    except gevent.Timeout:
        return None
    finally:
        runner.quit()
        for name in USER_LOGGERS:
            logging.getLogger(name).removeFilter(hush)


def _stopping_after_a_task(cls: type[User], first: gevent.event.AsyncResult[Any]) -> type[User]:
    """A subclass of ``cls`` that stops once its first task has ended without a request: Locust
    asks for the user's ``wait_time`` after each task, and only then (a request stops it first)."""

    def wait_time(self: Any) -> float:
        if not first.ready():
            first.set(NoRequest())
        raise StopUser()

    return type(cls.__name__, (cls,), {"wait_time": wait_time, "__module__": cls.__module__})


class _Hush(logging.Filter):
    """Drops Locust's traceback of the preflight user's error: the preflight's message says it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return False


def _answer(request_type: str, name: str, response_time: float, meta: dict[str, Any]) -> Answer:
    """What the request event says, read at once (the user is stopped afterwards)."""
    response = meta.get("response")
    status = getattr(response, "status_code", None) or 0
    exception = meta.get("exception")
    headers = getattr(response, "headers", None)
    content_type = ""
    try:
        content_type = str(headers.get("Content-Type") or "") if headers is not None else ""
    except Exception:  # a header map of some other client that cannot be asked
        content_type = ""
    url = meta.get("url")
    parts = urlsplit(url) if isinstance(url, str) and url else None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "") if parts else str(name)
    return Answer(
        method=str(request_type),
        path=path,
        response_time_ms=float(response_time or 0.0),
        status=status if isinstance(status, int) else 0,
        exception=exception if isinstance(exception, BaseException) else None,
        body=error_body(response, headers) if exception is not None and response is not None else b"",
        content_type=content_type,
        sent=_sent_body(response),
    )


def _sent_body(response: Any) -> bytes | str | None:
    """The request's body as the client kept it: Locust's fast client (``payload``), requests
    (``body``), httpx with ``--http2`` (``content``); None when it kept none."""
    request = getattr(response, "request", None)
    for attribute in ("payload", "body", "content"):
        try:
            body = getattr(request, attribute, None)
        except Exception:  # httpx: a streamed body that was never read into memory
            return None
        if isinstance(body, bytes | bytearray | str):
            return bytes(body) if isinstance(body, bytearray) else body
    return None


def _where(tb: TracebackType | None) -> str:
    frames = traceback.extract_tb(tb) if tb is not None else []
    if not frames:
        return ""
    last = frames[-1]
    return f" (at {Path(last.filename).name}:{last.lineno} in {last.name})"


def _problem(answer: Answer, timeout_s: float) -> str | None:
    """Why the request failed, None when it succeeded (as the recorder would have recorded it)."""
    if answer.exception is None and answer.response_time_ms > timeout_s * 1000:
        return (
            f"timed out: answered after {answer.response_time_ms / 1000:.3f} s, over the run's "
            f"--timeout {timeout_s:g} s (a longer --timeout gives a slow server more time)"
        )
    if answer.exception is None and 300 <= answer.status < 400:
        return f"HTTP {answer.status}"  # a redirect still the answer: the recorder fails it
    if answer.exception is None:
        return None
    text = failure_text(answer.exception)
    if answer.status >= 400:
        return f"HTTP {answer.status}"
    type_name, _, message = text.partition(": ")
    if type_name == "CatchResponseError":
        return message  # the scenario's own check of the answer, in its words
    if error_kind(answer.status, text) == "timeout":
        return f"{text} (the run's --timeout, {timeout_s:g} s; a longer one gives a slow server more time)"
    return text


def _said(answer: Answer, secrets: list[str]) -> str:
    """``POST /path -> 200 in 12 ms`` (the status 0 of an answer that never came: no status)."""
    status = _status_shown(answer)
    return f"{answer.method} {_shown_path(answer, secrets)} -> {status} in {answer.response_time_ms:,.0f} ms"


def _status_shown(answer: Answer) -> str:
    """The HTTP status; a gRPC call's own status by name (``INVALID_ARGUMENT``): every gRPC answer
    travels as HTTP 200, its status in the trailers, and the call's exception is named after it."""
    if answer.method == GRPC_REQUEST_TYPE:
        return type(answer.exception).__name__ if answer.exception is not None else "OK"
    return f"{answer.status}" if answer.status else "no answer"


def _shown_path(answer: Answer, secrets: list[str]) -> str:
    return _printable(redact_url(answer.path), secrets, 200)


def _printable(text: str, secrets: list[str], limit: int) -> str:
    return one_line(scrub(escape_controls(text), secrets), limit)


def _failure_message(
    problem: str, outcome: Answer | Raised | None, scenario: Scenario, argv: list[str], secrets: list[str]
) -> str:
    """The error: what failed and what the server said; then what was sent and what to change."""
    if isinstance(outcome, Answer):
        head = f"preflight request failed: {_said(outcome, secrets)}"
        if outcome.status < 400 and problem != f"HTTP {outcome.status}":  # else `_said` says it all
            # A gRPC status already shown by `_said` is not said twice.
            problem = problem.removeprefix(f"{_status_shown(outcome)}: ")
            head += f": {_printable(problem, secrets, 300)}"
        words = _printable(server_text(outcome.body, outcome.content_type), secrets, MAX_SERVER_CHARS)
        if words:
            head += f'; the server said: "{words}"'
        shape = body_shape(outcome.sent, secrets)
        lines = [
            head,
            f"sent: {outcome.method} {_shown_path(outcome, secrets)}" + (f" {shape}" if shape else ""),
        ]
    else:
        lines = [f"preflight request failed: {_printable(problem, secrets, 300)}"]
    takes = [flag for dest, flag in REQUEST_OPTIONS if hasattr(scenario.options, dest)]
    if takes:
        lines.append(
            f"{scenario.name} takes {', '.join(takes)} (`loadbench scenarios`, docs/servers.md); e.g."
        )
        lines.append(_printable(_command(scenario, argv, outcome, secrets), secrets, 1000))
    lines.append("nothing was written; --no-preflight skips this check and runs the load anyway")
    return "\n  ".join(lines)


def _command(scenario: Scenario, argv: list[str], outcome: Answer | Raised | None, secrets: list[str]) -> str:
    """The user's command (credentials masked) with its body options replaced by the one the
    scenario takes, and ``--model NAME`` when the server did not know the path (HTTP 404)."""
    kept: list[str] = []
    skip = False
    for arg in redact_argv(argv):
        if skip:
            skip = False
            continue
        flag = arg.partition("=")[0]
        if flag in BODY_FLAGS:
            skip = "=" not in arg
            continue
        kept.append(arg)
    options = scenario.options
    added = []
    not_found = isinstance(outcome, Answer) and outcome.status == 404
    if not_found and hasattr(options, "model") and not any(a.partition("=")[0] == "--model" for a in kept):
        added.append("--model NAME")
    for dest, flag in (
        ("data", "--data FILE.jsonl"),
        ("audio", "--audio FILE.wav"),
        ("payload", "--payload JSON"),
    ):
        if hasattr(options, dest):
            added.append(flag)
            break
    return " ".join([shlex.join(kept), *added])
