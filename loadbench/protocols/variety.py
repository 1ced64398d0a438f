"""Distinct request bodies made from a few (``--distinct K``), and the key that names each body.

Pure (no I/O, no Locust). `distinct_bodies` turns a payload set into K bodies, cycling its rows:
body i is variant ``i // len(rows)`` of row ``i % len(rows)``, variant 0 the row itself, so K bodies
are distinct when the rows are. A variant changes as little as it can, and nothing a server
checks the form of (``name``, ``datatype``, ``shape``, ``model``, ``max_tokens`` never):

- an LLM body (``messages`` with a user turn, or ``prompt``; an embeddings ``input``): its last
  user text gains a short suffix, `` (variant N)``;
- a tensor body (KServe v2 ``inputs[].data``, TF Serving ``instances`` / ``inputs``): its first
  number moves by a tiny amount (N * 1e-6) when it is a float, below any model's resolution; when
  the tensor holds integers, one of them moves by 1 (each in turn), so it stays an integer; any
  other JSON object the same, with the numbers it holds wherever they are, or without any, its
  first top-level text value gets the suffix.

A body it cannot vary is a one-line `UsageError`. `payload_key` names a body: the first 12 hex
digits of the SHA-256 of its canonical JSON (sorted keys, no spaces), or of its bytes.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from loadbench.errors import UsageError

KEY_DIGITS = 12
STEP = 1e-6  # a variant's change to a tensor's first number, per variant


def canonical_body(body: Any) -> bytes:
    """A body in one form for every exact repeat of it: its JSON with sorted keys and no spaces (a
    bytes body as it is). What makes two requests "the same payload", for loadbench's keys and the
    demo's cache alike."""
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def payload_key(body: Any) -> str:
    """The key of a body: 12 hex digits of the SHA-256 of its `canonical_body`; the same for every
    exact repeat."""
    return hashlib.sha256(canonical_body(body)).hexdigest()[:KEY_DIGITS]


def distinct_bodies(rows: list[Any], count: int) -> list[Any]:
    """``count`` bodies from ``rows``, cycling them (module docstring); ``count`` < 1 or a row that
    cannot be varied (when a variant of it is needed) is a `UsageError`."""
    if count < 1:
        raise UsageError(f"--distinct must be at least 1, not {count}")
    if not rows:
        raise UsageError("--distinct: no payloads to vary")
    bodies = []
    for i in range(count):
        row, variant = rows[i % len(rows)], i // len(rows)
        bodies.append(row if variant == 0 else vary(row, variant, i % len(rows) + 1))
    return bodies


def vary(body: Any, variant: int, number: int = 1) -> Any:
    """Variant ``variant`` (>= 1) of ``body`` (a copy; the body is not changed); ``number`` names the
    row in the error when it cannot be varied."""
    varied = copy.deepcopy(body)
    if isinstance(varied, dict) and (
        _vary_text(varied, variant) or _vary_tensor(varied, variant) or _vary_any_text(varied, variant)
    ):
        return varied
    raise UsageError(
        f"--distinct: payload {number} has no text or numbers to vary (an LLM body's messages or prompt, "
        "an embeddings input, or numbers such as a tensor's data)"
    )


def _suffix(text: str, variant: int) -> str:
    return f"{text} (variant {variant})"


def _vary_text(body: dict[str, Any], variant: int) -> bool:
    """Suffix the last user text of an LLM body (or an embeddings ``input``); False when none."""
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role", "user") == "user":
                content = message.get("content")
                if isinstance(content, str):
                    message["content"] = _suffix(content, variant)
                    return True
                if isinstance(content, list):  # OpenAI's content parts: the last text part
                    for part in reversed(content):
                        if isinstance(part, dict) and isinstance(part.get("text"), str):
                            part["text"] = _suffix(part["text"], variant)
                            return True
    for key in ("prompt", "input"):
        value = body.get(key)
        if isinstance(value, str):
            body[key] = _suffix(value, variant)
            return True
        if isinstance(value, list) and value and isinstance(value[-1], str):
            value[-1] = _suffix(value[-1], variant)
            return True
    return False


def _vary_any_text(body: dict[str, Any], variant: int) -> bool:
    """Suffix the first text value at the top of another JSON API's body (``{"text": ...}``)."""
    for key, value in body.items():
        if isinstance(value, str) and key not in _FORM_KEYS:
            body[key] = _suffix(value, variant)
            return True
    return False


def _vary_tensor(body: dict[str, Any], variant: int) -> bool:
    """Move a number of a tensor body (v2 ``inputs[].data``, ``instances``, ``inputs``): the first,
    by ``variant * STEP``, when it is a float; when it is an integer (a datatype that takes only
    integers), the next integer in turn by 1 (variant 1 the first, 2 the second, ..., each by 2
    once every one moved): the values stay integers and change by as little as they can."""
    inputs = body.get("inputs")
    places: list[tuple[Any, Any]] = []
    if isinstance(inputs, list) and any(isinstance(t, dict) for t in inputs):
        for tensor in inputs:
            if isinstance(tensor, dict) and "data" in tensor:
                _numbers(tensor, "data", places)
    else:
        for key in ("instances", "inputs"):
            if key in body:
                _numbers(body, key, places)
    if not places:  # another JSON API's body: its numbers, wherever they are
        for key in body:
            if key not in _FORM_KEYS:
                _numbers(body, key, places)
    if not places:
        return False
    holder, key = places[0]
    if isinstance(holder[key], float):
        holder[key] += variant * STEP
        return True
    places = [(h, k) for h, k in places if not isinstance(h[k], float)]
    holder, key = places[(variant - 1) % len(places)]
    holder[key] += 1 + (variant - 1) // len(places)
    return True


# Keys whose values say what a tensor is, never what it holds.
_FORM_KEYS = frozenset(("name", "datatype", "shape", "model", "max_tokens", "parameters"))


def _numbers(holder: Any, key: Any, places: list[tuple[Any, Any]]) -> None:
    """Every number (not a boolean) under ``holder[key]``, depth first, as (container, key), into
    ``places``; the keys of `_FORM_KEYS` skipped."""
    value = holder[key]
    if isinstance(value, int | float) and not isinstance(value, bool):
        places.append((holder, key))
    elif isinstance(value, list):
        for index in range(len(value)):
            _numbers(value, index, places)
    elif isinstance(value, dict):
        for name in value:
            if name not in _FORM_KEYS:
                _numbers(value, name, places)
