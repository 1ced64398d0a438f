"""The ``loadbench demo`` command's options, defined once: the command line's ``demo`` command and
the demo's own entry point (``python -m loadbench.demo``) both take them from here, checks included.

Also the argparse value types they need, which the command line's other options share.
Imports nothing heavy (no scikit-learn): every ``loadbench`` command builds this parser.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Any, NoReturn

from loadbench.demo.cache import DEFAULT_PREFIX_BLOCKS, CacheSpec, parse_cache_spec
from loadbench.demo.service import SERVICE_DISTS
from loadbench.errors import UsageError
from loadbench.values import at_least_one

DEMO_HELP = "serve the embedded demo model endpoint"
DEMO_DESCRIPTION = (
    "Serve a scikit-learn digits classifier over HTTP: POST /predict, the Open Inference Protocol "
    "v2 routes under /v2, TF Serving REST and KServe v1 (/v1/models/digits), TorchServe "
    "(/predictions/digits, /models), a speech-recognition stand-in (/asr) and an LLM simulator "
    "(/v1/chat/completions, /v1/completions, /v1/embeddings); with --grpc-port, the Open Inference "
    "Protocol over gRPC too. Stops on Ctrl-C or SIGTERM."
)


def port(text: str) -> int:
    """A TCP port, 0 to 65535 (0: any free one), checked before anything binds or is spawned."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is not between 0 and 65535")
    return value


def non_negative(what: str) -> Callable[[str], float]:
    """An argparse type: a finite number >= 0 of ``what`` (e.g. milliseconds)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of {what}") from None
        if not 0 <= value < float("inf"):
            raise argparse.ArgumentTypeError(f"{text}: must be a finite number of {what} >= 0")
        return value

    return parse


ms = non_negative("milliseconds")
times = non_negative("times the duration")
ratio = non_negative("standard deviations per mean")


worker_count = at_least_one("workers", " (leave it out for no limit)")
replica_count = at_least_one("replicas")


def ms_list(text: str) -> list[float]:
    """Comma-separated milliseconds, each a finite number >= 0 (an argparse type)."""
    return [ms(part.strip()) for part in text.split(",")]


_NAME = re.compile(r"[A-Za-z0-9._~:@+-]+")


def name_list(text: str) -> list[str]:
    """Comma-separated names, distinct, each fit for a header value (an argparse type)."""
    names = [part.strip() for part in text.split(",")]
    for name in names:
        if not _NAME.fullmatch(name):
            raise argparse.ArgumentTypeError(
                f"{name!r} is not a replica name: letters, digits and . _ ~ : @ + - only"
            )
    if len(set(names)) < len(names):
        raise argparse.ArgumentTypeError(f"{text!r} names a replica twice")
    return names


def cache_spec(text: str) -> CacheSpec:
    """``lru:SIZE`` or ``lfu:SIZE`` (an argparse type; `loadbench.demo.cache.parse_cache_spec`)."""
    try:
        return parse_cache_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cache_text(text: str) -> str:
    """``lru:SIZE`` or ``lfu:SIZE``, checked and kept as text (``--demo-cache``: passed on to the demo)."""
    spec = cache_spec(text)
    return f"{spec.policy}:{spec.size}"


def add_demo_cache_option(parser: argparse.ArgumentParser) -> None:
    """``--demo-cache`` of `run`, `ui` and `sweep`: the demo's ``--cache``, passed on as text."""
    parser.add_argument(
        "--demo-cache",
        type=cache_text,
        default=None,
        metavar="lru:SIZE|lfu:SIZE",
        help="with --demo: a response cache of SIZE answers in front of its models (`loadbench demo --cache`): "
        "a repeated body is answered in about 1 ms with X-Cache: HIT; pair with --cache-header X-Cache and "
        "--popularity/--distinct to measure it (default: no cache)",
    )
    parser.add_argument(
        "--demo-llm-prefix-cache",
        action="store_true",
        help="with --demo: its LLM simulator caches prompt prefixes (`loadbench demo --llm-prefix-cache`): "
        "the time to first token grows with the uncached prompt tokens only; pair with openai_chat "
        "--shared-prefix-tokens N (default: no prefix cache)",
    )


prefix_blocks = at_least_one("blocks")


def check_service(dist: str | None, cv: float | None, jitter_ms: float | None, prefix: str = "--") -> None:
    """Refuse a spread the service-time distribution does not have, naming the options (``prefix``:
    ``--`` for the demo's own, ``--demo-`` for those of `run`, `ui` and `sweep`)."""
    dist = dist or "uniform"
    if jitter_ms is not None and dist != "uniform":
        raise UsageError(
            f"{prefix}jitter-ms is the uniform distribution's spread: it needs {prefix}service-dist uniform "
            f"(the default), not {dist}"
        )
    if cv is not None and dist != "lognormal":
        raise UsageError(
            f"{prefix}service-cv is the lognormal distribution's spread: it needs {prefix}service-dist "
            f"lognormal, not {dist}"
        )


# (flags, argparse keywords) of each option, in --help order.
DEMO_OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("--host",), {"default": "127.0.0.1", "help": "address to bind (default 127.0.0.1)"}),
    (("--port",), {"type": port, "default": 8000, "help": "port (default 8000; 0 picks a free one)"}),
    (
        ("--latency-ms",),
        {
            "type": ms,
            "default": 0.0,
            "help": "added service time per prediction (exponential, lognormal: the mean)",
        },
    ),
    (
        ("--jitter-ms",),
        {"type": ms, "default": None, "help": "uniform: plus a random 0..MS (default 0)"},
    ),
    (
        ("--service-dist",),
        {
            "choices": SERVICE_DISTS,
            "default": "uniform",
            "help": "the added service time's distribution: fixed (always --latency-ms), uniform "
            "(--latency-ms + 0..--jitter-ms), exponential or lognormal (mean --latency-ms) (default uniform)",
        },
    ),
    (
        ("--service-cv",),
        {
            "type": ratio,
            "default": None,
            "metavar": "CV",
            "help": "lognormal: the service time's coefficient of variation, std/mean (default 1)",
        },
    ),
    (
        ("--workers",),
        {
            "type": worker_count,
            "default": None,
            "metavar": "C",
            "help": "a FIFO queue of C workers: at most C predictions in service at once, the rest wait in "
            "arrival order (an M/G/C queue for queueing-theory checks; default: no limit, no waiting)",
        },
    ),
    (
        ("--seed",),
        {
            "type": int,
            "default": None,
            "metavar": "N",
            "help": "seed of the service-time draws, to repeat them (default: random)",
        },
    ),
    (
        ("--asr-rtf",),
        {
            "type": times,
            "default": 0.3,
            "help": "POST /asr takes this times the audio's duration (default 0.3)",
        },
    ),
    (
        ("--llm-ttft-ms",),
        {"type": ms, "default": 30.0, "help": "LLM simulator: time to first token (default 30)"},
    ),
    (
        ("--llm-itl-ms",),
        {"type": ms, "default": 8.0, "help": "LLM simulator: time between tokens (default 8)"},
    ),
    (
        ("--grpc-port",),
        {
            "type": port,
            "default": None,
            "help": "also serve the Open Inference Protocol over gRPC on this port (0 picks a free one; "
            "default: HTTP only)",
        },
    ),
    (
        ("--grpc-stream-responses",),
        {
            "type": int,
            "default": 4,
            "help": "gRPC ModelStreamInfer: answers per request, --llm-itl-ms apart (default 4)",
        },
    ),
    (
        ("--replicas",),
        {
            "type": replica_count,
            "default": 1,
            "metavar": "N",
            "help": "serve N replicas of the demo, one model, on ports PORT, PORT+1, ... (free ones with "
            "--port 0), each with its own service time and --workers, naming itself in an X-Served-By "
            "header on every response (default 1: one server, no header)",
        },
    ),
    (
        ("--service-ms",),
        {
            "type": ms_list,
            "default": None,
            "metavar": "MS[,MS...]",
            "help": "each replica's --latency-ms, in order; one value applies to all (default --latency-ms)",
        },
    ),
    (
        ("--replica-names",),
        {
            "type": name_list,
            "default": None,
            "metavar": "NAME[,NAME...]",
            "help": "the replicas' names, one each, for X-Served-By (default replica-1, replica-2, ...)",
        },
    ),
    (
        ("--cache",),
        {
            "type": cache_spec,
            "default": None,
            "metavar": "lru:SIZE|lfu:SIZE",
            "help": "a response cache of SIZE answers in front of the models (/predict, v2 infer, :predict, "
            "/predictions, /v1/embeddings), keyed on the route and the exact JSON body: a repeat is answered "
            "in about 1 ms (X-Cache: HIT), a new body takes the service time and is stored (X-Cache: MISS); "
            "lru evicts the least recently used, lfu the least frequently used (ties: least recently "
            "used). GET /cache gives the server's own hits, misses and evictions (default: no cache)",
        },
    ),
    (
        ("--llm-prefix-cache",),
        {
            "type": prefix_blocks,
            "nargs": "?",
            "const": DEFAULT_PREFIX_BLOCKS,
            "default": None,
            "metavar": "BLOCKS",
            "help": "LLM simulator: cache prompt prefixes in blocks of 16 words, as vLLM's automatic prefix "
            f"caching does (BLOCKS held, least recently used evicted; default {DEFAULT_PREFIX_BLOCKS} when "
            "given alone): a prompt's longest cached prefix costs no prefill time, and usage reports it as "
            "prompt_tokens_details.cached_tokens (default: off)",
        },
    ),
    (
        ("--llm-prefill-ms-per-token",),
        {
            "type": ms,
            "default": None,
            "metavar": "MS",
            "help": "LLM simulator: time to first token grows by MS per uncached prompt token (words) "
            "(default 0.05 with --llm-prefix-cache, else 0: the time to first token is --llm-ttft-ms)",
        },
    ),
    (("--parent-pid",), {"type": int, "help": argparse.SUPPRESS}),  # stop when it is gone
)


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the demo's options to ``parser`` (the ``demo`` sub-command's, or the stand-alone one)."""
    for flags, kwargs in DEMO_OPTIONS:
        parser.add_argument(*flags, **kwargs)


class _Parser(argparse.ArgumentParser):
    """Bad input as a `UsageError` (one line, exit 2), as the ``loadbench`` command reports it."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def demo_parser() -> argparse.ArgumentParser:
    """The stand-alone parser: the same program name, text and checks as ``loadbench demo``."""
    parser = _Parser(prog="loadbench demo", description=DEMO_DESCRIPTION)
    add_demo_arguments(parser)
    return parser
