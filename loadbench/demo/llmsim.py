"""The demo endpoint's LLM simulator: OpenAI-style completions made of timed words, not a model.

Serves, inside `loadbench.demo.server`'s threaded server (a thread per connection, so each stream
may sleep between its tokens while others go on):

    GET  /v1/models             {"data": [{"id": "loadbench-llm-simulator", ...}]}
    POST /v1/chat/completions   {"messages": [...], "max_tokens": N, "stream": bool, ...}
    POST /v1/completions        {"prompt": "...", "max_tokens": N, "stream": bool, ...}

Every answer says what it is: model ``loadbench-llm-simulator``, ``system_fingerprint``
``loadbench-llm-simulator``, and a stream opens with an SSE comment saying so. Tokens are
words: the answer is ``max_tokens`` words (default 64, at most 1024; ``ignore_eos`` and
``min_tokens`` are accepted and change nothing, it never stops early), and
``usage.prompt_tokens`` counts the prompt's words. The first token is sent ``ttft_ms`` after
the request line was read and each next one ``itl_ms`` after the previous one was due (a
schedule, so sleeps do not drift; after a stall, ``itl_ms`` after it was sent); a non-streamed answer comes whole at the last token's
time. Streams are chunked SSE ending in ``data: [DONE]``, with a usage event before it when
``stream_options.include_usage`` is true, as vLLM does.

Prefill: with ``prefill_ms_per_token`` (``--llm-prefill-ms-per-token``) the first token comes that
much later per uncached prompt token: ``ttft_ms + prefill_ms_per_token x (prompt_tokens -
cached_tokens)``. With a prefix cache (``--llm-prefix-cache``, `loadbench.demo.cache.PrefixCache`)
the cached tokens are the prompt's longest prefix, in whole blocks of 16 words, that an earlier
prompt shared (a chat's prompt: its messages' words, in order), and usage reports them as OpenAI
does, ``usage.prompt_tokens_details.cached_tokens``; without one, none are cached and usage says
nothing of them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from loadbench.demo.cache import PrefixCache

MODEL_ID = "loadbench-llm-simulator"
ROUTES = ("/v1/chat/completions", "/v1/completions")
DEFAULT_MAX_TOKENS = 64
MAX_TOKENS = 1024
_ANSWER = "this answer comes from the loadbench llm simulator which sends timed words and is not a model"
_WORDS = _ANSWER.split()


class SimulatorError(ValueError):
    """A request the simulator refuses: ``status`` (400 or 404) and a message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SimulatorTiming:
    """Time to first token and inter-token latency, ms; the prefill time per uncached prompt
    token, ms, and the prefix cache (None: every prompt token is uncached)."""

    ttft_ms: float = 30.0
    itl_ms: float = 8.0
    prefill_ms_per_token: float = 0.0
    prefix: PrefixCache | None = None

    def first_token_ms(self, prompt: list[str]) -> tuple[float, int | None]:
        """(time to first token in ms, cached prompt tokens: None without a prefix cache)."""
        cached = None if self.prefix is None else self.prefix.lookup_and_store(prompt)
        return self.ttft_ms + self.prefill_ms_per_token * (len(prompt) - (cached or 0)), cached


def models() -> dict[str, Any]:
    """``GET /v1/models``."""
    return {
        "object": "list",
        "data": [
            {
                "id": MODEL_ID,
                "object": "model",
                "created": 0,
                "owned_by": "loadbench (a simulator, not a model)",
            }
        ],
    }


def _max_tokens(body: dict[str, Any]) -> int:
    value = body.get("max_tokens", body.get("max_completion_tokens"))
    if value is None:
        return DEFAULT_MAX_TOKENS
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SimulatorError(400, "max_tokens must be a positive integer")
    return min(value, MAX_TOKENS)


def _prompt_words(body: dict[str, Any], chat: bool) -> list[str]:
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise SimulatorError(400, '"messages" must be a non-empty list')
        texts = [m.get("content") for m in messages if isinstance(m, dict)]
        return [word for t in texts if isinstance(t, str) for word in t.split()]
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        prompt = " ".join(p for p in prompt if isinstance(p, str))
    if not isinstance(prompt, str):
        raise SimulatorError(400, '"prompt" must be a string')
    return prompt.split()


def parse(path: str, body: Any) -> tuple[bool, int, int, bool, bool]:
    """Check a completion request: (chat, prompt tokens, max tokens, stream, include usage)."""
    chat, prompt, n, streamed, include_usage = _parse(path, body)
    return chat, len(prompt), n, streamed, include_usage


def _parse(path: str, body: Any) -> tuple[bool, list[str], int, bool, bool]:
    if not isinstance(body, dict):
        raise SimulatorError(400, "request body must be a JSON object")
    model = body.get("model")
    if model is not None and model != MODEL_ID:
        raise SimulatorError(404, f"the model {model!r} does not exist; this simulator serves {MODEL_ID!r}")
    chat = path == ROUTES[0]
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    return chat, _prompt_words(body, chat), _max_tokens(body), body.get("stream") is True, include_usage


def _envelope(chat: bool, created: int, request_id: str) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": ("chat.completion" if chat else "text_completion"),
        "created": created,
        "model": MODEL_ID,
        "system_fingerprint": MODEL_ID,
    }


def _usage(prompt: int, completion: int, cached: int | None = None) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return usage


def answer(path: str, body: Any, timing: SimulatorTiming, t0: float) -> dict[str, Any]:
    """A non-streamed completion, returned at the time its last token would be (``t0``: request read)."""
    chat, words, n, _, _ = _parse(path, body)
    ttft_ms, cached = timing.first_token_ms(words)
    _sleep_until(t0 + (ttft_ms + timing.itl_ms * (n - 1)) / 1000.0)
    text = " ".join(_WORDS[i % len(_WORDS)] for i in range(n))
    choice: dict[str, Any] = {"index": 0, "finish_reason": "length", "logprobs": None}
    if chat:
        choice["message"] = {"role": "assistant", "content": text}
    else:
        choice["text"] = text
    reply = _envelope(chat, int(time.time()), f"sim-{time.perf_counter_ns()}")
    reply["choices"] = [choice]
    reply["usage"] = _usage(len(words), n, cached)
    return reply


def stream(handler: Any, path: str, body: Any, timing: SimulatorTiming, t0: float) -> None:
    """Write a streamed completion to ``handler`` (a ``BaseHTTPRequestHandler``): chunked SSE."""
    chat, words, n, _, include_usage = _parse(path, body)
    ttft_ms, cached = timing.first_token_ms(words)
    base = _envelope(chat, int(time.time()), f"sim-{time.perf_counter_ns()}")
    base["object"] += ".chunk" if chat else ""
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.send_header("Cache-Control", "no-cache")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    write = handler.wfile.write

    def event(choices: list[dict[str, Any]], **extra: Any) -> None:
        data = json.dumps({**base, "choices": choices, **extra}, separators=(",", ":"))
        _chunk(write, f"data: {data}\n\n")

    _chunk(write, f": {MODEL_ID}: timed words, not a model\n\n")
    if chat:
        event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
    due, gap_s = t0 + ttft_ms / 1000.0, timing.itl_ms / 1000.0
    for i in range(n):
        _sleep_until(due)
        word = ("" if i == 0 else " ") + _WORDS[i % len(_WORDS)]
        last = "length" if i == n - 1 else None
        if chat:
            event([{"index": 0, "delta": {"content": word}, "finish_reason": last}])
        else:
            event([{"index": 0, "text": word, "finish_reason": last, "logprobs": None}])
        # On a schedule, so sleeps do not drift; after a stall of more than a gap (a busy host),
        # the next token comes a full gap later, not in a burst that catches up.
        now = time.perf_counter()
        due = due + gap_s if now <= due + gap_s else now + gap_s
    if include_usage:
        event([], usage=_usage(len(words), n, cached))
    _chunk(write, "data: [DONE]\n\n")
    write(b"0\r\n\r\n")


def _chunk(write: Any, text: str) -> None:
    data = text.encode()
    write(b"%x\r\n%s\r\n" % (len(data), data))


def _sleep_until(due: float) -> None:
    delay = due - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
