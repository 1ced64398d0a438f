"""LLM metrics of a run's measured window: TTFT, ITL, TPOT, end-to-end, tokens, goodput and the
real-time ratio of streams. Pure: request frames in, summary keys out; no I/O, no Locust.

Consumes the measured window's rows of ``requests.csv`` (`loadbench.record.records.read_requests`,
the analyzer's latency: from the due time in an open loop) with the model-specific columns
``ttft_ms``, ``input_tokens``, ``output_tokens``, ``tokens_source``, ``itl_ms``; produces the
``summary.json`` keys ``ttft_ms``, ``itl_ms``, ``tpot_ms``, ``e2e_ms``, ``tokens``,
``goodput_rps``, ``goodput`` and ``llm_realtime`` (`llm_summary`). Every definition is in
docs/metrics.md, "LLM metrics". In short, over the window's **successful** requests:

- TTFT: the recorded ``ttft_ms`` (from the actual send to the first content token);
- ITL: every recorded inter-token gap, pooled over all streamed requests;
- TPOT, per request with at least 2 output tokens: ``(service time − TTFT) / (output − 1)``;
- E2E: ``latency_ms`` of the LLM requests (rows with a TTFT or an output token count);
- goodput: requests per second that succeeded, were not empty (an LLM request with 0 output
  tokens) and met every per-request SLO (DistServe);
- real-time: a stream is *ahead* of a reader at R tokens/s starting at its first token when
  chunk k (0-based) arrives no later than ``TTFT + k / R``.

Everything is vectorized over the rows; the ITL strings of the successful streamed requests
are parsed once, as one joined string (a run without LLM data never touches them).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np
import numpy.typing as npt
import pandas as pd

from loadbench.analyze import stats
from loadbench.analyze.slo import Slo
from loadbench.analyze.stats import LatencySummary

# Slack of the real-time test's "no later than", in µs: the gaps are summed exactly as integer
# µs (their recorded resolution), but the reader's time k * 1e6 / R is a float (R = 3: 333333.33…).
REALTIME_TOLERANCE_US = 1e-6

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
# A per-request SLO is an upper bound (loadbench.analyze.slo refuses > and >= for them).
_BOUND = {"<": np.less, "<=": np.less_equal}


def parse_itl(texts: pd.Series | Sequence[str]) -> tuple[FloatArray, IntArray]:
    """Split ``itl_ms`` fields into one flat array of gaps (ms) and the number of gaps of each field.

    The gaps of field i are ``gaps[starts[i] : starts[i] + counts[i]]`` with ``starts`` the
    exclusive cumulative sum of ``counts``. Empty (or missing) fields have 0 gaps; a word that
    is not a number becomes NaN (a damaged file), so the counts always line up.
    """
    if isinstance(texts, pd.Series):
        values = [str(v) for v in texts.astype(object).where(texts.notna(), "").tolist()]
    else:
        values = ["" if t is None else str(t) for t in texts]
    # Fast path for what the recorder writes (numbers joined by single spaces): numpy parses one
    # joined string, no Python object per gap. Anything else takes the word-by-word path below.
    counts = np.fromiter((v.count(" ") + 1 if v else 0 for v in values), dtype=np.int64, count=len(values))
    joined = " ".join(v for v in values if v)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy warns, and stops, at a word it cannot read
            gaps = np.fromstring(joined, dtype=np.float64, sep=" ") if joined else np.zeros(0)
        if gaps.size == int(counts.sum()):
            return gaps, counts
    except (ValueError, DeprecationWarning):
        pass
    words = [v.split() for v in values]
    counts = np.fromiter((len(w) for w in words), dtype=np.int64, count=len(words))
    flat = [x for w in words for x in w]
    try:
        gaps = np.array(flat, dtype=np.float64)
    except ValueError:
        gaps = pd.to_numeric(pd.Series(flat, dtype=object), errors="coerce").to_numpy(dtype=np.float64)
    return gaps.reshape(-1), counts


def _starts(counts: IntArray) -> IntArray:
    return np.cumsum(counts) - counts


def gaps_so_far(gaps_ms: FloatArray, counts: IntArray) -> FloatArray:
    """For each gap: the sum of its request's gaps up to and including it (ms after the first token)."""
    if gaps_ms.size == 0:
        return np.zeros(0)
    starts = _starts(counts)
    before = np.concatenate([[0.0], np.cumsum(gaps_ms)])
    segment = np.repeat(np.arange(counts.size), counts)
    return np.asarray(before[1:] - before[starts][segment], dtype=np.float64)


def max_gap(gaps_ms: FloatArray, counts: IntArray) -> FloatArray:
    """Each request's largest gap (NaN for a request without gaps, or with a damaged one)."""
    out = np.full(counts.size, np.nan)
    has = counts > 0
    if not has.any():
        return out
    starts = _starts(counts)[has]
    out[has] = np.maximum.reduceat(gaps_ms, starts)  # NaN propagates: a damaged gap spoils its request
    return out


def _damaged(gaps_ms: FloatArray, counts: IntArray) -> BoolArray:
    """Requests holding a gap that is not a finite number >= 0."""
    bad = np.zeros(counts.size, dtype=bool)
    has = counts > 0
    if has.any():
        invalid = ~(np.isfinite(gaps_ms) & (gaps_ms >= 0))
        bad[has] = np.logical_or.reduceat(invalid, _starts(counts)[has])
    return bad


def kept_ahead(gaps_ms: FloatArray, counts: IntArray, tokens_per_s: float) -> BoolArray:
    """For each stream: did every chunk k (0-based) arrive by ``TTFT + k / tokens_per_s``?

    Chunk k arrives at ``TTFT + gap_1 + ... + gap_k``, so the test is ``sum of the first k
    gaps <= k / R`` for every k >= 1 (k = 0 holds by definition): a reader who starts at the
    first token and reads R tokens per second never waits. A stream with no gap (one chunk)
    is ahead. Gaps are summed as integer µs (their recorded resolution), so exact boundary
    cases (100 ms gaps at R = 10) count as ahead. A request with a damaged gap is not ahead.
    """
    if not tokens_per_s > 0:
        raise ValueError(f"the real-time pace must be above 0 tokens/s, not {tokens_per_s}")
    ahead = np.ones(counts.size, dtype=bool)
    has = counts > 0
    if not has.any():
        return ahead
    damaged = _damaged(gaps_ms, counts)
    us = np.rint(np.where(np.isfinite(gaps_ms), gaps_ms, 0.0) * 1000.0).astype(np.int64)
    starts = _starts(counts)
    before = np.concatenate([[0], np.cumsum(us)])  # µs of all gaps before each position
    segment = np.repeat(np.arange(counts.size), counts)
    within_us = before[1:] - before[starts][segment]  # sum of this request's gaps up to here
    k = np.arange(us.size, dtype=np.int64) - starts[segment] + 1
    slack_us = within_us - k * (1e6 / tokens_per_s)
    ahead[has] = np.maximum.reduceat(slack_us, starts[has]) <= REALTIME_TOLERANCE_US
    return ahead & ~damaged


def tpot_ms(service_ms: FloatArray, ttft_ms: FloatArray, output_tokens: FloatArray) -> FloatArray:
    """Per request: ``(service time − TTFT) / (output tokens − 1)``; NaN unless TTFT is known and
    there are at least 2 output tokens (the first token has no decode time of its own)."""
    valid = np.isfinite(ttft_ms) & np.isfinite(output_tokens) & (output_tokens >= 2)
    out = np.full(ttft_ms.size, np.nan)
    out[valid] = (service_ms[valid] - ttft_ms[valid]) / (output_tokens[valid] - 1.0)
    return out


class TokensSection(TypedDict):
    """``summary["tokens"]``: token counts and rates of the successful LLM requests."""

    input_total: int | None  # None: some request's prompt tokens are unknown (no usage, no --tokenizer)
    output_total: int
    requests: int
    output_per_s: float | None
    per_request_output_per_s: LatencySummary
    source: str | None  # of the output counts, as output_source (its first name, kept)
    input_source: str | None
    output_source: str | None


class RealtimeSection(TypedDict):
    """``summary["llm_realtime"]``: the share of streams that kept ahead of a reader."""

    tokens_per_s: float
    fraction_ahead: float | None
    requests: int


class GoodputSlo(TypedDict):
    expr: str
    metric: str
    op: str
    threshold_ms: float
    measured: int
    met: int
    attainment: float


class GoodputSection(TypedDict):
    """``summary["goodput"]``: requests that succeeded and met every per-request SLO."""

    rps: float | None
    requests: int
    attainment: float
    slos: list[GoodputSlo]


class LlmSection(TypedDict, total=False):
    """The LLM keys of ``summary.json``, in their order there; none for a run without LLM data."""

    ttft_ms: LatencySummary
    itl_ms: LatencySummary
    tpot_ms: LatencySummary
    e2e_ms: LatencySummary
    tokens: TokensSection
    llm_realtime: RealtimeSection
    goodput_rps: float | None
    goodput: GoodputSection


@dataclass(frozen=True)
class Streams:
    """Per-request LLM values of the window's rows (NaN: not measured); ITL of successful streams."""

    ok: BoolArray
    latency: FloatArray
    service: FloatArray
    ttft: FloatArray
    out_tokens: FloatArray
    llm: BoolArray  # rows with a TTFT or an output token count
    streamed: BoolArray  # successful rows with a TTFT
    empty: BoolArray  # successful rows that answered 0 output tokens: never goodput
    gaps: FloatArray  # of the streamed rows, `parse_itl`'s layout
    counts: IntArray
    tpot: FloatArray
    itl_max: FloatArray
    itl_damaged: BoolArray


def streams(measured: pd.DataFrame, service_ms: npt.ArrayLike) -> Streams:
    ttft = measured["ttft_ms"].to_numpy(dtype=np.float64)
    out_tokens = measured["output_tokens"].to_numpy(dtype=np.float64)
    ok = measured["ok"].to_numpy().astype(bool)
    service = np.asarray(service_ms, dtype=np.float64)
    streamed = ok & np.isfinite(ttft)
    gaps, counts = np.empty(0), np.zeros(0, dtype=np.int64)
    if streamed.any():
        gaps, counts = parse_itl(measured["itl_ms"][streamed])
    itl_max = np.full(len(measured), np.nan)
    itl_damaged = np.zeros(len(measured), dtype=bool)
    if counts.size:
        itl_max[streamed] = max_gap(gaps, counts)
        itl_damaged[streamed] = _damaged(gaps, counts)
    return Streams(
        ok=ok,
        latency=measured["latency_ms"].to_numpy(dtype=np.float64),
        service=service,
        ttft=ttft,
        out_tokens=out_tokens,
        llm=np.isfinite(ttft) | np.isfinite(out_tokens),
        streamed=streamed,
        empty=ok & np.isfinite(out_tokens) & (out_tokens == 0),
        gaps=gaps,
        counts=counts,
        tpot=tpot_ms(service, ttft, out_tokens),
        itl_max=itl_max,
        itl_damaged=itl_damaged,
    )


def llm_summary(
    measured: pd.DataFrame,
    service_ms: npt.ArrayLike,
    window_s: float,
    slos: Sequence[Slo] = (),
    realtime_tokens_per_s: float | None = None,
) -> tuple[LlmSection, list[str]]:
    """The LLM keys of ``summary.json`` and notices, for the measured window's requests.

    ``measured``: the window's rows (latency as the analyzer defines it); ``service_ms``: their
    latency from the actual send (equal to ``latency_ms`` in a closed loop); ``slos``: the
    run's SLOs (only the per-request ones are used). Empty when the window has no LLM data
    and no per-request SLO was given: a plain JSON run gets none of these keys.
    """
    per_request = [s for s in slos if s.per_request]
    llm = np.isfinite(measured["ttft_ms"].to_numpy(dtype=np.float64)) | np.isfinite(
        measured["output_tokens"].to_numpy(dtype=np.float64)
    )
    if not llm.any() and not per_request:
        return {}, []
    s = streams(measured, service_ms)
    result: LlmSection = {}
    notices: list[str] = []
    if s.llm.any():
        result, notices = _latencies(s, measured, window_s, realtime_tokens_per_s)
    goodput, goodput_notices = _goodput(s, per_request, window_s)
    result["goodput_rps"] = goodput["rps"]
    result["goodput"] = goodput
    return result, notices + goodput_notices


def _latencies(
    s: Streams, measured: pd.DataFrame, window_s: float, realtime_tokens_per_s: float | None
) -> tuple[LlmSection, list[str]]:
    """TTFT, ITL, TPOT, E2E, tokens and (asked for) the real-time share, of the successful requests."""
    valid_gaps = s.gaps[np.isfinite(s.gaps) & (s.gaps >= 0)]
    tokens, notices = _tokens(measured, s.ok & s.llm, s.service, s.ttft, s.out_tokens, window_s)
    result: LlmSection = {
        "ttft_ms": stats.latency_summary(s.ttft[s.streamed]),
        "itl_ms": stats.latency_summary(valid_gaps),
        "tpot_ms": stats.latency_summary(s.tpot[s.ok & np.isfinite(s.tpot)]),
        "e2e_ms": stats.latency_summary(s.latency[s.ok & s.llm]),
        "tokens": tokens,
    }
    if s.counts.size and s.itl_damaged.any():
        notices.append(
            f"{int(s.itl_damaged.sum()):,} request(s) hold inter-token gaps that are not numbers >= 0: "
            "those gaps are left out of ITL, and the requests miss itl SLOs and the real-time test"
        )
    if realtime_tokens_per_s is not None:
        result["llm_realtime"] = _realtime(s, float(realtime_tokens_per_s))
    return result, notices


def _realtime(s: Streams, tokens_per_s: float) -> RealtimeSection:
    ahead = kept_ahead(s.gaps, s.counts, tokens_per_s) if s.counts.size else np.zeros(0, dtype=bool)
    return {
        "tokens_per_s": tokens_per_s,
        "fraction_ahead": round(float(ahead.mean()), 6) if ahead.size else None,
        "requests": int(ahead.size),
    }


def _goodput(s: Streams, per_request: Sequence[Slo], window_s: float) -> tuple[GoodputSection, list[str]]:
    """Requests that succeeded, were not empty and met every per-request SLO, with each SLO's
    attainment (over the successful requests, empty ones included)."""
    values = {
        "request.ttft_ms": s.ttft,
        "request.tpot_ms": s.tpot,
        "request.itl_max_ms": s.itl_max,
        "request.e2e_ms": s.latency,
        "request.latency_ms": s.latency,
    }
    # Met without a value: TPOT of a stream of fewer than 2 tokens, ITL of a stream of one
    # chunk (no decode phase, no gap to miss). A value that was not measured otherwise fails.
    vacuous = {
        "request.tpot_ms": np.isfinite(s.ttft) & np.isfinite(s.out_tokens) & (s.out_tokens < 2),
        "request.itl_max_ms": s.streamed & ~np.isfinite(s.itl_max) & ~s.itl_damaged,
    }
    total = s.ok.size
    all_met = s.ok & ~s.empty
    entries: list[GoodputSlo] = []
    notices = []
    if s.empty.any():
        notices.append(
            f"{int(s.empty.sum()):,} successful request(s) answered no output token (an empty answer "
            "that did finish): not counted into goodput"
        )
    for slo in per_request:
        value = values[slo.path]
        with np.errstate(invalid="ignore"):
            met = _BOUND[slo.op](value, slo.threshold) & np.isfinite(value)
        if slo.path in vacuous:
            met |= vacuous[slo.path]
        met &= s.ok
        all_met &= met
        measured_n = s.ok & (np.isfinite(value) | vacuous.get(slo.path, False))
        entries.append(
            {
                "expr": slo.expr,
                "metric": slo.metric,
                "op": slo.op,
                "threshold_ms": slo.threshold,
                "measured": int(measured_n.sum()),
                "met": int(met.sum()),
                "attainment": stats.fraction(int(met.sum()), total),
            }
        )
        if s.ok.any() and not measured_n.any():
            notices.append(
                f"no successful request measured what the per-request SLO {slo.expr} bounds: "
                "every request misses it (goodput 0)"
            )
    good = int(all_met.sum())
    goodput: GoodputSection = {
        "rps": stats.rate(good, window_s),
        "requests": good,
        "attainment": stats.fraction(good, total),
        "slos": entries,
    }
    return goodput, notices


def _tokens(
    measured: pd.DataFrame,
    rows: BoolArray,
    service: FloatArray,
    ttft: FloatArray,
    out_tokens: FloatArray,
    window_s: float,
) -> tuple[TokensSection, list[str]]:
    """``summary["tokens"]`` over the successful LLM requests ``rows``: unknown output counts add
    nothing; one unknown input count makes the input total unknown (a part is no total)."""
    input_tokens = measured["input_tokens"].to_numpy(dtype=np.float64)
    output_total = int(np.nansum(out_tokens[rows]))
    # The pace after the first token: the first one is TTFT's, the other output_tokens - 1
    # came in the decode time (= 1 / TPOT, in tokens/s). A one-token stream has no such pace.
    decode_s = (service - ttft) / 1000.0
    rated = rows & np.isfinite(out_tokens) & (out_tokens >= 2) & np.isfinite(decode_s) & (decode_s > 0)
    output_sources = measured["tokens_source"].astype(object).to_numpy()[rows & np.isfinite(out_tokens)]
    counted = int(np.sum(output_sources == "counted"))
    unknown_input = int(np.sum(rows & ~np.isfinite(input_tokens)))
    known_input = rows & np.isfinite(input_tokens)
    input_sources = _texts(measured, "input_tokens_source")[known_input]
    # Records from before input_tokens_source: their input counts came with the usage, if any.
    from_usage = _texts(measured, "tokens_source")[known_input] == "usage"
    input_sources = np.where((input_sources == "") & from_usage, "usage", input_sources)
    notices = []
    if counted:
        notices.append(
            f"output tokens of {counted:,} request(s) were counted from stream chunks: the server sent no "
            "usage (a chunk may carry more than one token, so those counts may be low)"
        )
    if unknown_input:
        notices.append(
            f"input tokens of {unknown_input:,} request(s) are unknown: the server sent no usage; pass "
            "--tokenizer to count them (tokens.input_total is null)"
        )
    output_source = _source(output_sources, ("usage", "counted"))
    return {
        "input_total": None if unknown_input else int(np.nansum(input_tokens[rows])),
        "output_total": output_total,
        "requests": int(np.sum(rows & np.isfinite(out_tokens))),
        "output_per_s": stats.rate(output_total, window_s),
        "per_request_output_per_s": stats.latency_summary((out_tokens[rated] - 1) / decode_s[rated]),
        "source": output_source,
        "input_source": _source(input_sources, ("usage", "tokenizer")),
        "output_source": output_source,
    }, notices


def _texts(measured: pd.DataFrame, column: str) -> npt.NDArray[Any]:
    """A text column as objects; all empty when the frame has no such column (an older one)."""
    if column not in measured:
        return np.full(len(measured), "", dtype=object)
    texts: npt.NDArray[Any] = measured[column].astype(object).to_numpy()
    return texts


def _source(values: npt.NDArray[Any], names: tuple[str, str]) -> str | None:
    """Where counts came from: one of ``names`` when all did, ``mixed`` for both, None for no count."""
    found = [name for name in names if np.any(values == name)]
    return found[0] if len(found) == 1 else "mixed" if found else None
