"""The LLM keys of ``summary.json`` (`loadbench.analyze.llm_metrics`) from a run's store: TTFT,
ITL, TPOT, end-to-end, tokens, goodput and the real-time share, without the records in memory.

One scan of the window's rows counts and sums everything (`_totals`); each distribution is one
sorted pass (`loadbench.analyze.store.RecordStore.values_at`). A streamed request's ``itl_ms``
text becomes a DuckDB list of doubles (`GAPS`: a word that is not a number is NaN, as
`loadbench.analyze.llm_metrics.parse_itl` makes it), so its largest gap, its damage and whether
it kept ahead of a reader are list functions of its own row; the pooled ITL percentiles sort the
unnested lists. Every expression is written in the order of the numpy code it stands for, so the
same IEEE operations give the same doubles.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from loadbench.analyze import llm_metrics, means, stats
from loadbench.analyze.llm_metrics import (
    REALTIME_TOLERANCE_US,
    GoodputSection,
    GoodputSlo,
    LlmSection,
    RealtimeSection,
    TokensSection,
)
from loadbench.analyze.scope import IN_WINDOW, OK, SOURCE, Scope
from loadbench.analyze.slo import Slo
from loadbench.analyze.stats import LatencySummary

# The record columns this module covers.
COLUMNS: frozenset[str] = frozenset(
    {"ttft_ms", "input_tokens", "output_tokens", "tokens_source", "itl_ms", "input_tokens_source"}
)


def _finite(expr: str) -> str:
    """numpy's ``isfinite``: false for a missing value too (SQL's NULL would stay NULL)."""
    return f"coalesce(isfinite({expr}), false)"


TTFT = _finite("ttft_ms")
OUTPUT = _finite("output_tokens")
INPUT = _finite("input_tokens")
STREAMED = f"{OK} AND {TTFT}"  # `llm_metrics.Streams.streamed`
LLM = f"({TTFT} OR {OUTPUT})"  # rows with a TTFT or an output token count
DECODED = f"{OUTPUT} AND output_tokens >= 2"
TPOT = "(service_ms - ttft_ms) / (output_tokens - 1.0)"  # `llm_metrics.tpot_ms`
TPOT_ROWS = f"{TTFT} AND {DECODED}"
DECODE_S = "((service_ms - ttft_ms) / 1000.0)"
OUTPUT_RATE = f"(output_tokens - 1) / {DECODE_S}"  # `llm_metrics._tokens`' per-request pace
RATED = f"{OK} AND {LLM} AND {DECODED} AND {_finite(DECODE_S)} AND {DECODE_S} > 0"
EMPTY = f"{OK} AND {OUTPUT} AND output_tokens = 0"  # a finished answer of no token
COUNTED_OUTPUT = f"{OK} AND {LLM} AND {OUTPUT}"  # the rows whose output counts `tokens` adds up
KNOWN_INPUT = f"{OK} AND {LLM} AND {INPUT}"
# Records from before input_tokens_source: their input counts came with the usage, if any. A
# missing text (NULL) equals nothing, as numpy's NaN object does.
INPUT_FROM_USAGE = "(input_tokens_source = 'usage' OR (input_tokens_source = '' AND tokens_source = 'usage'))"
# A request's gaps (ms) in their order: its words (what ``str.split`` finds between single
# spaces), a word that is not a number as NaN (so it spoils the request's largest gap, as numpy's
# maximum does).
GAPS = (
    "list_transform(list_filter(string_split(coalesce(itl_ms, ''), ' '), lambda w: w <> ''), "
    "lambda w: coalesce(TRY_CAST(w AS DOUBLE), 'nan'::DOUBLE))"
)
VALID_GAP = "isfinite({0}) AND {0} >= 0"
# `llm_metrics.kept_ahead` along a request's gaps (all finite, >= 0): their running sum in integer
# µs (numpy's rint is round half to even) against k reader steps (k: the gap's 1-based index). The
# sum cannot go below 0, so -1 marks a stream that fell behind (a fold over one integer: one over
# a struct of the sum and a flag takes twice as long).
_US = "TRY_CAST(round_even(x * 1000.0, 0) AS BIGINT)"
BEHIND = (
    f"list_reduce(gaps, lambda acc, x, k: CASE WHEN acc < 0 THEN acc "
    f"WHEN CAST(acc + {_US} AS DOUBLE) - CAST(k AS DOUBLE) * ? > ? THEN -1 ELSE acc + {_US} END, 0::BIGINT) < 0"
)
# The window's pooled valid gaps, each distinct value with its count (gaps are µs multiples: a few
# hundred thousand distinct values where there are tens of millions of gaps), for
# `RecordStore.counted_values_at`. Its parameter: the window's bound.
GAP_COUNTS = f"""SELECT gap AS v, count(*) AS n FROM (
    SELECT unnest({GAPS}) AS gap FROM {SOURCE} WHERE {IN_WINDOW} AND {STREAMED})
WHERE {VALID_GAP.format("gap")} GROUP BY gap"""
# A per-request SLO's quantity (`llm_metrics._goodput`), and where it is met without a value:
# TPOT of a stream of fewer than 2 tokens, ITL of a stream of one chunk.
VALUES = {
    "request.ttft_ms": "ttft_ms",
    "request.tpot_ms": f"(CASE WHEN {TPOT_ROWS} THEN {TPOT} END)",
    "request.itl_max_ms": "itl_max",
    "request.e2e_ms": "latency_ms",
    "request.latency_ms": "latency_ms",
}
VACUOUS = {
    "request.tpot_ms": f"({TTFT} AND {OUTPUT} AND output_tokens < 2)",
    "request.itl_max_ms": f"({STREAMED} AND NOT {_finite('itl_max')} AND NOT damaged)",
}
_BOUNDS = ("<", "<=")  # a per-request SLO is an upper bound (loadbench.analyze.slo)


def llm_keys(
    scope: Scope, realtime_tokens_per_s: float | None
) -> tuple[LlmSection, list[str], dict[str, int]]:
    """`loadbench.analyze.llm_metrics.llm_summary` of the window, its notices, and the analyzer's
    gated values (how many values each gated percentile rests on: ``_gated_values`` of
    `loadbench.analyze.analyzer`), all from one scan."""
    per_request = [s for s in scope.slos if s.per_request]
    pace = None if realtime_tokens_per_s is None else float(realtime_tokens_per_s)
    totals = _totals(scope, per_request, pace)
    gated = {
        "service_time_ms": scope.ok,
        "ttft_ms": int(totals["streamed"]),
        "itl_ms": int(totals["streamed"]),
        "tpot_ms": int(totals["tpot_rows"]),
        "e2e_ms": int(totals["e2e_n"]),
    }
    if not totals["llm"] and not per_request:
        return {}, [], gated
    if pace is not None and totals["streamed"]:
        # The in-memory path refuses a pace of 0 or less only when there is a stream to test.
        llm_metrics.kept_ahead(np.zeros(0), np.zeros(0, dtype=np.int64), pace)
    result: LlmSection = {}
    notices: list[str] = []
    if totals["llm"]:
        result, notices = _latencies(scope, totals, pace)
    goodput, goodput_notices = _goodput(scope, totals, per_request)
    result["goodput_rps"] = goodput["rps"]
    result["goodput"] = goodput
    return result, notices + goodput_notices, gated


def _totals(scope: Scope, per_request: Sequence[Slo], pace: float | None) -> dict[str, Any]:
    """Every count and sum of the section, in one scan of the window's rows."""
    aggregates = {
        "llm": f"count(*) FILTER ({LLM})",
        "streamed": f"count(*) FILTER ({STREAMED})",
        "ttft_sum": means.exact_sum_sql("ttft_ms", STREAMED),
        "itl_n": "coalesce(sum(len(valid)), 0)",
        # each request's gaps in `means.exact_sum`'s units, then those sums summed
        "itl_sum": "coalesce(sum(list_sum(list_transform(valid, "
        "lambda g: TRY_CAST(round_even(g * 1000000.0, 0) AS BIGINT)))), 0)",
        "damaged": "count(*) FILTER (damaged)",
        "tpot_rows": f"count(*) FILTER ({STREAMED} AND {DECODED})",
        "tpot_n": f"count(*) FILTER ({OK} AND {TPOT_ROWS} AND isfinite({TPOT}))",
        "tpot_sum": means.exact_sum_sql(TPOT, f"{OK} AND {TPOT_ROWS} AND isfinite({TPOT})"),
        "e2e_n": f"count(*) FILTER ({OK} AND {LLM})",
        "e2e_sum": means.exact_sum_sql("latency_ms", f"{OK} AND {LLM}"),
        "output_total": f"coalesce(sum(output_tokens) FILTER ({COUNTED_OUTPUT}), 0)",
        "token_requests": f"count(*) FILTER ({COUNTED_OUTPUT})",
        "rated_n": f"count(*) FILTER ({RATED})",
        "rated_sum": means.exact_sum_sql(OUTPUT_RATE, RATED),
        "counted": f"count(*) FILTER ({COUNTED_OUTPUT} AND tokens_source = 'counted')",
        "usage": f"count(*) FILTER ({COUNTED_OUTPUT} AND tokens_source = 'usage')",
        "unknown_input": f"count(*) FILTER ({OK} AND {LLM} AND NOT {INPUT})",
        "input_total": f"coalesce(sum(input_tokens) FILTER ({KNOWN_INPUT}), 0)",
        "input_usage": f"count(*) FILTER ({KNOWN_INPUT} AND {INPUT_FROM_USAGE})",
        "input_tokenizer": f"count(*) FILTER ({KNOWN_INPUT} AND input_tokens_source = 'tokenizer')",
        "empty": f"count(*) FILTER ({EMPTY})",
    }
    params: list[Any] = []
    mets = []
    for i, slo in enumerate(per_request):
        if slo.op not in _BOUNDS:
            raise ValueError(f"a per-request SLO is an upper bound (< or <=), not {slo.expr!r}")
        value = VALUES[slo.path]
        vacuous = VACUOUS.get(slo.path, "false")
        met = f"{OK} AND (({_finite(value)} AND {value} {slo.op} ?) OR {vacuous})"
        aggregates[f"met_{i}"] = f"count(*) FILTER ({met})"
        aggregates[f"measured_{i}"] = f"count(*) FILTER ({OK} AND ({_finite(value)} OR {vacuous}))"
        params.append(slo.threshold)
        mets.append(met)
    aggregates["good"] = f"count(*) FILTER ({' AND '.join([OK, f'NOT ({EMPTY})', *mets])})"
    params += [slo.threshold for slo in per_request]
    behind = "NULL::BOOLEAN"
    if pace is not None and pace > 0:
        aggregates["ahead"] = f"count(*) FILTER ({STREAMED} AND NOT damaged AND NOT coalesce(behind, true))"
        behind = f"CASE WHEN {STREAMED} AND NOT damaged THEN {BEHIND} END"
        params += [1e6 / pace, REALTIME_TOLERANCE_US]
    columns = ", ".join(f"{expr} AS {name}" for name, expr in aggregates.items())
    (row,) = scope.store.rows(
        f"""SELECT {columns} FROM (
            SELECT *, {behind} AS behind FROM (
                SELECT *, list_max(gaps) AS itl_max, coalesce(len(valid) < len(gaps), false) AS damaged
                FROM (
                    SELECT *, list_filter(gaps, lambda g: {VALID_GAP.format("g")}) AS valid FROM (
                        SELECT *, CASE WHEN {STREAMED} THEN {GAPS} END AS gaps
                        FROM {SOURCE} WHERE {IN_WINDOW}))))""",
        [*params, scope.lo],
    )
    return dict(zip(aggregates, row, strict=True))


def _summary(scope: Scope, n: int, total: int, value: str, where: str) -> LatencySummary:
    """`stats.latency_summary` of ``value`` over the window's successes matching ``where``."""
    successes, params = scope.successes()
    return _ranked(
        n, total, lambda p: scope.store.values_at(p, value, f"{successes} AND {where}", params, source=SOURCE)
    )


def _ranked(n: int, total: int, value_at: Callable[[npt.ArrayLike], Any]) -> LatencySummary:
    return stats.summary_from_ranks(n, value_at, int(total))


def _latencies(scope: Scope, t: dict[str, Any], pace: float | None) -> tuple[LlmSection, list[str]]:
    """TTFT, ITL, TPOT, E2E, tokens and (asked for) the real-time share, of the successful requests."""
    tokens, notices = _tokens(scope, t)
    store = scope.store
    if t["e2e_n"] == scope.ok:
        # Every success is an LLM request: the latency summary's own sorted pass (the store kept it).
        successes, params = scope.successes()
        e2e = _ranked(
            scope.ok,
            t["e2e_sum"],
            lambda p: store.values_at(p, "latency_ms", successes, params, source=SOURCE),
        )
    else:
        e2e = _summary(scope, t["e2e_n"], t["e2e_sum"], "latency_ms", LLM)
    result: LlmSection = {
        "ttft_ms": _summary(scope, t["streamed"], t["ttft_sum"], "ttft_ms", TTFT),
        "itl_ms": _ranked(int(t["itl_n"]), t["itl_sum"], lambda p: _gaps_at(scope, p)),
        "tpot_ms": _summary(scope, t["tpot_n"], t["tpot_sum"], TPOT, f"{TPOT_ROWS} AND isfinite({TPOT})"),
        "e2e_ms": e2e,
        "tokens": tokens,
    }
    if t["damaged"]:
        notices.append(
            f"{t['damaged']:,} request(s) hold inter-token gaps that are not numbers >= 0: "
            "those gaps are left out of ITL, and the requests miss itl SLOs and the real-time test"
        )
    if pace is not None:
        requests = int(t["streamed"])
        realtime: RealtimeSection = {
            "tokens_per_s": pace,
            "fraction_ahead": round(t["ahead"] / requests, 6) if requests else None,
            "requests": requests,
        }
        result["llm_realtime"] = realtime
    return result, notices


def _gaps_at(scope: Scope, positions: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The pooled valid gaps at ``positions`` of their sorted order (`GAP_COUNTS`)."""
    return scope.store.counted_values_at(GAP_COUNTS, [scope.lo], positions)


def _tokens(scope: Scope, t: dict[str, Any]) -> tuple[TokensSection, list[str]]:
    """``summary["tokens"]`` (`llm_metrics._tokens`): unknown output counts add nothing; one
    unknown input count makes the input total unknown."""
    notices = []
    if t["counted"]:
        notices.append(
            f"output tokens of {t['counted']:,} request(s) were counted from stream chunks: the server sent no "
            "usage (a chunk may carry more than one token, so those counts may be low)"
        )
    if t["unknown_input"]:
        notices.append(
            f"input tokens of {t['unknown_input']:,} request(s) are unknown: the server sent no usage; pass "
            "--tokenizer to count them (tokens.input_total is null)"
        )
    output_total = int(t["output_total"])
    output_source = _source(t["usage"], t["counted"], ("usage", "counted"))
    return {
        "input_total": None if t["unknown_input"] else int(t["input_total"]),
        "output_total": output_total,
        "requests": int(t["token_requests"]),
        "output_per_s": stats.rate(output_total, scope.window_s),
        "per_request_output_per_s": _summary(scope, t["rated_n"], t["rated_sum"], OUTPUT_RATE, RATED),
        "source": output_source,
        "input_source": _source(t["input_usage"], t["input_tokenizer"], ("usage", "tokenizer")),
        "output_source": output_source,
    }, notices


def _source(first: int, second: int, names: tuple[str, str]) -> str | None:
    """`llm_metrics._source` from how many counts came from each of ``names``."""
    found = [name for name, n in zip(names, (first, second), strict=True) if n]
    return found[0] if len(found) == 1 else "mixed" if found else None


def _goodput(scope: Scope, t: dict[str, Any], per_request: Sequence[Slo]) -> tuple[GoodputSection, list[str]]:
    """`llm_metrics._goodput`: requests that succeeded, were not empty and met every per-request
    SLO, with each SLO's attainment (over the window's requests)."""
    entries: list[GoodputSlo] = []
    notices = []
    if t["empty"]:
        notices.append(
            f"{t['empty']:,} successful request(s) answered no output token (an empty answer "
            "that did finish): not counted into goodput"
        )
    for i, slo in enumerate(per_request):
        met, measured = int(t[f"met_{i}"]), int(t[f"measured_{i}"])
        entries.append(
            {
                "expr": slo.expr,
                "metric": slo.metric,
                "op": slo.op,
                "threshold_ms": slo.threshold,
                "measured": measured,
                "met": met,
                "attainment": stats.fraction(met, scope.total),
            }
        )
        if scope.ok and not measured:
            notices.append(
                f"no successful request measured what the per-request SLO {slo.expr} bounds: "
                "every request misses it (goodput 0)"
            )
    good = int(t["good"])
    goodput: GoodputSection = {
        "rps": stats.rate(good, scope.window_s),
        "requests": good,
        "attainment": stats.fraction(good, scope.total),
        "slos": entries,
    }
    return goodput, notices
