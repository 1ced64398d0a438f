"""OpenAI-compatible completion responses -> the per-request token timings loadbench records.

Pure (no Locust, no I/O). `StreamMeter` takes the events of one streamed response (chat
completions or completions), each stamped with the ``time.perf_counter()`` at which it
arrived, and gives the ``context["loadbench"]`` fields of `loadbench.record.records.EXTRA_FIELDS`;
`body_extras` does the same for a non-streamed JSON body. Definitions (docs/metrics.md,
"LLM streaming: what is recorded per request"):

- a **content event** is an event whose first choice carries non-empty text:
  ``choices[0].delta.content`` (or ``delta.reasoning_content``, a reasoning model's thinking,
  which is generated text too) for chat, ``choices[0].text`` for completions;
- ``ttft_ms``: from the send to the arrival of the first content event;
- ``itl_ms``: the gap between each content event and the previous one (n events, n-1 gaps).
  Each content event is one token for counting, unless ``usage`` says otherwise: a server that
  packs several tokens in an event has fewer gaps than tokens, and the gaps are per event;
- ``input_tokens`` / ``output_tokens``: the last ``usage`` the stream carried
  (``prompt_tokens``, ``completion_tokens``: ``input_tokens_source`` and ``tokens_source``
  ``usage``); without one, the content events counted (``tokens_source`` ``counted``) and the
  input tokens unknown (empty, never 0), unless ``--tokenizer`` counts them
  (`loadbench.protocols.tokenizer`, in the scenario).

An answer that carries nothing (docs/metrics.md, "LLM streaming: what is recorded per request"):

- a stream with no content event and no ``finish_reason`` is a failure, `EMPTY_STREAM`, whether
  or not ``data: [DONE]`` came (llama.cpp's server cuts a stream that way when it interrupts a
  request for the next one): `StreamMeter.empty`;
- a stream with content that ended with ``data: [DONE]`` but never carried a ``finish_reason``
  is a failure, `CUT_STREAM`: the server ended the stream before the answer (llama-cpp-python's
  server, interrupting a completions stream after its first token or a chat stream after some
  content, sends ``data: [DONE]`` there; an answer that ends sends its ``finish_reason``);
  `StreamMeter.problem` gives each stream's verdict;
- a non-streamed answer whose first choice carries no text, no tool call and no
  ``finish_reason`` is a failure, `EMPTY_COMPLETION` (`completion_problem`);
- an answer that did finish (a ``finish_reason``) without text is a success with 0 output
  tokens: the analyzer never counts it into goodput.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from loadbench.protocols.sse import SSEEvent

Kind = Literal["chat", "completions"]

# Failure messages, constant: a failure's message is its kind in the report's error table.
EMPTY_STREAM = "empty stream"
CUT_STREAM = "cut stream"
UNFINISHED_STREAM = "invalid response: the stream ended without a finish_reason or data: [DONE]"
EMPTY_COMPLETION = "empty completion"


def event_text(payload: dict[str, Any], kind: Kind) -> str:
    """The generated text one stream chunk carries (its first choice), or ``""``."""
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return ""
    choice = choices[0]
    if kind == "completions":
        text = choice.get("text")
        return text if isinstance(text, str) else ""
    delta = choice.get("delta")
    if not isinstance(delta, dict):
        return ""
    for key in ("content", "reasoning_content"):
        text = delta.get(key)
        if isinstance(text, str) and text:
            return text
    return ""


def usage_tokens(usage: Any) -> tuple[int | None, int | None]:
    """(prompt_tokens, completion_tokens) from a ``usage`` object; None where absent or not a count."""
    if not isinstance(usage, dict):
        return None, None

    def count(key: str) -> int | None:
        value = usage.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None

    return count("prompt_tokens"), count("completion_tokens")


@dataclass
class StreamMeter:
    """Times one streamed response; `add` each event as it arrives, then read `extras`.

    ``sent_s`` is the ``perf_counter()`` taken just before the request was sent; every time
    given to `add` is a ``perf_counter()`` taken when the event's last byte was read.
    """

    kind: Kind
    sent_s: float
    content_s: list[float] = field(default_factory=list)  # arrival of each content event
    usage: dict[str, Any] | None = None
    error: str | None = None  # the first problem in the stream's content (not transport)
    events: int = 0
    # A choice carried a finish_reason: the server ended the answer (some servers, such as
    # transformers serve, then close the body without OpenAI's data: [DONE]).
    finished: bool = False

    def add(self, event: SSEEvent, now_s: float) -> None:
        """Account one event that arrived at ``now_s``."""
        if event.is_done:
            return
        self.events += 1
        try:
            payload = json.loads(event.data)
        except (ValueError, RecursionError):
            # Constant texts: a failure's message is its kind in the report's error table.
            self._fail("invalid response: a stream event is not valid JSON")
            return
        if not isinstance(payload, dict):
            self._fail("invalid response: a stream event is not a JSON object")
            return
        if "error" in payload and not payload.get("choices"):
            error = payload["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            self._fail(f"server error in stream: {message}")
            return
        if isinstance(payload.get("usage"), dict):
            self.usage = payload["usage"]
        choices = payload.get("choices")
        if isinstance(choices, list) and any(isinstance(c, dict) and c.get("finish_reason") for c in choices):
            self.finished = True
        if event_text(payload, self.kind):
            self.content_s.append(now_s)

    def _fail(self, message: str) -> None:
        if self.error is None:
            self.error = message

    @property
    def content_events(self) -> int:
        return len(self.content_s)

    @property
    def empty(self) -> bool:
        """No content event and no ``finish_reason``: the server answered nothing (`EMPTY_STREAM`)."""
        return not self.content_s and not self.finished

    def problem(self, done: bool) -> str | None:
        """Why a stream whose body was read to its end is a failure, or None for an answer;
        ``done``: ``data: [DONE]`` came. Only a ``finish_reason`` says the answer ended: without
        one the stream was empty (`EMPTY_STREAM`), cut by the server (`CUT_STREAM`), or stopped
        with neither end marker (`UNFINISHED_STREAM`)."""
        if self.error is not None:
            return self.error
        if self.empty:
            return EMPTY_STREAM
        if self.finished:
            return None
        return CUT_STREAM if done else UNFINISHED_STREAM

    def extras(self) -> dict[str, Any]:
        """The ``context["loadbench"]`` fields: ttft_ms, itl_ms, input/output tokens and their source."""
        times = self.content_s
        prompt, completion = usage_tokens(self.usage)
        out: dict[str, Any] = {
            "ttft_ms": (times[0] - self.sent_s) * 1000.0 if times else None,
            "itl_ms": [(b - a) * 1000.0 for a, b in itertools.pairwise(times)],
            "input_tokens": prompt,
            "input_tokens_source": "usage" if prompt is not None else None,
        }
        if completion is not None:
            out["output_tokens"], out["tokens_source"] = completion, "usage"
        else:
            out["output_tokens"], out["tokens_source"] = len(times), "counted"
        return out


def _first_choice(body: Any) -> dict[str, Any] | None:
    choices = body.get("choices") if isinstance(body, dict) else None
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    return None


def answer_text(body: Any) -> str:
    """The generated text of a non-streamed answer's first choice (chat or completions), or ``""``."""
    choice = _first_choice(body) or {}
    message = choice.get("message")
    if isinstance(message, dict):
        for key in ("content", "reasoning_content"):
            text = message.get(key)
            if isinstance(text, str) and text:
                return text
        return ""
    text = choice.get("text")
    return text if isinstance(text, str) else ""


def _has_tool_call(choice: dict[str, Any]) -> bool:
    message = choice.get("message")
    return isinstance(message, dict) and bool(message.get("tool_calls") or message.get("function_call"))


def completion_problem(body: Any) -> str | None:
    """`EMPTY_COMPLETION` for a non-streamed answer with no text, no tool call and no
    ``finish_reason`` in its first choice (or no choice at all); None for an answer."""
    choice = _first_choice(body)
    if choice is None:
        return EMPTY_COMPLETION
    if answer_text(body) or _has_tool_call(choice) or choice.get("finish_reason"):
        return None
    return EMPTY_COMPLETION


def body_extras(body: Any) -> dict[str, Any]:
    """A non-streamed response's fields: token counts from its ``usage`` (no TTFT, no gaps).

    Without a usage, an answer with no generated text and no tool call still records 0 output
    tokens (``counted``): an empty answer, which goodput never counts."""
    prompt, completion = usage_tokens(body.get("usage") if isinstance(body, dict) else None)
    if prompt is None and completion is None:
        choice = _first_choice(body)
        if choice is not None and not answer_text(body) and not _has_tool_call(choice):
            return {"input_tokens": None, "output_tokens": 0, "tokens_source": "counted"}
        return {}
    return {
        "input_tokens": prompt,
        "input_tokens_source": "usage" if prompt is not None else None,
        "output_tokens": completion,
        "tokens_source": "usage" if completion is not None else None,
    }
