"""What a server said when it refused a request: the message in an error answer, one short line.

Model servers explain a 4xx/5xx in the body: MLServer, Triton, TF Serving and TGI as
``{"error": "..."}``, OpenAI-compatible servers as ``{"error": {"message": ...}}`` or
``{"message": ...}``, FastAPI as ``{"detail": "..."}`` or a list of validation errors
(``{"detail": [{"loc": [...], "msg": ...}]}``), proxies as a text or HTML page. `server_message`
finds that message; `retry_after_text` tidies a ``Retry-After`` header. The recorder keeps both
per failed request (``requests.csv`` ``server_message``, ``retry_after``; docs/run-format.md).
The preflight (`loadbench.drive.preflight`) quotes the same message, longer, on the terminal:
`server_text` untidied, `escape_controls` to make it safe to print.

Bytes and header values in, text out: no Locust, no I/O. The text is one line, without control
characters, credentials scrubbed, and bounded; it is still the server's, so every report
escapes it.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from typing import Any

from loadbench.record.records import one_line
from loadbench.redact import scrub

MAX_BODY_BYTES = 64 * 1024  # of an error body, the most that is read or parsed
MAX_MESSAGE_CHARS = 200
MAX_RETRY_AFTER_CHARS = 40
# The keys a JSON error body names its message with, tried in this order (case ignored).
MESSAGE_KEYS = ("error", "message", "detail", "errors", "msg", "error_description", "title", "reason")
_MAX_DEPTH = 6  # nesting followed into a JSON body
_MAX_ITEMS = 3  # entries of a list of errors joined into the message
# C0 and C1 control characters (tab, newline and carriage return are whitespace, collapsed).
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# The same, with the characters that reorder text on a terminal (right-to-left overrides).
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# HTML: the tags that end a line of text (the others are removed, leaving their text in place).
_LINE_TAG = re.compile(
    r"<\s*/?\s*(?:html|head|title|body|p|div|br|hr|h[1-6]|li|tr|pre|center|table)\b[^>]*>", re.IGNORECASE
)
_TAG = re.compile(r"<[^>]*>")


def server_message(body: bytes, content_type: str = "", secrets: Iterable[str] = ()) -> str:
    """The message of an error answer's ``body`` (its first `MAX_BODY_BYTES`): "" when it has none.

    A JSON body: the first of `MESSAGE_KEYS` that holds text, followed into nested objects and
    lists (FastAPI's ``detail`` list gives ``loc: msg`` of each entry). Any other body, or JSON
    without such a key: its first non-blank line (for HTML, of its text without the tags).
    Binary bodies (a NUL byte) say nothing. One line, at most `MAX_MESSAGE_CHARS` characters,
    control characters removed, ``secrets`` (and URL credentials) scrubbed before it is cut.
    """
    return _tidy(server_text(body, content_type), secrets, MAX_MESSAGE_CHARS)


def server_text(body: bytes, content_type: str = "") -> str:
    """The message `server_message` finds, untidied: it may be long and hold control characters
    and credentials, so a caller cuts, escapes (`escape_controls`) and scrubs it."""
    sample = bytes(body[:MAX_BODY_BYTES])
    if b"\x00" in sample or not sample.strip():
        return ""
    text = sample.decode("utf-8", "replace")
    found = ""
    if text.lstrip()[:1] in ("{", "[", '"'):
        try:
            found = _message_of(json.loads(text), 0)
        # Not JSON after all, or cut at MAX_BODY_BYTES: read as text. RecursionError: nested
        # thousands deep.
        except (ValueError, RecursionError):
            found = ""
    if not found:
        if "html" in content_type.lower() or text.lstrip()[:5].lower() in ("<!doc", "<html"):
            text = html.unescape(_TAG.sub("", _LINE_TAG.sub("\n", text)))
        found = next((line for line in text.splitlines() if line.strip()), "")
    return found


def escape_controls(text: str) -> str:
    """Control characters (but tab, newline and carriage return) and bidirectional-text
    controls as visible escapes (``\\x1b``, ``\\u202e``): a terminal shows them, never obeys them."""
    return _UNPRINTABLE.sub(lambda m: ascii(m.group(0))[1:-1], text)


def retry_after_text(value: Any, secrets: Iterable[str] = ()) -> str:
    """A ``Retry-After`` header's value as the server sent it (seconds or an HTTP date), tidied."""
    return _tidy(value, secrets, MAX_RETRY_AFTER_CHARS) if isinstance(value, str) else ""


def token_header_hint(text: str) -> str:
    """What to pass to a restricted API that names the header it expects (Triton's and
    PyTriton's "This API is restricted, expecting header 'triton-access-token'"; over gRPC the
    header is ``triton-grpc-protocol-triton-access-token``): ``, or give ... --header 'NAME:
    TOKEN'``, or "" when the text names no header."""
    header = re.search(r"expecting header '([^'\s:]+)'", text)
    return f", or give the index its token with --header '{header.group(1)}: TOKEN'" if header else ""


def _tidy(text: str, secrets: Iterable[str], limit: int) -> str:
    return one_line(scrub(_CONTROLS.sub(" ", text), secrets), limit)


def _message_of(value: Any, depth: int) -> str:
    """The text a JSON error value holds (see `server_message`), "" when none."""
    if depth > _MAX_DEPTH:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list):
        parts = [m for m in (_message_of(v, depth + 1) for v in value[:_MAX_ITEMS]) if m]
        more = f" (+{len(value) - _MAX_ITEMS} more)" if parts and len(value) > _MAX_ITEMS else ""
        return "; ".join(parts) + more
    if not isinstance(value, dict):
        return ""
    keys = {k.lower(): k for k in value if isinstance(k, str)}
    for key in MESSAGE_KEYS:
        if key in keys:
            found = _message_of(value[keys[key]], depth + 1)
            if found:
                loc = value.get("loc")
                if key == "msg" and isinstance(loc, list) and loc:  # a FastAPI / pydantic entry
                    found = f"{'.'.join(str(part) for part in loc)}: {found}"
                return found
    return ""
