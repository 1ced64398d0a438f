"""What retries cost and what they saved: ``summary.json`` ``retries``.

Consumes the measured window (`loadbench.analyze.window.Window`): its user-visible requests and
the attempts behind them (`loadbench.analyze.attempts`), and ``meta.json`` ``settings.retries``;
produces the ``retries`` section (definitions: ``docs/metrics.md``, Retries). Pure: no I/O.
Absent for a run without retries (no settings, and no record with an ``attempt``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from loadbench.analyze import stats
from loadbench.analyze.window import Window


def retries_section(w: Window) -> dict[str, Any] | None:
    """``summary.json`` ``retries`` over the window's requests and all their attempts."""
    configured = w.settings.get("retries")
    attempt = w.attempts["attempt"] if "attempt" in w.attempts.columns else None
    if not configured and (attempt is None or not np.isfinite(attempt.to_numpy(dtype=np.float64)).any()):
        return None
    requests = w.total
    attempts = len(w.measured_attempts)
    # Attempts per request of the window: its rows among the window's attempts.
    counts = np.bincount(w.request_of[w.attempts_in_window], minlength=len(w.requests))[w.in_window]
    retried = counts > 1
    ok = w.ok_mask
    failed_attempts = int((~w.attempt_ok_mask).sum())
    counted = (requests, w.ok, attempts, int(retried.sum()), int((retried & ok).sum()), failed_attempts)
    return retries_of(configured, *counted, _by_reason(w))


def retries_of(
    configured: Any,
    requests: int,
    ok: int,
    attempts: int,
    retried: int,
    recovered: int,
    failed_attempts: int,
    by_reason: list[dict[str, Any]],
) -> dict[str, Any]:
    """``retries`` from the window's counts (either analyzer counts them): its requests and
    successes, their attempts, the requests retried and those of them that succeeded, the failed
    attempts; ``by_reason``: `reasons_ranked`."""
    return {
        "requests": requests,
        "attempts": attempts,
        "retries": attempts - requests,
        "amplification": round(attempts / requests, 6) if requests else None,
        "retried_requests": retried,
        "recovered": recovered,
        "exhausted": retried - recovered,
        "attempt_error_rate": stats.fraction(failed_attempts, attempts),
        "error_rate": stats.fraction(requests - ok, requests),
        "by_reason": by_reason,
        "settings": configured or None,
    }


def _by_reason(w: Window) -> list[dict[str, Any]]:
    """The failed attempts that were retried (not their request's last), by kind of failure."""
    measured = w.measured_attempts
    retried = ~w.attempt_ok_mask & ~w.final[w.attempts_in_window]
    if not retried.any():
        return []
    failed = measured.loc[retried, ["status", "error"]]
    # Count each distinct (status, error) first, then name each once: few, even when failures are many.
    distinct = failed.groupby(["status", "error"], sort=False, observed=True, dropna=False).size()
    return reasons_ranked(
        (status, "" if pd.isna(error) else str(error), int(count))
        for (status, error), count in distinct[distinct > 0].items()
    )


def reasons_ranked(distinct: Iterable[tuple[Any, str, int]]) -> list[dict[str, Any]]:
    """``retries.by_reason`` from the retried failed attempts counted per distinct (status, error):
    each kind of failure (`loadbench.analyze.stats.error_kind`) with its count, most first."""
    counts: dict[str, int] = {}
    for status, error, count in distinct:
        kind = stats.error_kind(int(status), error)
        counts[kind] = counts.get(kind, 0) + count
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [{"kind": kind, "count": count} for kind, count in ranked]
