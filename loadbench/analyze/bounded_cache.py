"""``summary.json`` ``cache`` from a run's store (`loadbench.analyze.cache`), equal to what the
in-memory analyzer gives, without the records in memory.

It reads the store's ``attempts`` view (`loadbench.analyze.bounded_retries.ATTEMPTS`: every
attempt reached the server's cache), in send order: by start, ties by place in the file (the
in-memory path's stable sort).

- **Hits said** (the ``cache`` column): counts in SQL, the hits' and misses' percentiles in one
  sorted pass grouped by hit (`RecordStore.values_at`).
- **Mixture** (no answer said): the EM fits the latencies at `cache.mixture_positions` of the
  window's successes in send order (all of them up to `cache.MIXTURE_SAMPLE`, else the same seeded
  sample), fetched by position (`RecordStore.pick`); every distinct latency is then assigned by
  `cache.assign_fast` itself (numpy, the same arithmetic), streamed past in order, so the hits are
  the latencies in a few ranges, counted and ranked in SQL.
- **Cold vs warm**: the first attempt of each key is a window function over the keyed successes.
- **Replay**: the keyed successes' keys streamed in send order in batches (`RecordStore.scan`)
  through the in-memory path's own `cache.LruPass` (stack distances with one slot per distinct
  key, a histogram of the counted distances), then a second pass feeding every simulated
  `cache.LfuCache` at once.

Memory: DuckDB's, plus state of one entry per distinct payload key (and at most
`cache.MIXTURE_SAMPLE` latencies); never one value per record in Python beyond a batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from loadbench.analyze import cache, stats
from loadbench.analyze.bounded_retries import ATTEMPT_IN_WINDOW, ATTEMPTS
from loadbench.analyze.scope import OK, Scope
from loadbench.analyze.store import RecordStore

# The record columns this module reads (`loadbench.analyze.bounded.unsupported`).
COLUMNS: frozenset[str] = frozenset({"payload_key", "cache"})

SEND_ORDER = "start_unix_s, file_row_number"
MEASURED = f"{OK} AND {ATTEMPT_IN_WINDOW}"
LABELS = "('hit', 'miss')"
BATCH_ROWS = 1 << 18  # keys (or distinct latencies) streamed at a time


def _text(store: RecordStore, column: str) -> str:
    """The column as the in-memory path reads it: text, missing as empty."""
    return f"coalesce(CAST({column} AS VARCHAR), '')" if column in store.filled else "''"


def _any_text(store: RecordStore, column: str) -> bool:
    if column not in store.filled:
        return False
    return bool(store.rows(f"SELECT 1 FROM written WHERE {_text(store, column)} <> '' LIMIT 1"))


def _spreads(
    store: RecordStore,
    source: str,
    where: str,
    params: list[Any],
    group: str,
    counts: tuple[int, int],
    keys: tuple[str, ...],
) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """`stats.latency_figures` of the rows of ``source`` matching ``where`` where ``group`` is
    false (``counts[0]`` of them) and where it is true (``counts[1]``): one sorted pass."""
    percents = [stats.PERCENTILES[k] for k in keys]
    points = [stats.percentile_points(n, percents) if n else None for n in counts]
    offsets = (0, counts[0])
    wanted = [np.concatenate([p[0], p[1]]) + o for p, o in zip(points, offsets, strict=True) if p is not None]
    if not wanted:
        return dict.fromkeys(keys), dict.fromkeys(keys)
    values = store.values_at(np.concatenate(wanted), "latency_ms", where, params, group=group, source=source)
    out: list[dict[str, float | None]] = []
    at = 0
    for found in points:
        if found is None:
            out.append(dict.fromkeys(keys))
            continue
        lower, _, gamma = found
        part = values[at : at + 2 * lower.size]
        at += 2 * lower.size
        figures = stats.interpolate(part[: lower.size], part[lower.size :], gamma)
        out.append({k: round(float(v), 3) for k, v in zip(keys, figures, strict=True)})
    return out[0], out[1]


def _hit_figures(
    scope: Scope, where: str, params: list[Any], hit: str, hit_params: list[Any]
) -> dict[str, Any]:
    """`cache._hit_figures` of the attempts matching ``where``, ``hit`` telling the hits."""
    ((hits, misses),) = scope.store.rows(
        f"SELECT count(*) FILTER ({hit}), count(*) FILTER (NOT ({hit})) FROM {ATTEMPTS} WHERE {where}",
        [*hit_params, *hit_params, *params],
    )
    miss_ms, hit_ms = _spreads(
        scope.store,
        ATTEMPTS,
        where,
        [*hit_params, *params],
        hit,
        (int(misses), int(hits)),
        ("p50", "p90", "p99"),
    )
    total = int(hits) + int(misses)
    return {
        "hit_ratio": round(int(hits) / total, 6) if total else None,
        "hits": int(hits),
        "misses": int(misses),
        "hit_latency_ms": hit_ms,
        "miss_latency_ms": miss_ms,
        "speedup_p50": stats.ratio(miss_ms["p50"], hit_ms["p50"]),
    }


def _mixture(scope: Scope, n: int) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """`cache.mixture_of` the window's successes (``n`` of them) at the in-memory path's positions."""
    if n < cache.MIN_MIXTURE_VALUES:
        return None
    (sample,) = scope.store.pick(
        f"SELECT latency_ms FROM {ATTEMPTS} WHERE {MEASURED} ORDER BY {SEND_ORDER}",
        [scope.lo],
        cache.mixture_positions(n),
    )
    return cache.mixture_of(np.asarray(sample, dtype=np.float64))


def _fast_ranges(scope: Scope, fit: dict[str, Any]) -> tuple[str, list[float]]:
    """An SQL condition on ``latency_ms`` (and its parameters) true of exactly the latencies
    `cache.assign_fast` calls fast: each distinct latency of the window's successes assigned in
    ascending order, the runs of fast ones kept as ranges (a quadratic's sign: a few)."""

    def runs(reader: Iterator[Any]) -> list[tuple[float, float]]:
        found: list[tuple[float, float]] = []
        start: float | None = None
        last: float | None = None
        for batch in reader:
            values = batch.column(0).to_numpy(zero_copy_only=False).astype(np.float64)
            if not values.size:
                continue
            fast = cache.assign_fast(cache.log_latency(values), fit)
            # Only where the assignment changes (a few places in millions of values) goes through Python.
            flips = np.flatnonzero(np.diff(np.concatenate(([start is not None], fast)).astype(np.int8)))
            for i in flips.tolist():
                if fast[i]:
                    start = float(values[i])
                else:
                    end = float(values[i - 1]) if i else last  # a run that began in an earlier batch
                    assert start is not None and end is not None
                    found.append((start, end))
                    start = None
            last = float(values[-1])
        if start is not None:
            assert last is not None
            found.append((start, last))
        return found

    ranges = scope.store.scan(
        f"SELECT DISTINCT latency_ms FROM {ATTEMPTS} WHERE {MEASURED} ORDER BY latency_ms",
        [scope.lo],
        runs,
        BATCH_ROWS,
    )
    if not ranges:
        return "false", []
    return "(" + " OR ".join("latency_ms BETWEEN ? AND ?" for _ in ranges) + ")", [
        v for r in ranges for v in r
    ]


def _key_figures(scope: Scope, key: str) -> dict[str, Any]:
    """`cache._key_figures`: the first successful attempt of each key in send order is cold."""
    firsts = f"""(SELECT latency_ms, request_start_unix_s, {key} AS k,
        row_number() OVER (PARTITION BY {key} ORDER BY {SEND_ORDER}) = 1 AS cold
        FROM {ATTEMPTS} WHERE {OK} AND {key} <> '')"""
    where = ATTEMPT_IN_WINDOW
    ((cold, warm, distinct),) = scope.store.rows(
        f"SELECT count(*) FILTER (cold), count(*) FILTER (NOT cold), count(DISTINCT k) FROM {firsts} WHERE {where}",
        [scope.lo],
    )
    counted = int(cold) + int(warm)
    if not counted:
        return dict.fromkeys(("distinct_payloads", "repeat_share", "cold", "warm", "cold_warm_speedup_p50"))
    warm_ms, cold_ms = _spreads(
        scope.store, firsts, where, [scope.lo], "cold", (int(warm), int(cold)), ("p50", "p99")
    )
    return {
        "distinct_payloads": int(distinct),
        "repeat_share": round(float(warm) / float(counted), 6),
        "cold": {"count": int(cold), **cold_ms},
        "warm": {"count": int(warm), **warm_ms},
        "cold_warm_speedup_p50": stats.ratio(cold_ms["p50"], warm_ms["p50"]),
    }


def _replay(scope: Scope, key: str) -> dict[str, Any] | None:
    """`cache.replay_section` of the keyed successes streamed in send order, in two passes."""
    sql = f"""SELECT {key} AS k, {ATTEMPT_IN_WINDOW} AS c FROM {ATTEMPTS}
        WHERE {OK} AND {key} <> '' ORDER BY {SEND_ORDER}"""

    def batches(reader: Iterator[Any]) -> Iterator[tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]]:
        for batch in reader:
            keys = batch.column(0).to_numpy(zero_copy_only=False)
            yield keys, np.asarray(batch.column(1).to_numpy(zero_copy_only=False), dtype=bool)

    def lru_pass(reader: Iterator[Any]) -> cache.LruPass:
        lru = cache.LruPass()
        for keys, counted in batches(reader):
            lru.feed(keys, counted)
        return lru

    lru = scope.store.scan(sql, [scope.lo], lru_pass, BATCH_ROWS)
    if not int(lru.histogram.sum()):
        return None
    _, simulated = cache.lfu_plan(lru)

    def lfu_pass(reader: Iterator[Any]) -> dict[int, int]:
        caches = [cache.LfuCache(size) for size in simulated]
        for keys, counted in batches(reader):
            # The first pass's ids: the same keys in the same order.
            code_list, counted_list = lru.codes(keys).tolist(), counted.tolist()
            for lfu in caches:
                lfu.feed(code_list, counted_list)
        return {lfu.size: lfu.hits for lfu in caches}

    return cache.replay_of(lru, scope.store.scan(sql, [scope.lo], lfu_pass, BATCH_ROWS))


def cache_keys(scope: Scope) -> dict[str, Any]:
    """``cache`` for a run with payload keys, cache answers or a cache option (`cache.cache_section`)."""
    section = _section(scope)
    return {} if section is None else {"cache": section}


def _section(scope: Scope) -> dict[str, Any] | None:
    store, settings = scope.store, scope.span.settings
    header, field = settings.get("cache_header"), settings.get("cache_field")
    if not (header or field or _any_text(store, "payload_key") or _any_text(store, "cache")):
        return None
    key, said = _text(store, "payload_key"), f"lower({_text(store, 'cache')})"
    ((answered, labelled, measured, keyed),) = store.rows(
        f"""SELECT count(*) FILTER ({said} IN {LABELS}), count(*) FILTER ({MEASURED} AND {said} IN {LABELS}),
        count(*) FILTER ({MEASURED}), count(*) FILTER ({OK} AND {key} <> '') FROM {ATTEMPTS}""",
        [scope.lo, scope.lo],
    )
    notices: list[str] = []
    if (header or field) and not answered:
        where = f"the header {header}" if header else f"the field {field}"
        notices.append(f"the answers never carried {where} saying hit or miss: no hits counted from it")
    section: dict[str, Any] = {}
    mixture: dict[str, Any] | None = None
    if labelled:
        section.update(
            _hit_figures(scope, f"{MEASURED} AND {said} IN {LABELS}", [scope.lo], f"{said} = 'hit'", [])
        )
        source = "field" if field and not header else "header"
    else:
        found = _mixture(scope, int(measured))
        figures = None if found is None else found[0]
        if not (keyed or header or field):
            return None  # two latency modes alone are no sign of a cache (`cache` module docstring)
        source, mixture = "mixture", figures
        if found is None:
            notices.append("too few successful requests for a mixture estimate of the hits")
            section.update(cache.NO_HITS)
        elif found[0]["ashman_d"] < cache.MIN_SEPARATION:
            notices.append(
                f"{cache.OVERLAP} (Ashman's D {found[0]['ashman_d']:.2f} < {cache.MIN_SEPARATION:g})"
            )
            section.update(cache.NO_HITS)
        else:
            hit, hit_params = _fast_ranges(scope, found[1])
            section.update(_hit_figures(scope, MEASURED, [scope.lo], hit, hit_params))
    section["source"] = source
    if mixture is not None:
        section["mixture"] = mixture
    section.update(_key_figures(scope, key))
    replay = _replay(scope, key) if keyed else None
    if replay is not None:
        replay["measured"] = section["hit_ratio"]
    section["replay"] = replay
    section["notices"] = notices
    return section
