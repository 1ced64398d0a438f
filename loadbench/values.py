"""The parsers of the values users type: durations (``30s``), sizes (``8MiB``), headers (``'K: V'``),
target URLs.

Consumes command-line strings; produces validated values or raises `UsageError` /
`TargetError` with a one-line message that never echoes a credential.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

from loadbench.errors import TargetError, UsageError
from loadbench.redact import redact_header, redact_url

T = TypeVar("T")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?")
_SIZE_UNIT = {"b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "ki": 1024, "mi": 1024**2, "gi": 1024**3}
# An HTTP token (RFC 9110): what a header name is.
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"

# --max-body: response bodies larger than this are read and counted, never kept (docs/metrics.md).
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
# --follow-redirects without a number: how many hops one request may follow.
DEFAULT_FOLLOW_REDIRECTS = 5


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


def parse_size(text: str) -> int:
    """Parse ``8388608``, ``512KiB``, ``10MB``, ``1.5GiB`` into bytes (kB, MB, GB: powers of 1000;
    KiB, MiB, GiB: of 1024; case ignored); a size of at least one byte."""
    match = _SIZE.fullmatch(text.strip().lower())
    if match is None:
        raise UsageError(f"bad size {text!r}: use a number of bytes or e.g. 512KiB, 10MB, 1GiB")
    unit = (match.group(2) or "b").removesuffix("b") or "b"
    size = int(float(match.group(1)) * _SIZE_UNIT[unit])
    if size < 1:
        raise UsageError(f"bad size {text!r}: must be at least 1 byte")
    return size


def parse_redirects(text: str) -> int:
    """Parse ``--follow-redirects``' bound: 0 (follow none) to 100 hops."""
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"bad number of redirects {text!r}: use 0 to 100") from None
    if not 0 <= value <= 100:
        raise UsageError(f"bad number of redirects {text!r}: use 0 to 100")
    return value


def redirect_bound(text: str) -> int:
    """`parse_redirects` as an argparse ``type`` (``loadbench run`` and plain ``locust -f``)."""
    try:
        return parse_redirects(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("bad ")) from None


def at_least_one(what: str, hint: str = "") -> Callable[[str], int]:
    """An argparse type: a whole number of ``what``, 1 or more (``hint``: said after the refusal)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of {what}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{value}: must be 1 or more {what}{hint}")
        return value

    return parse


def http_url(text: str) -> str:
    """A URL loadbench fetches as given (a scrape, Triton's counters): http(s), a host and a valid
    port, else a `UsageError` saying which it lacks (the caller names the option)."""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise UsageError("not a valid URL (bad port or address)") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError("not an http:// or https:// URL with a host")
    return text


def argument_type(parse: Callable[[str], T], drop: str = "") -> Callable[[str], T]:
    """``parse`` as an argparse ``type``: its `UsageError` (or ValueError) becomes argparse's own
    error, whose message argparse prefixes with the option's name (``drop``: a prefix that would
    repeat it)."""

    def typed(text: str) -> T:
        try:
            return parse(text)
        except (UsageError, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix(drop)) from None

    typed.__name__ = parse.__name__
    return typed


def body_size(text: str) -> int:
    """`parse_size` as an argparse ``type`` (``loadbench run`` and plain ``locust -f``)."""
    try:
        return parse_size(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("bad size ")) from None


def server_time_header(text: str) -> str:
    """``--server-time-header``'s ``NAME`` or ``NAME:METRIC`` (both tokens), as an argparse ``type``
    (``loadbench run`` and plain ``locust -f``)."""
    value = text.strip()
    if not re.fullmatch(rf"{_TOKEN}(?::{_TOKEN})?", value):
        # Not echoed: a mistyped header may hold a credential ('Authorization: Bearer x').
        raise argparse.ArgumentTypeError(
            "use a header name (X-Service-Time-Ms), or NAME:METRIC for one metric of a Server-Timing "
            "header (Server-Timing:infer)"
        )
    return value


def header_name(text: str) -> str:
    """An HTTP header name (a token), as an argparse ``type``: ``--replica-header X-Served-By``."""
    value = text.strip()
    if not re.fullmatch(_TOKEN, value):
        # Not echoed: a mistyped header may hold a credential ('Authorization: Bearer x').
        raise argparse.ArgumentTypeError("use a header name, such as X-Served-By")
    return value


def json_field_path(text: str) -> str:
    """A dotted path into a JSON answer (keys and list indexes: ``meta.cache``, ``timings.0.ms``), as
    an argparse ``type``: ``--cache-field``, ``--server-time-field`` (checked as
    `loadbench.protocols.extract.parse_path` checks one, which the recorder then uses)."""
    if not text or text != text.strip() or any(c.isspace() for c in text) or "" in text.split("."):
        raise argparse.ArgumentTypeError(
            "use a dotted path of keys and list indexes without spaces, such as meta.cache or timings.infer_ms"
        )
    return text


def format_size(size: int) -> str:
    """``8388608`` -> ``8 MiB``: a size in the largest binary unit that divides it (bytes otherwise)."""
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size:,} byte{'s' if size != 1 else ''}"


def parse_header(text: str) -> tuple[str, str]:
    """Parse ``'Name: value'`` into its two parts."""
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not name or not re.fullmatch(_TOKEN, name):
        # The text may be a credential with a typo ('Authorization Bearer x'): never echo it whole.
        raise UsageError(f"bad header {redact_header(text)!r}: use 'Name: value'")
    return name, value.strip()


def check_target(url: str) -> str:
    """Return the target URL without a trailing slash, or raise `TargetError` if it is not HTTP(S)."""
    if is_inprocess_url(url):
        return check_inprocess_target(url)
    shown = redact_url(url)  # messages never carry the URL's credentials
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed [IPv6 bracket
        raise TargetError(f"target {shown!r} is not a valid URL") from None
    if parts.scheme.lower() in GRPC_SCHEMES and parts.hostname:
        return check_grpc_target(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetError(
            f"target {shown!r} is not an http:// or https:// URL with a host (nor grpc://HOST:PORT)"
        )
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


# Open Inference Protocol over gRPC: cleartext HTTP/2, and TLS.
GRPC_SCHEMES = ("grpc", "grpcs")
_BARE = re.compile(
    r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(?P<port>\d{1,5})/?$"
)


def bare_host_port(target: str) -> str | None:
    """``HOST:PORT`` (or ``[IPv6]:PORT``) given without a scheme, as gRPC users write a server's
    address: it without a trailing slash; None for anything else (a URL, or no port)."""
    match = _BARE.match(target)
    if match is None or not 0 < int(match["port"]) <= 65535:
        return None
    return f"{match['host']}:{match['port']}"


# In-process targets: a Python callable, an ONNX model file (`loadbench.protocols.inprocess`).
INPROCESS_SCHEMES = ("python", "onnx")
_PYTHON_TARGET = re.compile(r"^python://(?P<module>[A-Za-z_][\w.]*):(?P<attr>[A-Za-z_][\w.]*)$")


def is_inprocess_url(url: str) -> bool:
    """Whether a target names a model run inside loadbench's own process (``python://``, ``onnx://``)."""
    return url.split("://", 1)[0].lower() in INPROCESS_SCHEMES if "://" in url else False


def check_inprocess_target(url: str) -> str:
    """``python://package.module:callable`` or ``onnx://PATH`` (relative or absolute), else
    `TargetError`; whether it imports or loads is for `loadbench.protocols.inprocess`."""
    scheme, rest = url.split("://", 1)
    if scheme.lower() == "onnx":
        if not rest.strip():
            raise TargetError("target onnx:// names no file: give onnx://PATH/model.onnx")
        return f"onnx://{rest}"
    if _PYTHON_TARGET.match(f"python://{rest}") is None:
        raise TargetError(
            f"target {url!r} is not python://package.module:callable (a module to import, a colon, "
            "the function's name in it)"
        )
    return f"python://{rest}"


def is_grpc_url(url: str) -> bool:
    """Whether a target names a gRPC server (``grpc://`` or ``grpcs://``)."""
    return url.split("://", 1)[0].lower() in GRPC_SCHEMES if "://" in url else False


def check_grpc_target(url: str) -> str:
    """``grpc://HOST:PORT`` or ``grpcs://HOST:PORT`` (a trailing slash dropped), else `TargetError`:
    gRPC names its calls by service and method, so a path means nothing there, and it has no
    default port."""
    shown = redact_url(url)
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise TargetError(f"target {shown!r} has an invalid port") from None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise TargetError(
            f"target {shown!r}: a {parts.scheme}:// target is HOST:PORT without a path, query or fragment "
            "(gRPC calls are named by service and method, not by URL path)"
        )
    if port is None:
        raise TargetError(f"target {shown!r} names no port: give {parts.scheme}://HOST:PORT")
    if parts.username is not None or parts.password is not None:
        raise TargetError(
            f"target {shown!r}: gRPC takes no user:password in the URL; send credentials with "
            "--header 'authorization: ...' (gRPC metadata)"
        )
    return url.rstrip("/")


def target_base(url: str) -> str:
    """A target's base URL as records show it: without credentials or a trailing slash."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def read_targets_file(path: str) -> list[str]:
    """A ``--targets`` file's URLs: one per line; blank lines and ``#`` comments skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"--targets {path}: cannot read it ({getattr(exc, 'strerror', None) or exc})"
        ) from None
    urls = [line.strip() for line in text.splitlines()]
    urls = [u for u in urls if u and not u.startswith("#")]
    if not urls:
        raise UsageError(f"--targets {path} lists no URL")
    return urls


def check_targets(urls: list[str]) -> list[str]:
    """Several targets, checked: each a valid HTTP(S) base URL, no duplicates, one scheme for all.

    One line (`UsageError` / `TargetError`) names the first problem. gRPC targets are one at a time.
    """
    checked = [check_target(u) for u in urls]
    if len(checked) > 1:
        if any(is_grpc_url(u) for u in checked):
            raise UsageError("several targets are HTTP(S) base URLs: a grpc:// target is measured alone")
        schemes = {urlsplit(u).scheme for u in checked}
        if len(schemes) > 1:
            raise UsageError(f"several targets must share one protocol: got {' and '.join(sorted(schemes))}")
        seen: set[str] = set()
        for url in checked:
            key = target_base(url).lower()
            if key in seen:
                raise UsageError(f"target {target_base(url)} is given twice: each replica once")
            seen.add(key)
    return checked
