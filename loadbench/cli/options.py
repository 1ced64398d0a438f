"""What the commands share: the parser class, the value types, the option groups that more than
one command takes (target, demo, sampling, SLO, LLM), each defined once so they cannot drift apart,
and `Call`, what every command's handler is given.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

from loadbench.cli.serveroptions import SERVER_STATS_OPTION
from loadbench.demo.args import ms, ratio, times, worker_count
from loadbench.demo.service import SERVICE_DISTS
from loadbench.errors import UsageError
from loadbench.load.balance import DEFAULT_POLICY, POLICIES, policy_name
from loadbench.load.retry import DEFAULT_RETRY_ON, parse_backoff, parse_budget, parse_retry_on, retry_count
from loadbench.protocols.extract import json_path_text
from loadbench.values import (
    DEFAULT_FOLLOW_REDIRECTS,
    DEFAULT_MAX_BODY_BYTES,
    argument_type,
    body_size,
    format_size,
    header_name,
    json_field_path,
    parse_duration,
    read_targets_file,
    redirect_bound,
    server_time_header,
)

EXIT_GATE_FAILED = 1
EXIT_USAGE = 2
EXIT_TARGET_FAILED = 3  # every request failed, or nothing was recorded
EXIT_INTERRUPTED = 130

# `loadbench run --keep-going`: never stop a run early because every request fails.
KEEP_GOING_OPTION: Option = (
    ("--keep-going",),
    {
        "action": "store_true",
        "help": "run the whole duration even when every request fails (default: stop once no request "
        "has succeeded after 5 s and 10 failures; exit code 3 either way)",
    },
)

# `loadbench run` and `ui`: one request of the scenario before the load (loadbench.drive.preflight).
PREFLIGHT_OPTION: Option = (
    ("--no-preflight",),
    {
        "dest": "preflight",
        "action": "store_false",
        "help": "skip the preflight: by default one request of the scenario goes first (never recorded), "
        "and if it fails nothing runs: exit code 2, quoting the server and showing what was sent",
    },
)

# One option: its flags and the keywords of `add_argument`. Tables of these are the options of a
# command or group, in --help order.
Option = tuple[tuple[str, ...], dict[str, Any]]


# A value that starts like a negative number (-5s, -1.5, -2m): argparse alone takes "-5s" for an
# unknown option and says "expected one argument" instead of what is wrong with the value.
_NEGATIVE_VALUE = re.compile(r"-\.?\d")


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad option as a `UsageError` (one line, exit 2), not usage + exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        return super().parse_known_args(self._join_negative_values(args), namespace)

    def _join_negative_values(self, args: Sequence[str] | None) -> list[str] | None:
        """``-d -5s`` -> ``-d=-5s`` for this parser's own one-value options, so the value reaches its
        type check ("--duration must be >= 0, not '-5s'"). Unknown options (the scenario's) and
        everything after ``--`` are left as typed."""
        if args is None:
            return None
        out: list[str] = []
        args = list(args)
        i = 0
        while i < len(args):
            arg = args[i]
            if arg == "--":
                return out + args[i:]
            action = self._option_string_actions.get(arg)
            takes_one = action is not None and action.nargs is None and action.option_strings
            if takes_one and i + 1 < len(args) and _NEGATIVE_VALUE.match(args[i + 1]):
                out.append(f"{arg}={args[i + 1]}")
                i += 2
                continue
            out.append(arg)
            i += 1
        return out


class Group(Protocol):
    """A parser or an argument group: both take `add_argument`."""

    def add_argument(self, *flags: str, **kwargs: Any) -> argparse.Action: ...


@dataclass(frozen=True)
class Call:
    """One command's invocation, as its handler gets it."""

    args: argparse.Namespace
    extra: list[str]  # options the parser did not know: the scenario's (or the sweep steps')
    argv: list[str]  # the whole command line after `loadbench`
    parser: argparse.ArgumentParser  # the top parser (the sweep checks what `run` accepts)


def add_options(group: Group, options: Iterable[Option]) -> None:
    for flags, kwargs in options:
        group.add_argument(*flags, **kwargs)


def duration(text: str) -> float:
    if text.strip().startswith("-"):
        raise argparse.ArgumentTypeError(f"must be >= 0, not {text.strip()!r}")
    try:
        return parse_duration(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("bad duration ")) from None


def positive_duration(text: str) -> float:
    if text.strip().startswith("-"):
        raise argparse.ArgumentTypeError(f"must be above 0, not {text.strip()!r}")
    value = duration(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration above 0")
    return value


def tokens_per_s(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of tokens per second") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text}: the pace must be a number of tokens/s above 0")
    return value


def workers(text: str) -> int:
    if text == "auto":
        from loadbench.drive.config import available_cores

        return available_cores()
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of workers or 'auto'") from None
    if not 0 <= value <= 256:
        raise argparse.ArgumentTypeError(f"{value} workers: use 0 to 256, or auto")
    return value


DEMO_HELP = "start the embedded demo endpoint on 127.0.0.1 and target it"


class _Targets(argparse.Action):
    """``--target``, repeatable: the first is ``target`` (discovery, the probe, the sampler's server),
    and every one given goes to ``target_list`` (several: replicas balanced by ``--balance``)."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, _: Any = None
    ) -> None:
        if getattr(namespace, "target", None) is None:
            namespace.target = values
        namespace.target_list = [*(getattr(namespace, "target_list", None) or []), values]


class _TargetsFile(argparse.Action):
    """``--targets FILE``: its URLs, as if each were given with ``--target``."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, _: Any = None
    ) -> None:
        try:
            urls = read_targets_file(str(values))
        except UsageError as exc:
            raise argparse.ArgumentError(self, str(exc).removeprefix("--targets ")) from None
        namespace.target = urls[0]
        namespace.target_list = urls
        namespace.targets = str(values)


def add_where(parser: argparse.ArgumentParser, target_help: str, demo_help: str = DEMO_HELP) -> None:
    """``--target URL`` (repeatable: several replicas), ``--targets FILE`` or ``--demo``, one of them."""
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--target", "-t", metavar="URL", action=_Targets, help=target_help)
    where.add_argument(
        "--targets",
        metavar="FILE",
        action=_TargetsFile,
        help="several targets, one URL per line (# comments): replicas of one model, each request sent "
        "to one of them by --balance; --target repeated does the same",
    )
    where.add_argument("--demo", action="store_true", help=demo_help)


def add_demo_options(parser: argparse.ArgumentParser) -> None:
    """``--demo-*``: the embedded demo endpoint's timing (checked in `DemoTiming.check`)."""
    parser.add_argument(
        "--demo-latency-ms",
        type=ms,
        default=0.0,
        metavar="MS",
        help="with --demo: added service time per request (exponential, lognormal: the mean)",
    )
    parser.add_argument(
        "--demo-jitter-ms",
        type=ms,
        default=None,
        metavar="MS",
        help="with --demo, uniform: plus a random 0..MS",
    )
    parser.add_argument(
        "--demo-service-dist",
        choices=SERVICE_DISTS,
        default=None,
        help="with --demo: the service time's distribution: fixed, uniform (the default: --demo-latency-ms "
        "+ 0..--demo-jitter-ms), exponential or lognormal (mean --demo-latency-ms)",
    )
    parser.add_argument(
        "--demo-service-cv",
        type=ratio,
        default=None,
        metavar="CV",
        help="with --demo, lognormal: the service time's coefficient of variation, std/mean (default 1)",
    )
    parser.add_argument(
        "--demo-workers",
        type=worker_count,
        default=None,
        metavar="C",
        help="with --demo: a FIFO queue of C workers: at most C predictions in service at once, the rest "
        "wait in arrival order (an M/G/C queue for queueing-theory checks; default: no limit)",
    )
    parser.add_argument(
        "--demo-seed", type=int, default=None, metavar="N", help="with --demo: seed of its service-time draws"
    )
    parser.add_argument(
        "--demo-asr-rtf",
        type=times,
        default=None,
        metavar="X",
        help="with --demo: its speech recognizer (POST /asr) takes X times the audio's duration (default 0.3)",
    )
    for name, what, default in (("ttft", "time to first token", 30), ("itl", "time between tokens", 8)):
        parser.add_argument(
            f"--demo-llm-{name}-ms",
            type=ms,
            default=None,
            metavar="MS",
            help=f"with --demo: its LLM simulator's {what} (default {default})",
        )


SAMPLING_OPTIONS: tuple[Option, ...] = (
    (
        ("--sample-interval",),
        {
            "type": duration,
            "default": 0.5,
            "metavar": "TIME",
            "help": "how often to sample GPU, host and server process (default 0.5s, at least 50ms)",
        },
    ),
    (("--no-sampler",), {"action": "store_true", "help": "sample no resources"}),
    (
        ("--server-pid",),
        {
            "type": int,
            "metavar": "PID",
            "help": "the model server's process (default: the local process listening on the target's port)",
        },
    ),
    (
        ("--server-name",),
        {"metavar": "NAME", "help": "find the model server's process by name or command line"},
    ),
    (
        ("--scrape",),
        {
            "action": "append",
            "default": [],
            "metavar": "URL",
            "help": "Prometheus metrics URL to scrape during the run (repeatable)",
        },
    ),
    (("--scrape-match",), {"metavar": "REGEX", "help": "keep only scraped series matching this regex"}),
    (
        ("--scrape-interval",),
        {
            "type": duration,
            "default": 1.0,
            "metavar": "TIME",
            "help": "how often to scrape (default 1s; never more often than --sample-interval)",
        },
    ),
    (
        ("--agent",),
        {
            "action": "append",
            "default": [],
            "metavar": "URL",
            "help": "`loadbench agent` on a remote model-server host (repeatable)",
        },
    ),
    (
        ("--agent-token",),
        {
            "metavar": "TOKEN",
            "help": "the agents' token (default: $LOADBENCH_AGENT_TOKEN); never written anywhere",
        },
    ),
    SERVER_STATS_OPTION,
)


def add_slo_option(group: Group, verdict: str) -> None:
    """``--slo``; ``verdict`` says what a failed gate does in this command."""
    group.add_argument(
        "--slo",
        action="append",
        default=[],
        metavar="EXPR",
        help=f"gate: 'p99<300ms', 'error_rate<1%%', 'throughput>50', 'goodput>10'; repeatable; {verdict}. "
        "Bare 'ttft<500ms', 'tpot<50ms', 'itl<100ms', 'e2e<2s', 'latency<1s' bound every "
        "request: counted into goodput (docs/metrics.md 'LLM metrics'), gating nothing by themselves",
    )


def add_llm_options(group: Group) -> None:
    group.add_argument(
        "--realtime-tokens-per-s",
        type=tokens_per_s,
        metavar="R",
        help="a reading or speaking pace: report the share of streams that kept ahead of a reader "
        "taking R tokens/s from the first token (summary llm_realtime)",
    )


# `run`, `ui` and `worker`: what becomes of redirects and large bodies (docs/metrics.md "Redirects",
# "Response bodies"), and the header the server reports its own time in; the scenario's options of
# the same names (for plain `locust -f`) take them.
RESPONSE_OPTIONS: tuple[Option, ...] = (
    (
        ("--follow-redirects",),
        {
            "type": redirect_bound,
            "nargs": "?",
            "const": DEFAULT_FOLLOW_REDIRECTS,
            "default": 0,
            "metavar": "N",
            "help": "follow redirects, at most N hops per request (default N: "
            f"{DEFAULT_FOLLOW_REDIRECTS}), each counted (requests.csv redirects); a request still "
            "redirected after N fails as 'too many redirects'. Without it a 3xx answer is a failure, "
            "not followed",
        },
    ),
    (
        ("--max-body",),
        {
            "type": body_size,
            "default": DEFAULT_MAX_BODY_BYTES,
            "metavar": "BYTES",
            "help": "keep at most BYTES of a response body: 10MB, 512KiB (default "
            f"{format_size(DEFAULT_MAX_BODY_BYTES).replace(' ', '')}); a larger one is read, "
            "counted (response_bytes) and dropped, and a check that needs it fails 'body over "
            "--max-body'. Streams (SSE) are parsed as they arrive, whatever their size",
        },
    ),
    (
        ("--server-time-header",),
        {
            "type": server_time_header,
            "metavar": "NAME",
            "help": "read the server's own processing time per request from this response header into "
            "requests.csv's server_ms: a number of milliseconds (the demo's X-Service-Time-Ms) or a W3C "
            "Server-Timing header (the sum of its dur= entries, or with NAME:METRIC the entry named "
            "METRIC, e.g. Server-Timing:infer). Empty where an answer has no readable one",
        },
    ),
    (
        ("--replica-header",),
        {
            "type": header_name,
            "metavar": "NAME",
            "help": "record which replica served each request from this response header into requests.csv's "
            "replica (a load balancer's X-Served-By, the demo's --replicas): per-replica statistics in "
            "summary.json and the report",
        },
    ),
    (
        ("--replica-field",),
        {
            "type": argument_type(json_path_text),
            "metavar": "PATH",
            "help": "the same from the answer's JSON body, at this dotted path (served_by, meta.replica, "
            "outputs.0.parameters.replica), for servers that name the replica in the body; read where the "
            "header (if given) is absent",
        },
    ),
    (
        ("--server-time-field",),
        {
            "type": json_field_path,
            "metavar": "PATH",
            "help": "read the server's own processing time per request (milliseconds) from the answer's JSON body "
            "at this dotted path (timings.infer_ms, meta.server_ms) into requests.csv's server_ms, for servers "
            "that say it in the body; read where --server-time-header (if given) is absent. A value that is not "
            "a number >= 0 leaves it empty",
        },
    ),
    (
        ("--cache-header",),
        {
            "type": header_name,
            "metavar": "NAME",
            "help": "record whether the server's cache answered each request, from this response header, into "
            "requests.csv's cache (hit/miss): X-Cache with HIT/MISS (any case; TCP_HIT, 'Hit from cloudfront' "
            "too), or Age (a hit when above 0). summary.json's cache then has the hit ratio and hit vs miss "
            "latency. Use with --popularity/--distinct (scenario options) for a known repeat structure",
        },
    ),
    (
        ("--cache-field",),
        {
            "type": json_field_path,
            "metavar": "PATH",
            "help": "the same from the answer's JSON body at this dotted path (meta.cache_hit): true or 'hit' "
            "a hit, false or 'miss' a miss; read where the header (if given) is absent",
        },
    ),
)

# Several targets and retries (issue 16; docs/metrics.md "Targets", "Retries"): set on the
# scenario's options by `loadbench.drive.locustfiles.apply_transport_settings`.
ROUTING_OPTIONS: tuple[Option, ...] = (
    (
        ("--balance",),
        {
            "type": argument_type(policy_name),
            "metavar": "POLICY",
            "help": f"with several targets, which one gets each request: {', '.join(POLICIES)} "
            f"(power of two choices) (default {DEFAULT_POLICY})",
        },
    ),
    (
        ("--retries",),
        {
            "type": argument_type(retry_count),
            "default": 0,
            "metavar": "N",
            "help": "send a failed request again, up to N more attempts (default 0: never); each attempt is "
            "a record (requests.csv attempt, request_id), the figures are the user-visible requests' and "
            "summary.json retries gives the amplification",
        },
    ),
    (
        ("--retry-on",),
        {
            "type": argument_type(parse_retry_on, "--retry-on "),
            "metavar": "LIST",
            "help": "with --retries, the failures to retry: 5xx, connect (no answer), timeout, or an "
            f"HTTP status such as 429 (default {','.join(DEFAULT_RETRY_ON)})",
        },
    ),
    (
        ("--retry-backoff",),
        {
            "type": argument_type(parse_backoff, "--retry-backoff "),
            "metavar": "MIN..MAX",
            "help": "with --retries, the wait before the k-th retry: uniform in MIN..min(MAX, MIN*2^(k-1)) "
            "(default 50ms..2s); at least an answer's Retry-After, and no retry when that asks for more than MAX",
        },
    ),
    (
        ("--retry-budget",),
        {
            "type": argument_type(parse_budget, "--retry-budget "),
            "metavar": "P%",
            "help": "with --retries, retry only while the retries so far stay under P%% of the requests "
            "so far (default: no budget)",
        },
    ),
)
