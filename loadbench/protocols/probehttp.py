"""The HTTP side of discovery: the probe's client (like Locust's: no proxy variables, HTTP/2 only
for a ``--http2`` run) and a bounded JSON GET or POST whose failures are one-line `TargetError`s.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from loadbench.errors import TargetError
from loadbench.redact import redact_url, scrub
from loadbench.values import DEFAULT_MAX_BODY_BYTES

PROBE_TIMEOUT_S = 5.0
PROBE_MAX_BODY_BYTES = DEFAULT_MAX_BODY_BYTES  # of one discovery answer (a model list, metadata)


class Http2OnlyClient(httpx.Client):
    """The probe's client of a ``--http2`` run: HTTP/2 only, so that its failures can say so."""


def open_client(
    base_url: str, headers: dict[str, str] | None, timeout_s: float, verify: bool = True, http2: bool = False
) -> httpx.Client:
    # trust_env=False: like Locust's own client, ignore proxy variables; the probe must
    # reach the same server the load will. http2: HTTP/2 only, as a --http2 run sends (an
    # h2c server by prior knowledge may not speak HTTP/1.1 at all).
    cls = Http2OnlyClient if http2 else httpx.Client
    return cls(
        base_url=base_url,
        headers=headers,
        timeout=timeout_s,
        trust_env=False,
        verify=verify,
        http1=not http2,
        http2=http2,
    )


def bounded_body(response: httpx.Response, limit: int) -> bytes | None:
    """A streamed answer's body, read no further than ``limit`` bytes: None when it is longer (a
    runaway or hostile server cannot make loadbench hold an unbounded body)."""
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def get_json(client: httpx.Client, method: str, path: str) -> tuple[int, Any]:
    """(status, parsed JSON or None). Connection failures raise `TargetError`.

    An answer longer than `PROBE_MAX_BODY_BYTES` is read no further and counts as no JSON: a
    runaway or hostile server cannot make discovery hold an unbounded body (as ``--max-body``
    bounds the load's)."""
    try:
        # A POST here is a query (Triton's repository index), whose body is an empty JSON object.
        with client.stream(method, path, json={} if method == "POST" else None) as response:
            body = bounded_body(response, PROBE_MAX_BODY_BYTES)
            if body is None:
                return response.status_code, None
    except httpx.TimeoutException:
        timeout_s = client.timeout.read or PROBE_TIMEOUT_S
        shown = redact_url(str(client.base_url))  # base_url keeps the URL's user:password
        raise TargetError(f"target {shown} did not answer {method} {path} within {timeout_s:g} s") from None
    except httpx.TransportError as exc:
        reason = scrub(str(exc), []) or type(exc).__name__
        shown = redact_url(str(client.base_url))  # base_url keeps the URL's user:password
        if "CERTIFICATE_VERIFY_FAILED" in reason:
            raise TargetError(
                f"the TLS certificate of {shown} could not be verified ({reason.split('] ')[-1][:120]});"
                " pass --insecure to skip verification"
            ) from None
        if isinstance(client, Http2OnlyClient) and isinstance(exc, httpx.RemoteProtocolError):
            # An HTTP/1.1 server answers HTTP/2's preface by hanging up, which httpx reports as a
            # disconnect: name the real cause, not an unreachable server.
            raise TargetError(
                f"target {shown} does not speak HTTP/2 ({reason}): drop --http2, or give a server that "
                "speaks HTTP/2 cleartext (h2c) over http:// or offers h2 over https://"
            ) from None
        raise TargetError(f"target {shown} is unreachable: {reason}") from None
    try:
        return response.status_code, json.loads(body)  # UTF-8, -16 or -32, as JSON allows
    except ValueError:
        return response.status_code, None
