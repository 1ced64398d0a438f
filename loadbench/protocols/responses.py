"""What an answer is recorded as beyond its status and body: a redirect loadbench did not follow
(docs/metrics.md, "Redirects"), a body too large to keep (`BODY_OVER_LIMIT`, "Response bodies").

By default loadbench follows no redirect: a 3xx answer is the endpoint's answer, recorded as a
failure of kind ``HTTP 3xx`` whose error names where it pointed, because a benchmark that
silently follows a redirect measures two requests as one (and a loop as thirty). With
``--follow-redirects N`` the client follows up to N hops of each request and the recorder counts
them; a request still redirected after N hops fails as ``too many redirects``.

Header values in, text out: no Locust, no I/O. Callers scrub credentials (a ``Location`` may
carry a signed URL).
"""

from __future__ import annotations

from typing import Any

# The failure of a check that needed a body over --max-body (it was dropped): its error kind.
BODY_OVER_LIMIT = "body over --max-body"
# The statuses a client follows (those with a Location): RFC 9110's redirects, as requests,
# httpx and geventhttpclient follow them. 300 and 304 are answers, never followed.
FOLLOWED_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_LOCATION_CHARS = 200


class RedirectError(Exception):
    """A 3xx answer that was not followed: the request failed with it."""


def is_redirect_status(status: Any) -> bool:
    """A 3xx status: an answer loadbench records as a failure when it is the last one."""
    return isinstance(status, int) and 300 <= status < 400


def location_of(headers: Any) -> str:
    """The ``Location`` header of an answer, one line and bounded; ``""`` without one."""
    try:
        value = headers.get("location") if headers is not None else None
    except Exception:  # a header map of some other client that cannot be asked
        return ""
    if not isinstance(value, str):
        return ""
    flat = " ".join(value.split())
    return flat if len(flat) <= MAX_LOCATION_CHARS else flat[: MAX_LOCATION_CHARS - 1] + "…"


def redirect_said(location: str) -> str:
    """The ``server_message`` of a 3xx failure: where it pointed (``""`` when it did not say)."""
    return f"redirect to {location}" if location else ""


def redirect_failure(status: int, location: str, follow_redirects: int) -> str:
    """The error of a request whose last answer was ``status`` (3xx), ``location`` its Location.

    ``HTTP 302 redirect to /v2/models/m (pass --follow-redirects)``: not followed because
    following is off; with it on, only a 3xx that cannot be followed ends a request (no
    Location, or a status such as 304 that is no redirect).
    """
    if status in FOLLOWED_STATUSES and location:
        why = "(not followed)" if follow_redirects else "(pass --follow-redirects)"
        return f"HTTP {status} redirect to {location} {why}"
    if status in FOLLOWED_STATUSES:
        return f"HTTP {status} redirect without a Location"
    return f"HTTP {status} answer (a 3xx that is no redirect to follow)"
