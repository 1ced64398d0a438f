"""The Prometheus text exposition format 0.0.4, parsed (`parse_text`): families and their samples.

Also reads the common OpenMetrics extensions: ``# EOF``, ``foo_total`` / ``foo_created``
samples of a family ``foo``, exemplars, float-second timestamps. Written here, with no
dependency, and kept cheap: a sampler may parse a ~300-series vLLM endpoint ten times a second.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from loadbench.errors import LoadbenchError

Labels = tuple[tuple[str, str], ...]

_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
# OpenMetrics types that carry no semantics this module uses; their samples stay plain series.
_UNTYPED_ALIASES = {"unknown", "gaugehistogram", "stateset", "info"}
# Sample-name suffixes that belong to a family of the given type rather than a family of their own.
_SUFFIXES: dict[str, frozenset[str]] = {
    "counter": frozenset({"_total", "_created"}),
    "histogram": frozenset({"_bucket", "_sum", "_count", "_created"}),
    "summary": frozenset({"_sum", "_count", "_created"}),
}

_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_PAIR_RE = re.compile(
    r'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"([^"\\]*(?:\\.[^"\\]*)*)"[ \t]*(,?)'
)
_LABELS_END_RE = re.compile(r"[ \t]*\}")
# Raw label block -> parsed labels. The same blocks come back every scrape, and parsing
# them is most of a line's cost.
_label_cache: dict[str, Labels] = {}
_valid_names: set[str] = set()
_LABEL_CACHE_LIMIT = 100_000
_ESCAPE_RE = re.compile(r"\\(.)")
_LABEL_UNESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
_HELP_UNESCAPES = {"\\": "\\", "n": "\n"}


class PrometheusParseError(LoadbenchError):
    """Metrics text that is not valid exposition format; the message starts with ``line N:``."""


@dataclass(frozen=True)
class Sample:
    """One exposed value: its full sample name (``foo_bucket``, not ``foo``), labels and value."""

    name: str
    labels: Labels
    value: float
    timestamp_ms: int | None = None


@dataclass
class Family:
    """A metric family: its type (counter|gauge|histogram|summary|untyped), help text and samples."""

    name: str
    type: str
    help: str = ""
    samples: list[Sample] = field(default_factory=list)


def _unescape(text: str, table: dict[str, str]) -> str:
    if "\\" not in text:
        return text
    # Unknown escapes stay as written, as Prometheus itself does.
    return _ESCAPE_RE.sub(lambda m: table.get(m.group(1), m.group(0)), text)


def _escape_label_value(value: str) -> str:
    if "\\" not in value and '"' not in value and "\n" not in value:
        return value
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def series_key(name: str, labels: Labels) -> str:
    """Stable text key ``name{a="x",b="y"}``: labels sorted, values escaped, no braces when none."""
    if not labels:
        return name
    inner = ",".join(f'{k}="{_escape_label_value(v)}"' for k, v in sorted(labels))
    return f"{name}{{{inner}}}"


def _parse_value(token: str) -> float:
    # float() also takes "1_000"; the exposition format does not.
    if "_" in token:
        raise ValueError(token)
    return float(token)


def _parse_timestamp(token: str) -> int:
    try:
        return int(token)  # 0.0.4: integer milliseconds
    except ValueError:
        pass
    # OpenMetrics writes float seconds; a fractional timestamp can only mean that.
    seconds = _parse_value(token)
    if not math.isfinite(seconds):
        raise ValueError(token)
    return round(seconds * 1000)


def _parse_labels(line: str, pos: int, n: int) -> tuple[Labels, int]:
    """Labels from just after ``{``; returns them and the position after ``}``."""
    labels: list[tuple[str, str]] = []
    while True:
        m = _LABEL_PAIR_RE.match(line, pos)
        if m is None:
            # `{}`, or a trailing comma before `}`
            end = _LABELS_END_RE.match(line, pos)
            if end is None:
                raise PrometheusParseError(f"line {n}: malformed label set at column {pos + 1}: {line!r}")
            return tuple(labels), end.end()
        labels.append((m.group(1), _unescape(m.group(2), _LABEL_UNESCAPES)))
        pos = m.end()
        if not m.group(3):
            end = _LABELS_END_RE.match(line, pos)
            if end is None:
                raise PrometheusParseError(
                    f"line {n}: expected ',' or '}}' after label {m.group(1)!r}: {line!r}"
                )
            return tuple(labels), end.end()


def _family_for(families: dict[str, Family], name: str) -> Family:
    """The family a sample name belongs to, creating an untyped one for a stray sample."""
    family = families.get(name)
    if family is not None:
        return family
    base, sep, suffix = name.rpartition("_")
    if sep:
        owner = families.get(base)
        if owner is not None and "_" + suffix in _SUFFIXES.get(owner.type, ()):
            return owner
    family = families[name] = Family(name, "untyped")
    return family


def _parse_comment(line: str, n: int, families: dict[str, Family], typed: set[str]) -> bool:
    """Apply a ``#`` line; returns False at ``# EOF``."""
    parts = line[1:].split(None, 2)
    if not parts:
        return True
    keyword = parts[0]
    if keyword == "EOF" and len(parts) == 1:
        return False
    if keyword not in ("HELP", "TYPE"):
        return True  # a plain comment (OpenMetrics' UNIT included)
    if len(parts) < 2 or not _NAME_RE.fullmatch(parts[1]):
        raise PrometheusParseError(f"line {n}: {keyword} without a valid metric name: {line!r}")
    name = parts[1]
    family = families.get(name)
    if family is None:
        family = families[name] = Family(name, "untyped")
    if keyword == "HELP":
        family.help = _unescape(parts[2], _HELP_UNESCAPES) if len(parts) > 2 else ""
        return True
    kind = parts[2].strip() if len(parts) > 2 else ""
    if kind in _UNTYPED_ALIASES:
        kind = "untyped"
    if kind not in _TYPES:
        raise PrometheusParseError(f"line {n}: unknown metric type {kind!r} for {name}")
    if name in typed and family.type != kind:
        raise PrometheusParseError(f"line {n}: second TYPE line for {name} ({family.type}, then {kind})")
    typed.add(name)
    family.type = kind
    return True


def _parse_sample(line: str, n: int) -> Sample:
    m = _NAME_RE.match(line)
    if m is None:
        raise PrometheusParseError(f"line {n}: expected a metric name: {line!r}")
    name = m.group()
    pos = m.end()
    labels: Labels = ()
    if pos < len(line) and line[pos] == "{":
        labels, pos = _parse_labels(line, pos + 1, n)
    elif pos < len(line) and line[pos] not in " \t":
        raise PrometheusParseError(f"line {n}: invalid character {line[pos]!r} in metric name: {line!r}")
    tokens = line[pos:].split()
    for i, token in enumerate(tokens):
        if token.startswith("#"):  # an OpenMetrics exemplar; not a value
            del tokens[i:]
            break
    if not tokens:
        raise PrometheusParseError(f"line {n}: missing value: {line!r}")
    if len(tokens) > 2:
        raise PrometheusParseError(f"line {n}: unexpected text after value and timestamp: {line!r}")
    try:
        value = _parse_value(tokens[0])
    except ValueError:
        raise PrometheusParseError(f"line {n}: invalid value {tokens[0]!r}: {line!r}") from None
    timestamp_ms = None
    if len(tokens) == 2:
        try:
            timestamp_ms = _parse_timestamp(tokens[1])
        except (ValueError, OverflowError):
            raise PrometheusParseError(f"line {n}: invalid timestamp {tokens[1]!r}: {line!r}") from None
    return Sample(name, labels, value, timestamp_ms)


def _fast_sample(line: str, n: int) -> Sample | None:
    """The common sample line, with labels from the cache; None sends it to the careful parser.

    Without an exemplar the label block ends at the line's last ``}``: values and
    timestamps never hold one. A cached block is one the careful parser accepted whole.
    """
    close = line.rfind("}")
    if close < 0:
        tokens = line.split()
        name = tokens.pop(0)
        labels: Labels = ()
    else:
        brace = line.find("{")
        if brace < 0 or brace > close:
            return None
        name = line[:brace]
        raw_labels = line[brace + 1 : close]
        cached = _label_cache.get(raw_labels)
        if cached is None:
            cached, end = _parse_labels(line, brace + 1, n)
            if end != close + 1:
                return None
            if len(_label_cache) >= _LABEL_CACHE_LIMIT:  # label churn must not grow memory
                _label_cache.clear()
            _label_cache[raw_labels] = cached
        labels = cached
        tokens = line[close + 1 :].split()
    if name not in _valid_names:
        if not _NAME_RE.fullmatch(name):
            return None
        if len(_valid_names) >= _LABEL_CACHE_LIMIT:
            _valid_names.clear()
        _valid_names.add(name)
    if not 1 <= len(tokens) <= 2:
        return None  # missing value, or an exemplar
    try:
        value = _parse_value(tokens[0])
        timestamp_ms = _parse_timestamp(tokens[1]) if len(tokens) == 2 else None
    except (ValueError, OverflowError):
        return None
    return Sample(name, labels, value, timestamp_ms)


def parse_text(text: str) -> dict[str, Family]:
    """Parse exposition text into families by name; raises `PrometheusParseError` on a bad line."""
    families: dict[str, Family] = {}
    typed: set[str] = set()
    # split("\n") rather than splitlines(): label values may legally hold \x1c, \u2028 and friends.
    for n, raw in enumerate(text.split("\n"), 1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line:
            continue
        if line[0] in " \t":
            line = line.strip(" \t")
            if not line:
                continue
        if line[0] == "#":
            if not _parse_comment(line, n, families, typed):
                break
            continue
        sample = _fast_sample(line, n) or _parse_sample(line, n)
        _family_for(families, sample.name).samples.append(sample)
    return families
