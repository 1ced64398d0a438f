"""Response extractors: a small JSON path picks the prediction out of a parsed response body.

A path is dotted keys and list indexes: ``prediction``, ``predictions.0``,
``outputs.0.data.0``, ``choices.0.message.content``. A segment indexes a list when it is an
integer (``-1`` is the last item) and names a key of an object otherwise (a key that looks like
an integer still names the key of an object). Keys holding a dot cannot be named.

`parse_path` checks a path once (a bad one is a one-line `UsageError`); `extract` walks a parsed
body and gives None when the path leads nowhere (or to JSON null): "no answer". `label_text`
writes expected labels and predictions the same way, so ``7``, ``7.0`` and ``"7"`` compare
equal. Pure: no I/O, no locust.
"""

from __future__ import annotations

import json
from typing import Any

from loadbench.errors import UsageError

JsonPath = tuple[str, ...]

# Tried in order when a scenario is given no --extract: the first that the response holds is the
# prediction. The demo's /predict answers {"predictions": [label], ...}; a v2 server
# {"outputs": [{"data": [label, ...]}]}.
DEFAULT_PATHS = ("prediction", "predictions.0", "label", "labels.0", "outputs.0.data.0")


def parse_path(text: str, option: str = "--extract") -> JsonPath:
    """``"outputs.0.data.0"`` -> ``("outputs", "0", "data", "0")``; an unusable path -> `UsageError`
    naming ``option``."""
    if not isinstance(text, str) or not text.strip():
        raise UsageError(f"{option}: the path is empty; give e.g. predictions.0 or outputs.0.data.0")
    if text != text.strip() or any(c.isspace() for c in text):
        raise UsageError(f"{option} {text!r}: a path holds no whitespace (dotted keys and list indexes)")
    parts = tuple(text.split("."))
    for i, part in enumerate(parts):
        if not part:
            raise UsageError(
                f"{option} {text!r}: segment {i + 1} is empty (a leading, trailing or doubled dot)"
            )
    return parts


def json_path_text(text: str) -> str:
    """``--replica-field PATH`` as typed, checked as `parse_path` checks a path."""
    parse_path(text, "--replica-field")
    return text


def _index(part: str) -> int | None:
    digits = part[1:] if part.startswith("-") else part
    return int(part) if digits.isdigit() else None


def extract(body: Any, path: JsonPath) -> Any:
    """The value at ``path`` in a parsed JSON body; None when the path leads nowhere or to null."""
    node = body
    for part in path:
        if isinstance(node, dict):
            if part not in node:
                return None
            node = node[part]
        elif isinstance(node, list):
            index = _index(part)
            if index is None or not -len(node) <= index < len(node):
                return None
            node = node[index]
        else:
            return None
    return node


def extract_first(body: Any, paths: tuple[JsonPath, ...]) -> Any:
    """The value at the first of ``paths`` that the body holds (not null); None when none does."""
    for path in paths:
        value = extract(body, path)
        if value is not None:
            return value
    return None


def label_text(value: Any) -> str:
    """A label or prediction as the text that is compared and recorded.

    Integral numbers lose their ``.0`` (``7.0`` -> ``"7"``), booleans are ``true``/``false``,
    text is stripped, lists and objects are compact JSON; None is ``""`` (no answer).
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return value.strip()
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


class Extractor:
    """The prediction of a response: at ``--extract PATH``, or at the first of `DEFAULT_PATHS`.

    >>> Extractor("outputs.0.data.0")({"outputs": [{"data": [3]}]})
    '3'
    >>> Extractor(None)({"predictions": [7], "probabilities": [[0.1]]})
    '7'
    """

    def __init__(self, path: str | None, defaults: tuple[str, ...] = DEFAULT_PATHS) -> None:
        self.explicit = path is not None
        self.paths = (parse_path(path),) if path is not None else tuple(parse_path(p) for p in defaults)

    def __call__(self, body: Any) -> str:
        return label_text(extract_first(body, self.paths))


def payload_extras(meta: dict[str, Any]) -> dict[str, Any]:
    """The request-record fields a payload row's metadata gives: ``expected`` (from ``_expected``)
    and ``media_s`` (from ``_media_s``, a positive number of seconds; anything else is a one-line
    `UsageError`, so check every row once before the load)."""
    extras: dict[str, Any] = {}
    if meta.get("_expected") is not None:
        extras["expected"] = label_text(meta["_expected"])
    media = meta.get("_media_s")
    if media is not None:
        if not isinstance(media, int | float) or isinstance(media, bool) or not 0 < media < float("inf"):
            raise UsageError(f"_media_s must be a positive number of seconds, not {json.dumps(media)[:40]}")
        extras["media_s"] = float(media)
    return extras


def response_prediction(response: Any, extractor: Extractor) -> str | None:
    """The prediction in a ``catch_response=True`` response (Locust's, or any object with
    ``request_meta``, ``status_code`` and ``json()``); None when the request failed or the body
    is not JSON. "" when the JSON holds no prediction at the extractor's path."""
    if getattr(response, "request_meta", {}).get("exception") is not None:
        return None
    status = getattr(response, "status_code", None)
    if not status or status >= 400:
        return None
    try:
        body = response.json()
    except (ValueError, TypeError):
        return None
    return extractor(body)
