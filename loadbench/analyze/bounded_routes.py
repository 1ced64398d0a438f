"""The keys of ``summary.json`` about where requests went and when, from a run's store:
``replicas`` and ``targets`` (`loadbench.analyze.replicas`), ``cold_start``
(`loadbench.analyze.firsts`) and ``stages`` (`loadbench.analyze.stages`), equal to what the
in-memory analyzer gives.

Memory: counts in DuckDB, one row per replica, target or stage; each grouping's latency
percentiles from one sorted pass over the window's successes (`RecordStore.values_at` with a
group), their means exact (`loadbench.analyze.means`); the cold start's first N
requests are a top-N query, their steady state's median the values the window's own latency
pass already found (when the first N requests lie outside
the window's successes, as they do after a warmup). ``replicas`` and ``targets`` count attempts
(`loadbench.analyze.bounded_retries.ATTEMPTS`: with ``--retries`` every retry its own, where its
request's window says; without, the requests).
``shared_prefix``: the first token's time of the streams sent before any first token came back
against the window's later ones (`loadbench.analyze.firsts.shared_prefix_section`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from loadbench.analyze import firsts, means, replicas, stats
from loadbench.analyze.bounded_retries import ATTEMPT_IN_WINDOW, ATTEMPTS, attempts_in_window
from loadbench.analyze.replicas import COLUMN, TARGET_COLUMN
from loadbench.analyze.scope import IN_WINDOW, OK, SOURCE, Scope
from loadbench.analyze.stages import StageSection, stage_figures, stage_summaries
from loadbench.analyze.store import FloatArray

# The record columns this module reads.
COLUMNS: frozenset[str] = frozenset({COLUMN, TARGET_COLUMN})

# A row's stage, for the stages' sorted pass: the stages as a table (one row each) joined on start.
STAGES_TABLE = "lb_stages"


def route_keys(scope: Scope) -> tuple[dict[str, Any], list[str]]:
    """``replicas``, ``targets``, ``cold_start`` (in that order, where they apply), and the
    notices of each, in the same order."""
    keys: dict[str, Any] = {}
    notices: list[str] = []
    for key, section in (
        ("replicas", _replicas(scope)),
        ("targets", _targets(scope)),
        ("cold_start", _cold_start(scope)),
        ("shared_prefix", _shared_prefix(scope)),
    ):
        if section is not None:
            keys[key] = section
            notices.extend(section["notices"])
    return keys, notices


# --- replicas and targets (`loadbench.analyze.replicas`) -----------------------------------------


def _named(column: str) -> str:
    """The condition of a record that names a ``column`` (NULL and "" name none)."""
    return f"\"{column}\" <> ''"


def _group_stats(scope: Scope, column: str, key: str, listed: Sequence[str] = ()) -> dict[str, Any]:
    """`loadbench.analyze.replicas.group_stats` of the window's attempts by ``column``."""
    store = scope.store
    counted: dict[str, tuple[int, int]] = {}
    if column in store.filled:
        rows = store.rows(
            f"""SELECT "{column}", count(*), count(*) FILTER ({OK}) FROM {ATTEMPTS}
            WHERE {ATTEMPT_IN_WINDOW} AND {_named(column)} GROUP BY ALL""",
            [scope.lo],
        )
        counted = {str(name): (int(n), int(n_ok)) for name, n, n_ok in rows}
    attributed = sum(n for n, _ in counted.values())
    order = replicas.group_order(counted, listed)
    latencies = _group_latencies(scope, column, order, [counted.get(name, (0, 0))[1] for name in order])
    rows_out = [
        replicas.group_row(key, name, *counted.get(name, (0, 0)), latency, scope.window_s, attributed)
        for name, latency in zip(order, latencies, strict=True)
    ]
    return replicas.grouping(rows_out, attempts_in_window(scope) - attributed)


def _group_latencies(
    scope: Scope, column: str, order: list[str], oks: list[int]
) -> list[stats.LatencySummary]:
    """Each group's successes' latency summary (groups in ``order``, ``oks`` successes each): one
    sorted pass for all (mean left out: the sections do not show it)."""
    if not any(oks):
        return [stats.latency_summary([]) for _ in order]
    store = scope.store
    # "" closes the list so that no text the window's rows hold is outside the type.
    group = store.ordinal(column, [*order, ""])
    where = f"{ATTEMPT_IN_WINDOW} AND {OK} AND {_named(column)}"
    offsets = np.concatenate([[0], np.cumsum(oks)[:-1]]).astype(np.int64)

    def value_at(positions: npt.ArrayLike) -> FloatArray:
        return store.values_at(positions, "latency_ms", where, [scope.lo], group=group, source=ATTEMPTS)

    value_at(np.concatenate([stats.summary_positions(n) + o for n, o in zip(oks, offsets, strict=True) if n]))
    return [
        stats.summary_from_ranks(n, lambda p, o=int(o): value_at(np.asarray(p) + o), 0)
        for n, o in zip(oks, offsets.tolist(), strict=True)
    ]


def _replicas(scope: Scope) -> dict[str, Any] | None:
    """`loadbench.analyze.replicas.replicas_section`."""
    return replicas.replicas_of(scope.span.settings, _group_stats(scope, COLUMN, "replica"))


def _targets(scope: Scope) -> dict[str, Any] | None:
    """`loadbench.analyze.replicas.targets_section`."""
    settings = scope.span.settings
    listed = [str(t) for t in settings.get("targets") or [] if isinstance(t, str) and t]
    if len(listed) < 2 and not _any_named(scope, TARGET_COLUMN):
        return None
    grouped = _group_stats(scope, TARGET_COLUMN, "url", listed)
    # Some attempt of the window named a target when not all of them were unattributed.
    named = grouped["unattributed"] < attempts_in_window(scope)
    return replicas.targets_of(settings, listed, grouped, named)


def _any_named(scope: Scope, column: str) -> bool:
    """Whether any attempt of the run (the warmup's included) names a ``column``."""
    if column not in scope.store.filled:
        return False
    return bool(scope.store.rows(f"SELECT 1 FROM written WHERE {_named(column)} LIMIT 1"))


# --- cold start (`loadbench.analyze.firsts`) -------------------------------------------------


def _cold_start(scope: Scope) -> dict[str, Any] | None:
    """`loadbench.analyze.firsts.cold_start_section`: the run's first N requests by send time
    (ties in the file's order, as a stable sort of the records keeps them)."""
    settings = scope.span.settings
    count = int(settings.get("cold_start") or 0)
    if count <= 0:
        return None
    first = scope.store.rows(
        f"""SELECT latency_ms, {OK}, {IN_WINDOW}, sent_unix_s, file_row_number FROM {SOURCE}
        ORDER BY sent_unix_s, file_row_number LIMIT ?""",
        [scope.lo, count],
    )
    latency = np.array([row[0] for row in first], dtype=np.float64)
    ok = np.array([bool(row[1]) for row in first], dtype=bool)
    return firsts.cold_start_of(settings, latency, ok, _steady_median(scope, first))


def _shared_prefix(scope: Scope) -> dict[str, Any] | None:
    """`loadbench.analyze.firsts.shared_prefix_section`: TTFT of the successful streams sent before
    the run's first token arrived (every record: the warmup's too) against the window's later ones."""
    workload = scope.span.settings.get("workload") or {}
    tokens = int(workload.get("shared_prefix_tokens") or 0)
    if tokens <= 0 or "ttft_ms" not in scope.store.filled:
        return None
    streamed = f"{OK} AND isfinite(ttft_ms)"
    ((first_token_at,),) = scope.store.rows(
        f"SELECT min(sent_unix_s + ttft_ms / 1000.0) FROM {SOURCE} WHERE {streamed}"
    )
    if first_token_at is None:
        return None
    groups = {
        "first": (f"{streamed} AND sent_unix_s < ?", [float(first_token_at)]),
        "later": (f"{streamed} AND sent_unix_s >= ? AND {IN_WINDOW}", [float(first_token_at), scope.lo]),
    }
    spreads = []
    for where, params in groups.values():
        ((n,),) = scope.store.rows(f"SELECT count(*) FROM {SOURCE} WHERE {where}", params)
        figures = stats.summary_from_ranks(
            int(n),
            lambda p, where=where, params=params: scope.store.values_at(
                p, "ttft_ms", where, params, source=SOURCE
            ),
            0,  # a spread shows no mean
        )
        spreads.append((int(n), {k: figures[k] for k in ("p50", "p99", "max")}))
    return firsts.shared_prefix_of(scope.span.settings, tokens, spreads[0], spreads[1])


def _steady_median(scope: Scope, first: list[tuple[Any, ...]]) -> float | None:
    """``np.median`` of the window's successes other than the ``first`` requests' (rows of
    latency, ok, in window, send time, file row), rounded to the µs."""
    taken = sum(1 for _, ok, measured, _, _ in first if ok and measured)
    n = scope.ok - taken
    if n <= 0:
        return None
    where, params = scope.successes()
    if taken:
        # After the first requests in (send time, file row) order: the rest of the window's.
        _, _, _, sent, row = first[-1]
        where += " AND (sent_unix_s > ? OR (sent_unix_s = ? AND file_row_number > ?))"
        params = [*params, float(sent), float(sent), int(row)]
    # When none of the first requests is among the window's successes, these are the positions of
    # the window's p50, which its latency pass already found: no second sort.
    positions = [(n - 1) // 2] if n % 2 else [n // 2 - 1, n // 2]
    values = scope.store.values_at(positions, "latency_ms", where, params, source=SOURCE)
    # np.median's arithmetic: the middle value, or the mean of the middle two.
    median = values[0] if n % 2 else (values[0] + values[1]) / 2.0
    return round(float(median), 3)


# --- stages (`loadbench.analyze.stages`) ---------------------------------------------------------


def stage_keys(scope: Scope) -> dict[str, Any]:
    """``stages`` for a run with a load shape."""
    span = scope.span
    stages = span.settings.get("stages")
    if not stages:
        return {}
    # Without records: checks every stage as the in-memory path does (the same RunDirError) and
    # gives each stage's figures that need none.
    planned = stage_summaries([], [], [], span.started, stages, span.start, window_end_unix_s=span.ended)
    bounds = [(span.started + float(s["start_s"]), span.started + float(s["end_s"])) for s in stages]
    store = scope.store
    store.rows(f"CREATE OR REPLACE TEMP TABLE {STAGES_TABLE} (stage INTEGER, lo DOUBLE, hi DOUBLE)")
    store.rows(
        f"INSERT INTO {STAGES_TABLE} VALUES " + ", ".join(["(?, ?, ?)"] * len(bounds)),
        [x for i, (lo, hi) in enumerate(bounds) for x in (i, lo, hi)],
    )
    # A request counts in every stage whose span holds its start (stages never overlap, but
    # the join does not need them not to).
    staged = f"""(SELECT r.start_unix_s, r.latency_ms, r.ok, s.stage FROM {SOURCE} AS r
        JOIN {STAGES_TABLE} AS s ON r.start_unix_s >= s.lo AND r.start_unix_s < s.hi)"""
    counted = {
        int(stage): (int(n), int(n_ok), int(total))
        for stage, n, n_ok, total in store.rows(
            f"""SELECT stage, count(*), count(*) FILTER ({OK}), {means.exact_sum_sql("latency_ms", OK)}
            FROM {staged} WHERE {IN_WINDOW} GROUP BY stage""",
            [scope.lo],
        )
    }
    figures = [counted.get(i, (0, 0, 0)) for i in range(len(bounds))]
    oks = [n_ok for _, n_ok, _ in figures]
    offsets = np.concatenate([[0], np.cumsum(oks)[:-1]]).astype(np.int64)
    where = f"{IN_WINDOW} AND {OK}"

    def value_at(positions: npt.ArrayLike) -> FloatArray:
        return store.values_at(positions, "latency_ms", where, [scope.lo], group="stage", source=staged)

    wanted = [stats.summary_positions(n) + o for n, o in zip(oks, offsets, strict=True) if n]
    if wanted:
        value_at(np.concatenate(wanted))
    out: list[StageSection] = []
    for section, (lo, hi), (total, good, latency_sum), offset in zip(
        planned, bounds, figures, offsets.tolist(), strict=True
    ):
        # `loadbench.analyze.stages.stage_summaries`' measured part, unrounded: the rates divide by it.
        measured_s = max(min(hi, span.ended) - max(lo, span.start), 0.0)
        latency = stats.summary_from_ranks(good, lambda p, o=offset: value_at(np.asarray(p) + o), latency_sum)
        # The planned row's keys keep their order; the counted ones replace its empty figures.
        out.append({**section, **stage_figures(total, good, latency, measured_s)})  # type: ignore[typeddict-item]
    return {"stages": out}
