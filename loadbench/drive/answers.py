"""What the recorder reads from an answer, without reading what it should not: the body when it
is already in memory (or small), headers as each client keeps them, the status, the redirects
followed, which replica served it (``--replica-header NAME``, ``--replica-field PATH``), what it
says of its cache (``--cache-header NAME``, ``--cache-field PATH``: `cache_said`, `cache_in_value`)
and of its own time in its body (``--server-time-field PATH``: `number_ms`).

Works on the responses of every client loadbench's users send with (Locust's fast client,
requests, httpx for ``--http2``) and on a failed request's stand-in response.
"""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

from loadbench.protocols.errorbody import MAX_BODY_BYTES
from loadbench.protocols.extract import JsonPath, extract, label_text, parse_path


def error_body(response: Any, headers: Any) -> bytes:
    """The first `MAX_BODY_BYTES` of an answer's body, without reading a large or unbounded one.

    Locust's clients read the body before the request event unless the request was streamed;
    a body not read yet is read here only when its ``Content-Length`` says it is small (a
    chunked or never-ending one could hold the user's greenlet for as long as it lasts).
    """
    body = body_in_memory(response)
    if body is None:
        length = header_value(headers, "Content-Length")
        if length is None or not length.strip().isdigit() or int(length) > MAX_BODY_BYTES:
            return b""
        try:
            body = response.content
        except Exception:  # the body broke (reset, truncated, bad encoding): nothing to say
            return b""
    return bytes(body[:MAX_BODY_BYTES]) if isinstance(body, bytes | bytearray) else b""


def body_in_memory(response: Any) -> bytes | bytearray | None:
    """The body when the client has already read it (without reading anything), else None.

    Each client keeps it in its own attribute: Locust's fast client (geventhttpclient) in
    ``_cached_content``, requests (Locust's ``HttpUser``) and loadbench's ``--http2`` client in
    ``_content`` (False or None until read).
    """
    for attribute in ("_cached_content", "_content"):
        body = getattr(response, attribute, None)
        if isinstance(body, bytes | bytearray):
            return body  # not copied: it may be huge
    return None


def redirect_hops(response: Any) -> int:
    """The redirects a request followed: its answer's ``history`` (geventhttpclient's, httpx's)."""
    try:
        history = response.history
    except Exception:  # an answer with no history: none followed (a failure's stand-in response)
        return 0
    return len(history) if isinstance(history, list) else 0


def header_value(headers: Any, name: str) -> str | None:
    """A response header's value (the clients' header maps ignore case), None when absent."""
    try:
        value = headers.get(name) if headers is not None else None
    except Exception:  # a header map of some other client that cannot be asked
        return None
    return value if isinstance(value, str) else None


def status_of(response: Any) -> int:
    """The answer's HTTP status; 0 when no answer came (or a client gave something else)."""
    status = getattr(response, "status_code", None) or 0
    return status if isinstance(status, int) else 0


def header_list(headers: Any, name: str) -> str | None:
    """A response header's value with its repeats joined as one list (geventhttpclient gives them as
    a Python list, requests and httpx joined already); None when absent."""
    try:
        value = headers.get(name) if headers is not None else None
    except Exception:  # a header map of some other client that cannot be asked
        return None
    if isinstance(value, list):
        value = ", ".join(v for v in value if isinstance(v, str)) or None
    return value if isinstance(value, str) else None


def replica_value(value: Any) -> str | None:
    """The replica a JSON answer's value names (``--replica-field``), as text; None for none (a
    missing value, an object or a list)."""
    return None if value is None or isinstance(value, dict | list) else label_text(value) or None


def path_option(options: Any, name: str) -> JsonPath | None:
    """A JSON path option of the run (``replica_field``: ``--replica-field``), parsed; None when not given."""
    value = getattr(options, name, None)
    return parse_path(value, "--" + name.replace("_", "-")) if isinstance(value, str) and value else None


class AnswerJson:
    """An answer's JSON body, parsed at most once however many options read it, and only when the
    client already read it (`body_in_memory`): never a body read for the recorder."""

    __slots__ = ("_parsed", "_response")

    def __init__(self, response: Any) -> None:
        self._response = response
        self._parsed: Any = _UNPARSED

    def at(self, path: JsonPath) -> Any:
        """The value at ``path``; None when the body is not in memory, not JSON, or holds nothing there."""
        if self._parsed is _UNPARSED:
            self._parsed = None
            body = body_in_memory(self._response)
            if body:
                # Not JSON (a stream, an HTML page): it says nothing.
                with contextlib.suppress(ValueError, RecursionError):
                    self._parsed = json.loads(body)
        return extract(self._parsed, path) if self._parsed is not None else None


_UNPARSED = object()


def cache_said(value: str | None, age: bool = False) -> str:
    """``hit``, ``miss`` or "" (not said) from a cache header's value: with ``age`` (``--cache-header
    Age``) a hit when the age is above 0 and a miss at 0; else a value naming a hit (``HIT``,
    ``TCP_HIT``, ``Hit from cloudfront``) or a miss. Repeats joined in one list (``MISS, HIT``: one
    cache behind another) are read by the last of them: the cache nearest the client answered."""
    if not value:
        return ""
    if age:
        text = value.split(",")[-1].strip()
        return ("hit" if int(text) > 0 else "miss") if text.isdigit() else ""
    lowered = value.lower()
    hit, miss = lowered.rfind("hit"), lowered.rfind("miss")
    if hit == miss:  # both -1: neither said
        return ""
    return "hit" if hit > miss else "miss"


def cache_in_value(value: Any) -> str:
    """``hit``, ``miss`` or "" from a JSON answer's value (``--cache-field``): true or ``"hit"`` (any
    case, as a header's words) a hit, false or ``"miss"`` a miss; anything else says nothing."""
    if isinstance(value, bool):
        return "hit" if value else "miss"
    return cache_said(value) if isinstance(value, str) else ""


def number_ms(value: Any) -> float | None:
    """A JSON answer's number of milliseconds (``--server-time-field``): a finite number >= 0 (not a
    boolean), else None. A number given as text (``"12.5"``) counts."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None
