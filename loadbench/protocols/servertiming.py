"""The server's own processing time of one request, read from a header of its answer.

``loadbench run --server-time-header NAME`` (``NAME:METRIC``) names the header; the recorder keeps
what `server_time_ms` makes of it in ``requests.csv``'s ``server_ms`` (docs/run-format.md). Two
forms are read:

- a number of milliseconds (the demo's ``X-Service-Time-Ms: 20.412``);
- a W3C Server-Timing header (https://www.w3.org/TR/server-timing/), ``queue;dur=1.2,
  infer;dur=18.7;desc="GPU"``, each metric's ``dur`` in milliseconds: the sum of every ``dur``, or
  with a METRIC the ``dur`` of the metrics of that name only.

A value that cannot be read for certain gives None (an empty field), never 0 or a guess: a
queueing model fed a wrong service time is worse off than one told it is unknown. So a negative,
NaN or infinite time, a malformed Server-Timing list, a metric whose ``dur`` is not a number, or
a METRIC that is absent or has no ``dur``, all give None.

Header values in, a number out: no Locust, no I/O.
"""

from __future__ import annotations

import math
import re

# RFC 9110 token and quoted-string: what Server-Timing metric names and parameter values are.
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_PARAM = re.compile(rf"[ \t]*;[ \t]*({_TOKEN})(?:[ \t]*=[ \t]*({_TOKEN}|{_QUOTED}))?")
# One metric with its parameters, up to the comma that ends it (empty list elements are allowed,
# as in any HTTP list).
_METRIC = re.compile(rf"[ \t,]*({_TOKEN})((?:{_PARAM.pattern})*)[ \t]*(?:,|\Z)")
# A plain decimal number, without a sign: float() alone would also take "nan", "inf" and "1_0".
_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def split_spec(spec: str) -> tuple[str, str | None]:
    """``--server-time-header``'s ``NAME`` or ``NAME:METRIC`` as (header name, metric or None)."""
    name, _, metric = spec.partition(":")
    return name.strip(), metric.strip() or None


def server_time_ms(value: str | None, metric: str | None = None) -> float | None:
    """The server's time in ms from a header ``value`` (None when absent); see the module docstring.

    Without ``metric`` a plain number is the time itself, and anything else is read as
    Server-Timing (the sum of its ``dur``s); with one, only that metric's ``dur`` counts.
    """
    if value is None:
        return None
    if metric is None:
        plain = _milliseconds(value.strip())
        if plain is not None:
            return plain
    metrics = _server_timing(value)
    if metrics is None:
        return None
    durations = [dur for name, dur in metrics if dur is not None and (metric is None or name == metric)]
    return math.fsum(durations) if durations else None


def _server_timing(value: str) -> list[tuple[str, float | None]] | None:
    """Each metric of a Server-Timing value as (name, ``dur`` or None when it has none); None when
    the value is not one, or a ``dur`` in it is not a time."""
    text = value.strip()
    metrics: list[tuple[str, float | None]] = []
    pos = 0
    while pos < len(text):
        match = _METRIC.match(text, pos)
        if match is None:
            return None
        dur: float | None = None
        for param in _PARAM.finditer(match.group(2)):
            # Parameter names ignore case; of several ``dur``s the first counts (as in the spec).
            if param.group(1).lower() == "dur" and dur is None:
                dur = _milliseconds((param.group(2) or "").strip('"'))
                if dur is None:
                    return None
        metrics.append((match.group(1), dur))
        pos = match.end()
    return metrics or None


def _milliseconds(text: str) -> float | None:
    """A time in ms written as a plain number, None for anything else (1e999 overflows to inf)."""
    if not _NUMBER.fullmatch(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None
