"""Can the numbers be trusted? Pure functions the analyzer uses (definitions: docs/metrics.md).

- `percentile_ci`: a distribution-free confidence interval for a percentile (order statistics).
- `thin_percentiles`: percentiles that rest on too few requests beyond them.
- `steady_start`: where latency settled (MSER-5 truncation over the measured window).
- `schedule_summary`: how well an open-loop run kept its schedule (lateness, achieved rate).
- `validity`: VALID or INVALID, with the reasons.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict

import numpy as np
import numpy.typing as npt

from loadbench.analyze import means, stats
from loadbench.analyze.resources import host_saturated, shared_host
from loadbench.record.records import TIME_RESOLUTION_S
from loadbench.values import is_inprocess_url

_Z = 1.959964  # two-sided 95 % normal quantile
# A percentile needs this many requests beyond it (n * (1 - q)) to be more than a rough guess.
MIN_TAIL_REQUESTS = 10
LATE_MS = 10.0  # an open-loop request sent later than this after its due time is "late"
MAX_LATENESS_P99_MS = 10.0
MIN_SEND_FRACTION = 0.95  # of the due requests that must have been sent
MIN_WINDOW_S = 1.0
MAX_BINS = 100
MIN_STEADY_BIN_S = 0.25
MATERIAL = 0.2  # a settling phase worth a notice: its mean latency differs by more than this
DRIFT = 0.25  # halves of the window whose mean latencies differ by more than this: drifting


class SteadySection(TypedDict):
    """``summary["steady"]``: where latency settled inside the measured window (`steady_start`)."""

    method: str
    bins: int
    bin_s: float | None
    settled_at_unix_s: float | None
    settled_offset_s: float | None
    settled: bool | None
    material: bool


class ScheduleSection(TypedDict):
    """``summary["schedule"]``: how an open-loop run kept its schedule (`schedule_summary`)."""

    requested_rps: float | None
    arrival: str | None
    seed: int | None
    sent: int
    achieved_send_rps: float | None
    lateness_ms: stats.LatencySummary
    late_requests: int
    late_fraction: float
    late_threshold_ms: float
    due_total: int | None
    sent_total: int
    unsent: int
    dropped: int
    max_backlog: int


class ValiditySection(TypedDict):
    """``summary["validity"]``: VALID unless a reason says otherwise (`validity`)."""

    valid: bool
    reasons: list[str]
    warnings: NotRequired[list[str]]
    unchecked: NotRequired[list[str]]


def percentile_ci(values: npt.ArrayLike, q: float, presorted: bool = False) -> tuple[float, float] | None:
    """95 % order-statistic interval for the ``q``-th percentile (0..100); None for < 2 values.

    ``presorted``: ``values`` are already in ascending order (saves a sort of every request).

    The ranks come from the binomial(n, q/100) distribution (normal approximation, rounded
    outwards): [x_(l), x_(u)] covers the true percentile with at least about 95 % probability
    for independent requests. Requests close in time are correlated, so read it as a lower
    bound on the uncertainty, not an exact one.
    """
    data = np.asarray(values, dtype=np.float64)
    if not presorted:
        data = np.sort(data)
    ranks = ci_positions(data.size, q)
    if ranks is None:
        return None
    return round(float(data[ranks[0]]), 3), round(float(data[ranks[1]]), 3)


def ci_positions(n: int, q: float) -> tuple[int, int] | None:
    """The positions (0-based, in ascending order) of `percentile_ci`'s bounds among ``n`` values;
    None for fewer than 2."""
    if n < 2:
        return None
    p = q / 100.0
    half = _Z * math.sqrt(n * p * (1 - p))
    return max(math.floor(n * p - half) - 1, 0), min(math.ceil(n * p + half), n - 1)


def latency_ci(values: npt.ArrayLike) -> dict[str, list[float] | None]:
    """``{"p50": [lo, hi], ...}`` for every reported percentile."""
    data = np.sort(np.asarray(values, dtype=np.float64))  # once, for every percentile
    out: dict[str, list[float] | None] = {}
    for key, q in stats.PERCENTILES.items():
        ci = percentile_ci(data, q, presorted=True)
        out[key] = list(ci) if ci else None
    return out


def thin_percentiles(n: int) -> list[str]:
    """Percentile keys with fewer than `MIN_TAIL_REQUESTS` requests beyond them, for ``n`` requests."""
    # Through required_requests: n * (1 - 0.9) is 9.999999999999998 for n = 100.
    return [k for k in stats.PERCENTILES if n < required_requests(k)]


def required_requests(key: str) -> int:
    """Requests a percentile key needs to rest on `MIN_TAIL_REQUESTS` beyond it."""
    return math.ceil(round(MIN_TAIL_REQUESTS / (1 - stats.PERCENTILES[key] / 100.0), 6))


def thin_notice(ok: int) -> list[str]:
    """A notice when the run's p99 / p99.9 rest on too few successful requests beyond them."""
    thin = [k for k in thin_percentiles(ok) if k in ("p99", "p999")]
    if not (ok and thin):
        return []
    return [
        f"{' and '.join(thin)} rest{'s' if len(thin) == 1 else ''} on fewer than "
        f"{MIN_TAIL_REQUESTS} requests beyond {'it' if len(thin) == 1 else 'them'} "
        f"({ok:,} successful; {thin[0]} needs {required_requests(thin[0]):,}): rough figures, "
        "see their confidence intervals"
    ]


def mser5(series: npt.ArrayLike) -> tuple[int, bool] | None:
    """MSER-5 truncation: how many leading values to drop so that the rest is steadiest.

    White's MSER over batch means of 5 (plain MSER for 10-19 values): the d minimizing
    sum((x_i - mean(x[d:]))^2) / (n - d)^2, searched over the first half. Returns
    ``(d, at_limit)``, at_limit True when the best cut is the end of the first half (the
    series may never have settled); None for fewer than 10 values.
    """
    x = np.asarray(series, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size < 10:
        return None
    size = 5 if x.size >= 20 else 1
    batches = x.size // size
    means = x[: batches * size].reshape(batches, size).mean(axis=1)
    limit = batches // 2
    best, best_d = math.inf, 0
    for d in range(0, limit + 1):
        rest = means[d:]
        score = float(((rest - rest.mean()) ** 2).sum()) / (batches - d) ** 2
        if score < best:
            best, best_d = score, d
    return best_d * size, best_d == limit


def steady_start(
    send_unix_s: npt.NDArray[np.float64],
    latency_ms: npt.NDArray[np.float64],
    window_start: float,
    window_end: float,
) -> SteadySection:
    """Where latency settled inside the measured window.

    The window is cut into equal time bins (at most 100, at least 0.25 s each); MSER-5 over
    the bins' mean latency gives the settling point. "Never settled": the best cut is the end
    of the first half AND the last quarter's mean latency differs from the third quarter's by
    more than `DRIFT` of the whole window's (still moving at the end). ``settled`` None: too few bins or requests to judge.
    """
    bins = steady_bins(window_start, window_end)
    if bins < 10 or latency_ms.size < 50:
        return steady_from_bins(np.zeros(0), np.zeros(0, dtype=np.int64), window_start, window_end)
    span = window_end - window_start
    index = np.floor((send_unix_s - window_start) / span * bins).astype(np.int64)
    keep = (index >= 0) & (index < bins)
    # Each bin's sum exact (`loadbench.analyze.means.exact_sum`: integer units, summed exactly by
    # a float64 below 2**53 of them), as the bounded analyzer sums it.
    units = np.rint(latency_ms[keep] * means.MEAN_SCALE)
    sums = np.bincount(index[keep], weights=units, minlength=bins) / means.MEAN_SCALE
    counts = np.bincount(index[keep], minlength=bins)
    return steady_from_bins(sums, counts, window_start, window_end)


def steady_bins(window_start: float, window_end: float) -> int:
    """How many equal time bins `steady_start` cuts the window into (0: too short to judge)."""
    span = window_end - window_start
    return int(min(MAX_BINS, max(span // MIN_STEADY_BIN_S, 0))) if span > 0 else 0


def steady_from_bins(
    sums: npt.NDArray[np.float64], counts: npt.NDArray[np.int64], window_start: float, window_end: float
) -> SteadySection:
    """`steady_start` from each bin's sum of latencies and count of requests (`steady_bins` of
    them; empty arrays when there were too few requests to judge: fewer than 50)."""
    span = window_end - window_start
    bins = steady_bins(window_start, window_end)
    out: SteadySection = {
        "method": "MSER-5 over the mean latency of equal time bins of the measured window",
        "bins": bins,
        "bin_s": round(span / bins, 3) if bins else None,
        "settled_at_unix_s": None,
        "settled_offset_s": None,
        "settled": None,
        "material": False,
    }
    if bins < 10 or counts.size != bins:
        return out
    means = np.full(bins, np.nan)
    np.divide(sums, counts, out=means, where=counts > 0)
    found = mser5(means)
    if found is None:
        return out
    d, at_limit = found
    filled = means[np.isfinite(means)]
    # Still drifting: the last quarter of the window ran differently from the third.
    quarter = filled.size // 4
    third, fourth = float(filled[-2 * quarter : -quarter].mean()), float(filled[-quarter:].mean())
    overall = float(filled.mean())
    drifting = overall > 0 and abs(fourth - third) > DRIFT * overall
    out["settled"] = not (at_limit and drifting)
    # d counts filled bins; map it back onto the time axis through the filled bins' positions.
    positions = np.flatnonzero(np.isfinite(means))
    at = window_start + positions[min(d, positions.size - 1)] * span / bins
    out["settled_at_unix_s"] = round(at, 3)
    out["settled_offset_s"] = round(at - window_start, 3)
    # Worth a word only when the cut-off part ran measurably different from the rest.
    before = means[: positions[min(d, positions.size - 1)]]
    before = before[np.isfinite(before)]
    after = float(filled[d:].mean()) if d < filled.size else overall
    out["material"] = bool(
        before.size
        and d >= 0.1 * filled.size
        and after > 0
        and abs(float(before.mean()) - after) > MATERIAL * after
    )
    return out


def steady_notice(steady: SteadySection, warmup_s: float) -> list[str]:
    """A notice when latency settled measurably later than the warmup ended."""
    offset = steady["settled_offset_s"]
    if not (steady["settled"] and steady.get("material")) or offset is None:
        return []
    return [
        f"latency settled {offset:g} s into the measured window "
        f"(MSER-5): a --warmup of {warmup_s + offset:.0f} s would exclude the settling"
    ]


def schedule_summary(
    start_unix_s: npt.NDArray[np.float64],
    intended_unix_s: npt.NDArray[np.float64],
    window_start: float,
    window_end: float,
    settings: dict[str, Any],
    schedule_meta: dict[str, Any] | None,
) -> ScheduleSection:
    """How an open-loop run kept its schedule: requested vs. achieved rate, lateness, unsent."""
    scheduled = np.isfinite(intended_unix_s)
    in_window = scheduled & (intended_unix_s >= window_start - TIME_RESOLUTION_S / 2)  # as `measure` counts
    lateness = (start_unix_s[in_window] - intended_unix_s[in_window]) * 1000.0
    return schedule_section(
        int(in_window.sum()),
        int((lateness > LATE_MS).sum()),
        stats.latency_summary(lateness),
        int(scheduled.sum()),
        max(window_end - window_start, 0.0),
        settings,
        schedule_meta,
    )


def schedule_section(
    sent: int,
    late: int,
    lateness: stats.LatencySummary,
    sent_total: int,
    window_s: float,
    settings: dict[str, Any],
    schedule_meta: dict[str, Any] | None,
) -> ScheduleSection:
    """`schedule_summary` from its counts: ``sent`` scheduled requests due in the window, ``late``
    of them more than `LATE_MS` late, ``lateness`` their lateness summarized, ``sent_total``
    scheduled requests in the whole run."""
    meta = schedule_meta or {}
    out: ScheduleSection = {
        "requested_rps": settings.get("rate"),
        "arrival": settings.get("arrival"),
        "seed": settings.get("seed"),
        "sent": sent,
        "achieved_send_rps": stats.rate(sent, window_s),
        "lateness_ms": lateness,
        "late_requests": late,
        "late_fraction": stats.fraction(late, sent),
        "late_threshold_ms": LATE_MS,
        "due_total": meta.get("due"),
        "sent_total": sent_total,
        "unsent": meta.get("unsent", 0),
        "dropped": meta.get("dropped", 0),
        "max_backlog": meta.get("max_backlog", 0),
    }
    return out


def validity(
    summary: Mapping[str, Any],
    load_model: str,
    gated_keys: list[str],
    gated_counts: Mapping[str, int] | None = None,
) -> ValiditySection:
    """VALID unless the measurement itself cannot be trusted; every reason says why in numbers.

    ``gated_keys``: latency percentile keys (``p99``) that SLOs gate on, resting on the
    successful requests; ``gated_counts``: other gated percentiles by summary path
    (``ttft_ms.p99``) with the number of values each rests on.
    """
    reasons = _all_failed_reasons(summary) + _generator_reasons(summary)
    window_s = summary.get("window", {}).get("duration_s") or 0.0
    if window_s < MIN_WINDOW_S and summary.get("requests", {}).get("total", 0) > 0:
        reasons.append(f"the measured window lasted {window_s:g} s, under {MIN_WINDOW_S:g} s")
    steady = summary.get("steady") or {}
    if steady.get("settled") is False:
        reasons.append(
            "latency never settled: it was still changing through the first half of the measured "
            "window (overload, or a warmup longer than --warmup)"
        )
    schedule = summary.get("schedule")
    if load_model == "open" and schedule:
        reasons += _schedule_reasons(schedule)
    reasons += _gate_reasons(summary.get("requests", {}).get("ok", 0), gated_keys, gated_counts or {})
    out: ValiditySection = {"valid": not reasons, "reasons": reasons}
    warnings = host_warnings(summary)
    if warnings:
        out["warnings"] = warnings
    return out


def _all_failed_reasons(summary: Mapping[str, Any]) -> list[str]:
    """Every request of the window failed: nothing measured the endpoint's service, only its
    failures (latency, throughput and goodput are empty or 0). The most common error is quoted."""
    requests = summary.get("requests") or {}
    total = requests.get("total") or 0
    if not (total > 0 and requests.get("ok", 0) == 0):
        return []
    errors = summary.get("errors") or []
    top = max(errors, key=lambda e: e.get("count", 0), default=None)
    most = ""
    if top is not None:
        most = f"; the most common: {top.get('kind')} ({top.get('count', 0):,})"
        example = str(top.get("example") or "")
        if example and example != top.get("kind"):
            most += f", e.g. {example[:200]}"
    return [f"every request failed: {total:,} of {total:,} measured requests{most}"]


def _generator_reasons(summary: Mapping[str, Any]) -> list[str]:
    """A saturated load generator: one reason, whichever generators it was (the top-level flag
    covers remote workers too). Not for an in-process target: the generator is the server there,
    its CPU the model's calls, timed in their own threads (loadbench.scenario.inprocess)."""
    if is_inprocess_url(str((summary.get("run") or {}).get("target") or "")):
        return []
    generator = (summary.get("resources") or {}).get("generator") or {}
    remote_saturated = [
        label
        for label, remote in ((summary.get("resources") or {}).get("remote") or {}).items()
        if ((remote or {}).get("generator") or {}).get("saturated")
    ]
    where = generator.get("saturated_on") or ([] if generator.get("saturated") else remote_saturated)
    if not (generator.get("saturated") or remote_saturated):
        return []
    share = generator.get("saturated_share")
    return [
        "the load generator's CPU was saturated"
        + (f" on {', '.join(map(str, where))}" if where and where != ["this host"] else "")
        + (f" ({share:.0%} of samples above 90% of a core)" if isinstance(share, float) else "")
        + ": it may have measured its own delays"
    ]


def host_warnings(summary: Mapping[str, Any]) -> list[str]:
    """This host's CPU at its limit with the server beside the generator: each waited for cores
    the other held, so the figures are of that contention, not of the server. A warning, not a
    reason for INVALID: beside its server a closed loop reaches the host's limit by design, and
    other load on the host would make validity a reading of the machine's load (docs/metrics.md)."""
    if not host_saturated(summary):
        return []
    host_cpu = summary["resources"]["host_cpu"]
    cores = host_cpu.get("cores")
    return [
        f"the load generator shared a host whose CPU was at its limit ({shared_host(summary)}): "
        f"{host_cpu['mean_percent']:.1f}% of {f'its {cores} cores' if cores else 'all its cores'} on average "
        f"over the window (limit {host_cpu['limit_percent']:g}%), so latency and throughput measure "
        "the contention between the generator and the server, not the server"
    ]


def _schedule_reasons(schedule: Mapping[str, Any]) -> list[str]:
    """An open loop that fell behind its schedule: late sends, unsent requests, a low send rate."""
    reasons = []
    p99 = (schedule.get("lateness_ms") or {}).get("p99")
    # As for any percentile: only when enough requests lie beyond the bound to pin it down.
    late = schedule.get("late_requests") or 0
    if isinstance(p99, float) and p99 > MAX_LATENESS_P99_MS and late >= MIN_TAIL_REQUESTS:
        reasons.append(
            f"the generator fell behind its schedule: 1% of requests were sent more than "
            f"{p99:.1f} ms late (bound {MAX_LATENESS_P99_MS:g} ms; {schedule['late_requests']:,} "
            f"later than {LATE_MS:g} ms)"
        )
    due = schedule.get("due_total")
    sent: Any = schedule.get("sent_total")
    if isinstance(due, int) and due > 0 and sent < MIN_SEND_FRACTION * due:
        reasons.append(
            f"only {sent:,} of {due:,} scheduled requests were sent ({sent / due:.1%}): "
            f"raise --max-inflight or lower --rate"
        )
    requested = schedule.get("requested_rps")
    achieved = schedule.get("achieved_send_rps")
    if (
        isinstance(requested, int | float)
        and isinstance(achieved, int | float)
        and schedule.get("arrival") == "constant"
        and achieved < MIN_SEND_FRACTION * requested
    ):
        reasons.append(f"sent {achieved:g} requests/s of the {requested:g} requested")
    return reasons


def _gate_reasons(n_ok: int, gated_keys: list[str], gated_counts: Mapping[str, int]) -> list[str]:
    """SLO-gated percentiles that rest on too few values to pin them down."""
    reasons = []
    for key in gated_keys:
        if key in stats.PERCENTILES and n_ok < required_requests(key):
            reasons.append(
                f"an SLO gates on {key}, which {n_ok:,} successful requests cannot pin down "
                f"(needs at least {required_requests(key):,})"
            )
    for path, n in gated_counts.items():
        key = path.rsplit(".", 1)[-1]
        if key in stats.PERCENTILES and n < required_requests(key):
            reasons.append(
                f"an SLO gates on {path}, which {n:,} measured values cannot pin down "
                f"(needs at least {required_requests(key):,})"
            )
    return reasons
