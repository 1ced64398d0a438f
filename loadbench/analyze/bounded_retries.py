"""``summary.json`` ``retries`` from a run's store (`loadbench.analyze.retries`), and the attempts
the sections that count them read (``retries`` here, ``replicas`` and ``targets`` in
`loadbench.analyze.bounded_routes`), equal to what the in-memory analyzer gives.

With ``--retries`` the store's ``requests`` view holds the requests users saw (each one's
attempts collapsed, `loadbench.analyze.store.COLLAPSE`), so every other section reads them as it
reads a run without retries; its ``attempts`` view (`ATTEMPTS`) holds every attempt, with its
request's start (`ATTEMPT_IN_WINDOW`: a retry counts where its request does), whether it was its
request's last (``final``) and how many attempts its request took (``request_attempts``).
Memory: counts in DuckDB, one row per kind of failure.
"""

from __future__ import annotations

from typing import Any

from loadbench.analyze import retries
from loadbench.analyze.scope import OK, Scope

# The record columns this module reads (`loadbench.analyze.bounded.unsupported`).
COLUMNS: frozenset[str] = frozenset({"attempt", "request_id"})

# The attempts as `loadbench.analyze.window.Window` has them, and its window's rule for them.
ATTEMPTS = "attempts"
ATTEMPT_IN_WINDOW = "request_start_unix_s >= ?"


def attempts_in_window(scope: Scope) -> int:
    """How many attempts the window's requests took (its requests, without retries)."""
    if not scope.store.retried:
        return scope.total
    ((n,),) = scope.store.rows(f"SELECT count(*) FROM {ATTEMPTS} WHERE {ATTEMPT_IN_WINDOW}", [scope.lo])
    return int(n)


def retries_keys(scope: Scope) -> dict[str, Any]:
    """``retries`` for a run with retries (settings, or a record with an attempt number)."""
    section = _retries(scope)
    return {} if section is None else {"retries": section}


def _retries(scope: Scope) -> dict[str, Any] | None:
    """`loadbench.analyze.retries.retries_section`."""
    store = scope.store
    configured = scope.span.settings.get("retries")
    numbered = "attempt" in store.filled and bool(
        store.rows("SELECT 1 FROM written WHERE isfinite(attempt) LIMIT 1")
    )
    if not configured and not numbered:
        return None
    retried = "final AND request_attempts > 1"
    ((attempts, retried_requests, recovered, failed_attempts),) = store.rows(
        f"""SELECT count(*), count(*) FILTER ({retried}), count(*) FILTER ({retried} AND {OK}),
        count(*) FILTER (NOT ({OK})) FROM {ATTEMPTS} WHERE {ATTEMPT_IN_WINDOW}""",
        [scope.lo],
    )
    return retries.retries_of(
        configured,
        scope.total,
        scope.ok,
        int(attempts),
        int(retried_requests),
        int(recovered),
        int(failed_attempts),
        _by_reason(scope),
    )


def _by_reason(scope: Scope) -> list[dict[str, Any]]:
    """The failed attempts that were retried (not their request's last), by kind of failure."""
    rows = scope.store.rows(
        f"""SELECT status, coalesce(CAST(error AS VARCHAR), ''), count(*) FROM {ATTEMPTS}
        WHERE {ATTEMPT_IN_WINDOW} AND NOT ({OK}) AND NOT final GROUP BY ALL""",
        [scope.lo],
    )
    return retries.reasons_ranked((status, str(error), int(count)) for status, error, count in rows)
