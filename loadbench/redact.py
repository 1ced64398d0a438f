"""Keep credentials out of everything loadbench writes or prints.

Consumes URLs, header strings, command lines and free text; produces the same with secret
values replaced by ``***``. A header is secret when its name looks like a credential
(Authorization, Cookie, anything with key/token/secret/password/auth in it); a URL's
password and its secret-looking query parameters are secret too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
_SECRET_NAME = re.compile(r"auth|key|token|secret|passw|cookie|credential|session|signature", re.IGNORECASE)
# Command-line options whose value is a credential: --agent-token, --token, --api-key, --password,
# --auth; not --no-auth (a flag: masking would swallow the next option).
_SECRET_OPTION = re.compile(
    r"^(?!-?-no-)--?[\w-]*(token|key|secret|passw(or)?d|credentials?|auth(orization)?)$", re.IGNORECASE
)
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]*")
# Literal secrets shorter than this are not replaced in free text by `scrub` (a password "a"
# would mask every "a"); URL credentials are masked by position whatever their length.
MIN_SCRUB_LEN = 3
_PATH_WITH_QUERY = re.compile(r"^/\S*\?\S*=")  # a request path with a query: /predict?api_key=X
_URL_IN_TEXT = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def is_secret_name(name: str) -> bool:
    """Whether a header or query parameter with this name carries a credential."""
    return bool(_SECRET_NAME.search(name))


def redact_url(url: str) -> str:
    """Mask the password (or lone user token) and secret query values of a URL."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{hostport}" if ":" in userinfo else f"{MASK}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if is_secret_name(k) else v) for k, v in pairs], safe="*")
    if netloc == parts.netloc and query == parts.query:
        # Nothing to mask: as given (a round trip drops an empty host's "//": onnx:///m.onnx).
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_header(header: str) -> str:
    """``'Authorization: Bearer x'`` -> ``'Authorization: ***'``; harmless headers are kept.

    Text that is no header (no colon: ``'Authorization Bearer x'``, a typo) keeps only its
    leading name: what follows may be the credential, and whose it is cannot be told."""
    name, sep, _ = header.partition(":")
    if not sep:
        lead = _HEADER_NAME.match(header)
        kept = lead.group(0) if lead else ""
        return header if kept == header else f"{kept} {MASK}".lstrip()
    if is_secret_name(name):
        return f"{name}: {MASK}"
    return header


def redact_argv(argv: Sequence[str]) -> list[str]:
    """Redact a command line: header values after ``--header``/``-H``, the values of options
    named like credentials (``--agent-token X``, ``--api-key=X``), and every URL."""
    out: list[str] = []
    after_header = after_secret = False
    for arg in argv:
        if after_header:
            out.append(redact_header(arg))
            after_header = False
            continue
        if after_secret:
            out.append(MASK)
            after_secret = False
            continue
        option, eq, _ = arg.partition("=")
        if _SECRET_OPTION.match(option):
            out.append(f"{option}={MASK}" if eq else arg)
            after_secret = not eq
        elif arg in ("--header", "-H"):
            after_header = True
            out.append(arg)
        elif arg.startswith("--header="):
            out.append("--header=" + redact_header(arg.removeprefix("--header=")))
        elif arg.startswith("-H") and not arg.startswith("--"):
            out.append("-H" + redact_header(arg.removeprefix("-H")))
        elif _PATH_WITH_QUERY.match(arg):
            out.append(redact_url(arg))
        else:
            out.append(_URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), arg))
    return out


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every known secret value and URL credential in free text (e.g. an error message)."""
    for secret in sorted(secrets, key=len, reverse=True):  # "Bearer abc" before "abc"
        if len(secret) >= MIN_SCRUB_LEN:
            text = text.replace(secret, MASK)
    if "://" in text:
        text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
    return text


def secret_values(headers: Iterable[str], target: str, args: Iterable[str] = ()) -> list[str]:
    """The literal secret strings of a run, for `scrub`: secret header values, URL credentials,
    and secret query parameters in the target or any argument (``--path '/p?api_key=X'``)."""
    values: list[str] = []
    for header in headers:
        name, _, value = header.partition(":")
        if is_secret_name(name) and value.strip():
            value = value.strip()
            values.append(value)
            # "Bearer abc": the bare token may show up alone in a server's error text too.
            values.extend(part for part in value.split() if len(part) >= 8)
    parts = urlsplit(target)
    if parts.password:
        values.append(parts.password)
    if parts.username and not parts.password:
        values.append(parts.username)
    values.extend(v for k, v in parse_qsl(parts.query) if is_secret_name(k) and v)
    for arg in args:
        if "?" in arg:
            values.extend(v for k, v in parse_qsl(arg.split("?", 1)[1]) if is_secret_name(k) and v)
    return sorted(set(values), key=len, reverse=True)


def _url_secrets(url: str) -> list[str]:
    """A URL's password (or lone user token) and its secret query values."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    values = [parts.password or parts.username or ""] if "@" in parts.netloc else []
    values += [v for k, v in parse_qsl(parts.query) if is_secret_name(k)]
    return [v for v in values if v]


def argv_secrets(argv: Sequence[str]) -> list[str]:
    """The literal secrets of a command line, for `scrub`: what `redact_argv` masks (header
    values, values of credential options, URL credentials), before anything is parsed."""
    values: list[str] = []
    headers: list[str] = []
    after_header = after_secret = False
    for arg in argv:
        if after_header or after_secret:
            (headers if after_header else values).append(arg)
            after_header = after_secret = False
            continue
        option, eq, value = arg.partition("=")
        if _SECRET_OPTION.match(option):
            if eq:
                values.append(value)
            after_secret = not eq
        elif arg in ("--header", "-H"):
            after_header = True
        elif arg.startswith("--header="):
            headers.append(arg.removeprefix("--header="))
        elif arg.startswith("-H") and not arg.startswith("--"):
            headers.append(arg.removeprefix("-H"))
        elif _PATH_WITH_QUERY.match(arg):
            values += _url_secrets(arg)
        else:
            for match in _URL_IN_TEXT.finditer(arg):
                values += _url_secrets(match.group(0))
    for header in headers:
        if ":" not in header:  # not a header: everything after its leading name may be the secret
            lead = _HEADER_NAME.match(header)
            rest = header[lead.end() if lead else 0 :].strip()
            values += [rest, *(part for part in rest.split() if len(part) >= 8)]
    values += secret_values([h for h in headers if ":" in h], "")
    return sorted({v for v in values if v}, key=len, reverse=True)
