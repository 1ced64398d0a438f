"""The keys of ``summary.json`` that payloads and answers add, from a run's store: ``quality``
and ``rtf`` (`loadbench.analyze.quality`), the HTTP/2 phases and the server's own processing time
in ``latency_breakdown`` (`loadbench.analyze.network`, `loadbench.analyze.processing`).

The in-memory analyzer's figures, without the records in memory:

- ``quality`` from the window's distinct (expected, predicted, ok) triples and how many records
  each holds (one SQL group-by): `loadbench.analyze.quality.outcomes` says of each triple whether
  it is labeled, answered, correct, and the class counts are those outcomes weighted by the
  records; the scores are `quality.quality_summary`'s arithmetic on the same integer counts, so
  the same floats.
- ``rtf``, ``phases_ms`` and ``server_processing``: counts and compensated sums in SQL, exact
  percentiles through `RecordStore.values_at` over the same expression the numpy code evaluates
  (IEEE doubles, the same operations in the same order), one sorted pass per value.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from loadbench.analyze import means, quality, stats
from loadbench.analyze.processing import per_request_processing
from loadbench.analyze.quality import QualitySection, RtfSection
from loadbench.analyze.scope import IN_WINDOW, OK, SOURCE, Scope

# The record columns this module covers.
COLUMNS: frozenset[str] = frozenset(
    {"expected", "predicted", "media_s", "connect_ms", "ttfb_ms", "download_ms", "server_ms"}
)
DIGITS = 4  # quality's and processing's rounding (their ``_DIGITS``)


def payload_keys(scope: Scope) -> dict[str, Any]:
    """``quality`` and ``rtf``, where the window's records carry them (in that order)."""
    keys: dict[str, Any] = {}
    found = _quality(scope)
    if found is not None:
        keys["quality"] = found
    rtf = _rtf(scope)
    if rtf is not None:
        keys["rtf"] = rtf
    return keys


# --- quality ---------------------------------------------------------------------------------


def _quality(scope: Scope) -> QualitySection | None:
    """`quality.quality_summary` of the window from its distinct (expected, predicted, ok)."""
    if "expected" not in scope.store.filled:
        return None  # no labeled request: the in-memory section is None too
    predicted = "predicted" if "predicted" in scope.store.filled else "''"
    # A missing text reads as empty in the records frame (and empty is "no label" to quality).
    frame = scope.store.frame(
        f"""SELECT coalesce(expected, '') AS expected, coalesce({predicted}, '') AS predicted,
        {OK} AS ok, count(*) AS n FROM {SOURCE} WHERE {IN_WINDOW} GROUP BY ALL""",
        [scope.lo],
    )
    if frame.empty:
        return None
    return quality.quality_summary(
        frame["expected"].astype(str), frame["predicted"].astype(str), frame["ok"].to_numpy(), frame["n"]
    )


# --- real-time factor -------------------------------------------------------------------------

# quality.rtf_values: service time (from the send) in s over the media duration, for a request
# with a positive, finite duration.
CARRIED = "isfinite(media_s) AND media_s > 0"
RTF = "service_ms / 1000.0 / media_s"


def _round(value: float) -> float:
    return round(float(value), DIGITS)


def _rtf(scope: Scope) -> RtfSection | None:
    """`quality.rtf_summary` of the window."""
    if "media_s" not in scope.store.filled:
        return None
    store = scope.store
    ok_where = f"{IN_WINDOW} AND {OK} AND {CARRIED}"
    ((carried, failed, n, total, fast),) = store.rows(
        f"""SELECT count(*), count(*) FILTER (NOT ({OK})), count(*) FILTER ({OK}),
        {means.exact_sum_sql(RTF, OK)}, count(*) FILTER ({OK} AND {RTF} < 1.0)
        FROM {SOURCE} WHERE {IN_WINDOW} AND {CARRIED}""",
        [scope.lo],
    )
    if not carried:
        return None
    if not n:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "mean": None, "max": None,
                "realtime_fraction": None, "failed": int(failed)}  # fmt: skip
    lower, upper, gamma = stats.percentile_points(n, [50.0, 90.0, 99.0])
    values = store.values_at(
        np.concatenate([lower, upper, [n - 1]]), RTF, ok_where, [scope.lo], source=SOURCE
    )
    p50, p90, p99 = stats.interpolate(values[:3], values[3:6], gamma)
    return {
        "n": int(n),
        "p50": _round(p50),
        "p90": _round(p90),
        "p99": _round(p99),
        "mean": _round(means.mean_of(int(total), int(n))),
        "max": _round(values[-1]),
        "realtime_fraction": round(int(fast) / int(n), 6),
        "failed": int(failed),
    }


# --- HTTP/2 phases ----------------------------------------------------------------------------

# `network.phase_summaries`: which values of each phase count (connect: the requests that opened
# a connection; a reused one costs 0 and would hide the set-up cost).
_PHASE_VALUES = {
    "connect_ms": "isfinite(connect_ms) AND connect_ms > 0",
    "ttfb_ms": "isfinite(ttfb_ms)",
    "download_ms": "isfinite(download_ms)",
}


def phases_ms(scope: Scope) -> dict[str, Any] | None:
    """``latency_breakdown.phases_ms`` (`loadbench.analyze.network.phase_summaries`) of the
    window's successes; None (or empty) without HTTP/2 phase columns."""
    if "ttfb_ms" not in scope.store.filled:
        return None  # no ttfb in any record: the in-memory phases are empty too
    where, params = scope.successes()
    # A column no record fills holds no value to count (and an older file may lack it).
    counts = [
        f"count(*) FILTER ({cond}), {means.exact_sum_sql(p, cond)}" if p in scope.store.filled else "0, 0"
        for p, cond in _PHASE_VALUES.items()
    ]
    ((n_connect, connect_sum, n_ttfb, ttfb_sum, n_download, download_sum),) = scope.store.rows(
        f"SELECT {', '.join(counts)} FROM {SOURCE} WHERE {where}", params
    )
    if not n_ttfb:
        return None

    def summary(phase: str, n: int, total: int) -> stats.LatencySummary:
        value_where = f"{where} AND {_PHASE_VALUES[phase]}"
        return stats.summary_from_ranks(
            n,
            lambda p: scope.store.values_at(p, phase, value_where, params, source=SOURCE),
            int(total),
        )

    return {
        "connect_ms": summary("connect_ms", int(n_connect), connect_sum),
        "new_connections": int(n_connect),
        "ttfb_ms": summary("ttfb_ms", int(n_ttfb), ttfb_sum),
        "download_ms": summary("download_ms", int(n_download), download_sum),
    }


# --- the server's own processing time ---------------------------------------------------------

# `processing.per_request_processing`: the requests whose server said a usable time, and the
# figures of each (``request`` = service time - processing; the ratios where their denominator
# is positive), as numpy computes them.
KEEP = "isfinite(server_ms) AND isfinite(service_ms) AND server_ms >= 0"
_BLOCKS = {
    "processing_ms": ("server_ms", "TRUE"),
    "request_ms": ("(service_ms - server_ms)", "TRUE"),
    "realtime_ratio": ("server_ms / (service_ms - server_ms)", "service_ms - server_ms > 0"),
    "processing_share": ("server_ms / service_ms", "service_ms > 0"),
}


def server_processing(scope: Scope) -> dict[str, Any] | None:
    """`loadbench.analyze.processing.processing_section` of a run whose records hold ``server_ms``;
    None without it, or when no request has a usable one: the analyzer then reads the server's
    counters (`loadbench.analyze.bounded`), as `processing_section` falls back to them."""
    if "server_ms" not in scope.store.filled:
        return None
    ok_where, params = scope.successes()
    keep = f"{ok_where} AND {KEEP}"
    # Each block's values: those of its expression that are finite (`_stat_block` drops the rest).
    wheres = {key: f"{keep} AND {cond} AND isfinite({value})" for key, (value, cond) in _BLOCKS.items()}
    columns = ", ".join(
        f"count(*) FILTER ({cond} AND isfinite({value})), "
        f"{means.exact_sum_sql(value, f'{cond} AND isfinite({value})')}"
        for value, cond in _BLOCKS.values()
    )
    (row,) = scope.store.rows(f"SELECT count(*), {columns} FROM {SOURCE} WHERE {keep}", params)
    kept = int(row[0])
    if not kept:
        return None
    settings = scope.span.settings
    # `processing.processing_section`'s choice of source.
    source = (
        "field" if settings.get("server_time_field") and not settings.get("server_time_header") else "header"
    )
    # The keys, their order and the method's text from the in-memory function itself, on one
    # request; every figure is then replaced by the window's.
    found = per_request_processing(np.array([1.0]), np.array([0.0]), source)
    assert found is not None
    found["processing_n"] = kept
    for i, (key, (value, _)) in enumerate(_BLOCKS.items()):
        n, total = int(row[1 + 2 * i]), int(row[2 + 2 * i])
        found[key] = _stat_block(scope, value, wheres[key], params, n, total)
    return found


def _stat_block(
    scope: Scope, value: str, where: str, params: list[Any], n: int, total: int
) -> dict[str, float | None]:
    """processing's block of the ``n`` finite values: p50, p90, p99 (numpy's) and mean."""
    if n == 0:
        return {"p50": None, "p90": None, "p99": None, "mean": None}
    p50, p90, p99 = scope.store.percentiles(n, [50, 90, 99], value, where, params, source=SOURCE)
    return {
        k: _round(v) for k, v in (("p50", p50), ("p90", p90), ("p99", p99), ("mean", means.mean_of(total, n)))
    }
