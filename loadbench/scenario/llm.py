"""OpenAI-compatible LLM requests from a Locust user, streamed and timed event by event.

Used by ``scenarios/openai_chat.py`` and ``scenarios/openai_completions.py``, whose users are
`LLMUser` subclasses that differ only in their ``kind``: `add_llm_user_options` among the
options, `LLMUser.set_up` (`setup_llm`) at start-up, then `send_request` per request, which
calls `stream_completion` (SSE, the default) or `post_completion` (``--no-stream``).

How a stream is timed (definitions in docs/metrics.md, "LLM streaming: what is recorded per
request"): ``time.perf_counter()`` is read just before the request is handed to the
client (the body is serialized before that), and again each time a piece of the body has
arrived (`loadbench.protocols.bodystream`: a line on Locust's fast client, as soon as its bytes are in; a
DATA frame with ``--http2``), so each event is stamped when its last piece arrived — not when
the whole body was read, which is what Locust's ``iter_content`` (reads until ``chunk_size``
bytes are in) would give. The request event then carries the end-to-end time as its ``response_time`` (Locust's own would be the
time to the response headers for a stream), the body bytes read as ``response_length``, and
`loadbench.protocols.completions.StreamMeter.extras` under ``context["loadbench"]``. A stream that
breaks midway is a failure that keeps its partial timings; one that carried no content and no
``finish_reason`` (``data: [DONE]`` or not) is the failure ``empty stream``, one with content that
ended with ``data: [DONE]`` but no ``finish_reason`` the failure ``cut stream``
(`loadbench.protocols.completions.StreamMeter.problem`), and a non-streamed answer without
text, tool call or ``finish_reason`` the failure ``empty completion``.

Imports locust: only scenarios and driving code may import this module.
"""

from __future__ import annotations

import argparse
import itertools
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import gevent
from locust import task

from loadbench.errors import UsageError
from loadbench.protocols.bodystream import STREAM_ERRORS, body_stream
from loadbench.protocols.completions import (
    Kind,
    StreamMeter,
    body_extras,
    completion_problem,
)
from loadbench.protocols.llmcontext import model_context
from loadbench.protocols.probe import discover_openai_model
from loadbench.protocols.sse import SSEParser
from loadbench.protocols.tokenizer import PromptCounter, load_prompt_counter
from loadbench.protocols.variety import payload_key
from loadbench.protocols.workloads import (
    WorkItem,
    Workload,
    add_workload_options,
    shared_prefix,
    workload_from_options,
)
from loadbench.record.records import EXTRAS_KEY
from loadbench.scenario.helpers import (
    PAYLOAD_KEY_META,
    ModelUser,
    Payloads,
    add_request_options,
    check_json,
    headers_from_options,
    tls_verify,
)
from loadbench.scenario.predict import say_at_start
from loadbench.scenario.session import read_whole_body
from loadbench.values import DEFAULT_MAX_BODY_BYTES

PATHS: dict[Kind, str] = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}
SCENARIOS: dict[Kind, str] = {"chat": "openai_chat", "completions": "openai_completions"}
# Counts a request's prompt tokens when the server's usage did not (--tokenizer); None: cannot.
PromptCount = Callable[[], int | None]


def add_llm_options(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--temperature``, ``--stream/--no-stream`` and the workload options."""
    group = parser.add_argument_group("loadbench LLM requests")
    group.add_argument("--model", default=None, help="model name (default: the first from GET /v1/models)")
    group.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (default 0)")
    group.add_argument(
        "--stream",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="stream the answer (SSE) and time every token (default); --no-stream: one JSON answer",
    )
    group.add_argument(
        "--tokenizer",
        default=None,
        metavar="PATH",
        help="the model's tokenizer.json, or its folder (chat needs the chat template beside it): "
        "count prompt tokens when the server sends no usage (else they are unknown); "
        "needs pip install 'loadbench[tokenizer]'",
    )
    add_workload_options(parser)


@dataclass
class LLMSetup:
    """What a scenario's users share: the endpoint kind, the model, the workload and the options."""

    kind: Kind
    model: str
    workload: Workload
    stream: bool = True
    temperature: float = 0.0
    ignore_eos: bool = False
    prompt_counter: PromptCounter | None = None  # --tokenizer
    prefix: str = ""  # --shared-prefix-tokens: the system prompt every request starts with
    nonce: bool = False  # each request's user text starts with its own nonce (a shared prefix, no repeats)
    keyed: bool = False  # each request records its payload_key


def setup_llm(environment: Any, kind: Kind) -> LLMSetup:
    """Read the options, load the workload, discover the model (``GET /v1/models``) unless given."""
    options = environment.parsed_options
    rows = None
    if getattr(options, "payload", None) or getattr(options, "data", None):
        rows = [
            body | {k: v for k, v in extras.items() if k != PAYLOAD_KEY_META}
            for body, extras in Payloads.from_options(options).items
        ]
    workload = workload_from_options(options, rows)
    if kind == "completions" and workload.items and any(i.prompt is None for i in workload.items):
        raise UsageError(
            '/v1/completions takes "prompt" rows; rows with "messages" need the openai_chat scenario'
        )
    model = options.model
    if not model:
        model = discover_openai_model(environment.host, headers_from_options(options), tls_verify(options))
        # The id a server lists can surprise (llama-cpp-python lists the GGUF's file path).
        say_at_start(environment, f"{SCENARIOS[kind]}: model {model}, the first GET /v1/models lists")
    tokenizer = getattr(options, "tokenizer", None)
    counter = load_prompt_counter(tokenizer, kind) if tokenizer else None
    setup = LLMSetup(
        kind, model, workload, bool(options.stream), float(options.temperature), options.ignore_eos, counter
    )
    repeats = bool(getattr(options, "popularity", None) or getattr(options, "distinct", None))
    tokens = getattr(options, "shared_prefix_tokens", None) or 0
    if tokens:
        check_prefix_fits(environment, model, tokens)
        setup.prefix = shared_prefix(tokens, options.workload_seed, prefix_counter(counter, kind))
        setup.nonce = not repeats
    setup.keyed = repeats or bool(
        getattr(options, "cache_header", None) or getattr(options, "cache_field", None)
    )
    if setup.keyed and not setup.nonce:
        workload.keyed(lambda item: payload_key(item_body(setup, item)))
    return setup


def check_prefix_fits(environment: Any, model: str, tokens: int) -> None:
    """Refuse (one line) a ``--shared-prefix-tokens`` that is not shorter than the model's context,
    where the server says its context (`loadbench.protocols.llmcontext`); unknown: let it run."""
    options = environment.parsed_options
    context = model_context(environment.host, model, headers_from_options(options), tls_verify(options))
    if context is not None and tokens >= context.tokens:
        raise UsageError(
            f"--shared-prefix-tokens {tokens} does not fit the model's context of {context.tokens} tokens "
            f"({context.source}): give fewer"
        )


def prefix_counter(counter: PromptCounter | None, kind: Kind) -> Callable[[str], int | None] | None:
    """``--tokenizer``'s count of a shared prefix's own tokens: as a completions prompt, or as a chat
    system message (less the template's tokens around an empty one); None without a tokenizer."""
    if counter is None:
        return None
    if kind == "completions":
        return lambda text: counter.count({"prompt": text})
    user = {"role": "user", "content": "x"}
    base = counter.count({"messages": [{"role": "system", "content": ""}, user]})
    if base is None:
        return None  # a template without system messages: words as tokens

    def count(text: str) -> int | None:
        total = counter.count({"messages": [{"role": "system", "content": text}, user]})
        return None if total is None else total - base

    return count


def add_llm_user_options(parser: argparse.ArgumentParser) -> None:
    """Everything an `LLMUser` scenario takes: `add_llm_options` and the request options."""
    add_llm_options(parser)
    add_request_options(parser)


class LLMUser(ModelUser):
    """Sends one OpenAI-compatible request after another: ``kind`` says which endpoint."""

    abstract = True
    kind: ClassVar[Kind] = "chat"
    llm: ClassVar[LLMSetup | None] = None  # shared by all users of the class in this process

    @classmethod
    def set_up(cls, environment: Any) -> None:
        """The scenario's set-up (`setup_llm`): the workload, the model."""
        cls.llm = setup_llm(environment, cls.kind)

    @task
    def send(self) -> None:
        assert self.llm is not None
        send_request(self, self.llm)


def request_body(setup: LLMSetup, arrival: Any = None) -> dict[str, Any]:
    """The next request's JSON body (without the ``stream`` fields); ``arrival``: a trace's row."""
    return next_request(setup, arrival)[0]


# A nonce per request of this process: a random prefix (processes differ), then a count.
_NONCES = (f"{secrets.token_hex(4)}-{n}" for n in itertools.count())


def next_request(setup: LLMSetup, arrival: Any = None) -> tuple[dict[str, Any], str | None]:
    """The next request's JSON body (as `request_body`) and its payload_key (None when not keyed)."""
    item = setup.workload.next(
        getattr(arrival, "input_tokens", None), getattr(arrival, "output_tokens", None)
    )
    body = item_body(setup, item, next(_NONCES) if setup.nonce else None)
    if not setup.keyed:
        return body, None
    return body, item.key or payload_key(body)  # with a nonce every body is new: keyed as sent


def item_body(setup: LLMSetup, item: WorkItem, nonce: str | None = None) -> dict[str, Any]:
    """One item's request body: with the shared prefix (and the request's ``nonce``) when asked."""
    body: dict[str, Any] = {"model": setup.model, "temperature": setup.temperature, **item.fields}
    if setup.kind == "chat":
        messages = item.messages or [{"role": "user", "content": item.prompt or ""}]
        if setup.prefix:
            messages = [{"role": "system", "content": setup.prefix}, *with_nonce(messages, nonce)]
        body["messages"] = messages
    else:
        prompt = item.prompt or ""
        if setup.prefix:
            prompt = f"{setup.prefix}\n\n{f'[{nonce}] ' if nonce else ''}{prompt}"
        body["prompt"] = prompt
    body["max_tokens"] = item.max_tokens or setup.workload.output_length.tokens
    if setup.ignore_eos:
        # vLLM's sampling options: generate exactly max_tokens, whatever the model would stop at.
        body["ignore_eos"] = True
        body["min_tokens"] = item.max_tokens
    return body


def with_nonce(messages: list[Any], nonce: str | None) -> list[Any]:
    """The messages with ``nonce`` first in the first user text (copies; None: unchanged), so two
    requests share no more than what comes before it."""
    if nonce is None:
        return messages
    out = list(messages)
    for i, message in enumerate(out):
        if (
            isinstance(message, dict)
            and message.get("role") == "user"
            and isinstance(message.get("content"), str)
        ):
            out[i] = {**message, "content": f"[{nonce}] {message['content']}"}
            break
    return out


def send_request(user: Any, setup: LLMSetup) -> None:
    """One request of the scenario: streamed or not, as ``--stream`` says."""
    body, key = next_request(setup, getattr(user, "loadbench_arrival", None))
    path = PATHS[setup.kind]
    counter = setup.prompt_counter
    count: PromptCount | None = (lambda: counter.count(body)) if counter is not None else None
    # The key rides in the context from the start: a request that fails is still recorded with it.
    context = {EXTRAS_KEY: {"payload_key": key}} if key else {}
    if setup.stream:
        stream_completion(user, path, body, path, count, context)
    else:
        post_completion(user, path, body, path, count, context)


def post_completion(
    user: Any,
    path: str,
    body: dict[str, Any],
    name: str,
    count_prompt: PromptCount | None = None,
    context: dict[str, Any] | None = None,
) -> None:
    """A non-streamed request: success when the answer is JSON with ``choices`` that is not an
    empty completion (`completion_problem`); tokens from ``usage`` (prompt tokens without one:
    ``count_prompt``'s, ``--tokenizer``)."""
    body = {**body, "stream": False}
    with user.client.post(
        path, json=body, headers=user.headers, name=name, catch_response=True, context=context or {}
    ) as response:
        answer = check_json(response, "choices")
        if answer is not None:
            _check_answer(response, answer)
            _attach(response, with_prompt_tokens(body_extras(answer), count_prompt))


def _check_answer(response: Any, answer: Any) -> None:
    """Fail a JSON answer that `check_json` accepted but that carries no completion."""
    problem = completion_problem(answer)
    if problem is not None:
        response.failure(problem)


def stream_completion(
    user: Any,
    path: str,
    body: dict[str, Any],
    name: str,
    count_prompt: PromptCount | None = None,
    context: dict[str, Any] | None = None,
) -> None:
    """A streamed request (``stream: true``, usage asked for), timed event by event (module
    docstring); prompt tokens without a usage: ``count_prompt``'s (``--tokenizer``)."""
    kind: Kind = "completions" if path.rstrip("/").endswith("/v1/completions") else "chat"
    body = {
        **body,
        "stream": True,
        "stream_options": {**(body.get("stream_options") or {}), "include_usage": True},
    }
    data = json.dumps(body).encode()  # serialized before the clock starts
    headers = {
        **getattr(user, "headers", {}),
        "Content-Type": "application/json",
        "Accept": "text/event-stream",
        # Locust asks for gzip by default; a compressed stream cannot be read event by event.
        "Accept-Encoding": "identity",
    }
    timeout_s = float(getattr(user, "network_timeout", 60.0))
    sent_s = time.perf_counter()
    with user.client.post(
        path, data=data, headers=headers, name=name, stream=True, catch_response=True, context=context or {}
    ) as response:
        if response.request_meta.get("exception") is not None:
            return  # refused, timed out, HTTP error status: Locust's own record says so
        content_type = str(response.headers.get("content-type", "")) if response.headers else ""
        if not content_type.startswith("text/event-stream"):
            # The server ignored "stream": take its one JSON answer as a non-streamed one, read
            # within --max-body as every whole body is (a stream is parsed as it arrives instead).
            size = read_whole_body(response, int(getattr(user, "max_body_bytes", DEFAULT_MAX_BODY_BYTES)))
            answer = check_json(response, "choices")
            if answer is not None:
                _check_answer(response, answer)
            _finish(response, sent_s, size, body_extras(answer) if answer else {}, count_prompt)
            return
        meter = StreamMeter(kind, sent_s)
        parser = SSEParser()
        stream = body_stream(response)
        error = TimeoutError(f"timed out: no complete response within {timeout_s:g} s")
        try:
            with gevent.Timeout(max(timeout_s - (time.perf_counter() - sent_s), 0.001), error):
                for piece in stream.pieces():
                    now_s = time.perf_counter()  # the piece has just arrived
                    for event in parser.feed(piece):
                        meter.add(event, now_s)
                for event in parser.close():
                    meter.add(event, time.perf_counter())
        # The connection closed mid-body, resets, socket and overall timeouts (`STREAM_ERRORS`)
        except STREAM_ERRORS as exc:
            stream.abort()  # the body was not read to its end: the connection is not reused
            response.failure(exc)
        else:
            problem = meter.problem(parser.done)
            if problem is None:
                response.success()
            else:
                response.failure(problem)
        _finish(response, sent_s, parser.bytes_fed, meter.extras(), count_prompt)


def _finish(
    response: Any, sent_s: float, length: int, extras: dict[str, Any], count_prompt: PromptCount | None = None
) -> None:
    """Record end-to-end time (now), bytes read and the extras on the request event (prompt
    tokens counted after the clock was read: counting is not the server's time)."""
    response.request_meta["response_time"] = (time.perf_counter() - sent_s) * 1000.0
    response.request_meta["response_length"] = length
    _attach(response, with_prompt_tokens(extras, count_prompt))


def with_prompt_tokens(extras: dict[str, Any], count_prompt: PromptCount | None) -> dict[str, Any]:
    """``extras`` with the prompt tokens counted by loadbench when the server's usage gave none
    (``input_tokens_source`` ``tokenizer``); unchanged without ``--tokenizer`` (they stay unknown)."""
    if count_prompt is None or extras.get("input_tokens") is not None:
        return extras
    tokens = count_prompt()
    if tokens is None:
        return extras
    return {**extras, "input_tokens": tokens, "input_tokens_source": "tokenizer"}


def _attach(response: Any, extras: dict[str, Any]) -> None:
    if extras:
        # A new dict: Locust may hand several requests the same context dict.
        context = response.request_meta.get("context") or {}
        response.request_meta["context"] = {
            **context,
            # Merged: the --http2 client's phase timings are already there.
            EXTRAS_KEY: {**(context.get(EXTRAS_KEY) or {}), **extras},
        }
