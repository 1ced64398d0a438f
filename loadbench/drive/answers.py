"""What the recorder reads from an answer, without reading what it should not: the body when it
is already in memory (or small), headers as each client keeps them, the status, the redirects
followed, and which replica served it (``--replica-header NAME``, ``--replica-field PATH``).

Works on the responses of every client loadbench's users send with (Locust's fast client,
requests, httpx for ``--http2``) and on a failed request's stand-in response.
"""

from __future__ import annotations

import json
from typing import Any

from loadbench.protocols.errorbody import MAX_BODY_BYTES
from loadbench.protocols.extract import JsonPath, extract, label_text


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


def replica_in_body(response: Any, path: JsonPath) -> str | None:
    """The replica an answer's JSON body names at ``path`` (``--replica-field``), as text; None when
    the body is not in memory, not JSON, or holds nothing there. Only a body already read is parsed."""
    body = body_in_memory(response)
    if not body:
        return None
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):  # not JSON (a stream, an HTML page): it names none
        return None
    value = extract(parsed, path)
    return None if value is None or isinstance(value, dict | list) else label_text(value) or None
