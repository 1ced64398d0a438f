"""What a request carried, shown short: the shape of a body for a message on the terminal.

`body_shape` turns a request body into one line that shows its structure, not its bulk: a JSON
body compacted with long lists of values cut to their first few and a count
(``{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP32","data":[0.1,0.2,0.3,0.4]}]}``,
``{"inputs":[[0.0,0.0,5.0,…64 values]]}``), long strings cut with their length, text under keys
named like credentials masked; a binary body as its size. The preflight
(`loadbench.drive.preflight`) shows it beside what the server said, so a wrong body is seen at
once. Bytes in, text out: no Locust, no I/O; the text is one line, safe to print (control
characters escaped), credentials scrubbed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from loadbench.protocols.errorbody import escape_controls
from loadbench.record.records import one_line
from loadbench.redact import MASK, is_secret_name, scrub

MAX_SHAPE_CHARS = 300
MAX_PARSED_BYTES = 1024 * 1024  # a larger body is shown as its size alone
SHOWN_VALUES = 3  # of a long list of values, the first ones shown
SHORT_LIST = 4  # a list of values this long or shorter is shown whole
SHOWN_KEYS = 12  # of an object, the keys shown
SHOWN_CHARS = 40  # of a string, the characters shown
_MAX_DEPTH = 8


def body_shape(body: bytes | str | None, secrets: Iterable[str] = (), limit: int = MAX_SHAPE_CHARS) -> str:
    """One line showing what ``body`` held (module docstring); "" for no body."""
    if body is None or not body:
        return ""
    raw = body.encode("utf-8", "replace") if isinstance(body, str) else bytes(body)
    if len(raw) > MAX_PARSED_BYTES:
        return f"({len(raw):,} bytes)"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return f"({len(raw):,} bytes, binary)"
    if "\x00" in text:
        return f"({len(raw):,} bytes, binary)"
    try:
        shown = _compact(json.loads(text), 0)
    except (ValueError, RecursionError):
        shown = text
    return one_line(scrub(escape_controls(shown), secrets), limit)


def _compact(value: Any, depth: int) -> str:
    if depth > _MAX_DEPTH:
        return "…"
    if isinstance(value, dict):
        items = [
            f"{json.dumps(str(k), ensure_ascii=False)}:"
            # Text only: a number under a name like "max_tokens" is no credential.
            + (json.dumps(MASK) if isinstance(v, str) and is_secret_name(str(k)) else _compact(v, depth + 1))
            for k, v in list(value.items())[:SHOWN_KEYS]
        ]
        more = [f"…{len(value):,} keys"] if len(value) > SHOWN_KEYS else []
        return "{" + ",".join(items + more) + "}"
    if isinstance(value, list):
        return _compact_list(value, depth)
    if isinstance(value, str) and len(value) > SHOWN_CHARS:
        return f"{json.dumps(value[:SHOWN_CHARS] + '…', ensure_ascii=False)}({len(value):,} chars)"
    return json.dumps(value, ensure_ascii=False)


def _compact_list(values: list[Any], depth: int) -> str:
    """A short list of values whole; a long one as its first values and its length; a list of
    lists or objects as its first item and its length (the rest are alike, as a rule)."""
    scalars = all(not isinstance(v, dict | list) for v in values)
    if scalars and len(values) <= SHORT_LIST:
        return "[" + ",".join(_compact(v, depth + 1) for v in values) + "]"
    if scalars:
        head = [_compact(v, depth + 1) for v in values[:SHOWN_VALUES]]
        return "[" + ",".join(head) + f",…{len(values):,} values]"
    first = _compact(values[0], depth + 1)
    return f"[{first}]" if len(values) == 1 else f"[{first},…{len(values):,} items]"
