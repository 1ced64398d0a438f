"""The parsers of the values users type: durations (``30s``), headers (``'K: V'``), target URLs.

Consumes command-line strings; produces validated values or raises `UsageError` /
`TargetError` with a one-line message that never echoes a credential.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from loadbench.errors import TargetError, UsageError
from loadbench.redact import redact_header, redact_url

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Parse ``30``, ``30s``, ``500ms``, ``2m``, ``1h30m`` into seconds."""
    value = text.strip().lower()
    try:
        return _check_duration(text, float(value))
    except ValueError:
        pass
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(value):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_S[match.group(2)]
        pos = match.end()
    if pos == 0 or pos != len(value):
        raise UsageError(f"bad duration {text!r}: use a number of seconds or e.g. 500ms, 30s, 2m, 1h30m")
    return _check_duration(text, total)


def _check_duration(text: str, seconds: float) -> float:
    if not seconds >= 0 or seconds == float("inf"):
        raise UsageError(f"bad duration {text!r}: must be a finite number of seconds >= 0")
    return seconds


def parse_header(text: str) -> tuple[str, str]:
    """Parse ``'Name: value'`` into its two parts."""
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not name or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
        # The text may be a credential with a typo ('Authorization Bearer x'): never echo it whole.
        raise UsageError(f"bad header {redact_header(text)!r}: use 'Name: value'")
    return name, value.strip()


def check_target(url: str) -> str:
    """Return the target URL without a trailing slash, or raise `TargetError` if it is not HTTP(S)."""
    shown = redact_url(url)  # messages never carry the URL's credentials
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed [IPv6 bracket
        raise TargetError(f"target {shown!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetError(f"target {shown!r} is not an http:// or https:// URL with a host")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise TargetError(f"target {shown!r} has an invalid port") from None
    if parts.query or parts.fragment:
        # Locust joins request paths onto the base URL and would drop or mangle a query here.
        raise TargetError(
            "the target must be a base URL without ?query or #fragment: put query parameters in the path"
        )
    return url.rstrip("/")
