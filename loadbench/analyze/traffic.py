"""The request sections of ``summary.json``: counts, rates, latency, per request name, errors, bytes.

Computed over the measured window's requests (`loadbench.analyze.window.Window`); latency
percentiles over the successful ones.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

from loadbench.analyze import stats, trust
from loadbench.analyze.stats import ErrorRow, LatencySummary
from loadbench.analyze.window import RunSpan, Window


class RequestsSection(TypedDict):
    """``summary["requests"]``: the window's requests (warmup's excluded, counted apart)."""

    total: int
    ok: int
    errors: int
    error_rate: float
    warmup_excluded: int
    # Only when the driver counted them (meta.json): requests cut off by the stop, not recorded.
    in_flight_unrecorded: NotRequired[int]
    # Only for runs that followed redirects (--follow-redirects, or hops in the records): the hops
    # the window's requests followed, and how many of them followed any.
    redirects: NotRequired[int]
    redirected: NotRequired[int]


class NameSection(TypedDict):
    """One entry of ``summary["by_name"]``: the requests of one name."""

    requests: int
    ok: int
    errors: int
    error_rate: float
    throughput_rps: float | None
    latency_ms: LatencySummary


class ResponseBytes(TypedDict):
    total: int
    mean: float | None


class TrafficSections(TypedDict):
    """The request keys of ``summary.json``, in their order there."""

    requests: RequestsSection
    throughput_rps: float | None
    request_rate_rps: float | None
    latency_ms: LatencySummary
    latency_ci_ms: dict[str, list[float] | None]
    service_time_ms: LatencySummary
    by_name: dict[str, NameSection]
    errors: list[ErrorRow]
    response_bytes: ResponseBytes


def traffic_sections(w: Window) -> TrafficSections:
    measured, ok_mask = w.measured, w.ok_mask
    return {
        "requests": requests_section(w),
        "throughput_rps": stats.rate(w.ok, w.duration_s),
        "request_rate_rps": stats.rate(w.total, w.duration_s),
        "latency_ms": stats.latency_summary(w.ok_latency),
        "latency_ci_ms": trust.latency_ci(w.ok_latency),
        "service_time_ms": stats.latency_summary(w.measured_service_ms[ok_mask]),
        "by_name": by_name(w),
        "errors": stats.error_table(
            measured.loc[~ok_mask, [c for c in stats.ERROR_COLUMNS if c in measured]], w.total
        ),
        "response_bytes": {
            "total": int(measured["response_bytes"].sum()),
            "mean": round(float(measured["response_bytes"].mean()), 1) if w.total else None,
        },
    }


def requests_section(w: Window) -> RequestsSection:
    hops = w.measured["redirects"].fillna(0).to_numpy() if "redirects" in w.measured else None
    redirects = None if hops is None else (int(hops.sum()), int((hops > 0).sum()))
    return counted_requests_section(w, w.total, w.ok, int((~w.in_window).sum()), redirects)


def counted_requests_section(
    span: RunSpan, total: int, ok: int, warmup_excluded: int, redirects: tuple[int, int] | None
) -> RequestsSection:
    """`requests_section` from the window's counts; ``redirects``: (hops followed, requests that
    followed any), None when the records do not say."""
    section: RequestsSection = {
        "total": total,
        "ok": ok,
        "errors": total - ok,
        "error_rate": stats.fraction(total - ok, total),
        "warmup_excluded": warmup_excluded,
    }
    unrecorded = span.in_flight_unrecorded
    if unrecorded is not None:
        section["in_flight_unrecorded"] = unrecorded
    if redirects is not None and ((span.settings.get("follow_redirects") or 0) > 0 or redirects[1]):
        section["redirects"], section["redirected"] = redirects
    return section


def by_name(w: Window) -> dict[str, NameSection]:
    out: dict[str, NameSection] = {}
    latency = w.measured["latency_ms"].to_numpy()
    for name, rows in stats.group_rows(w.measured["name"]):
        ok = w.ok_mask[rows]
        out[name] = name_section(
            int(rows.size), int(ok.sum()), w.duration_s, stats.latency_summary(latency[rows][ok])
        )
    return out


def name_section(requests: int, ok: int, duration_s: float, latency: LatencySummary) -> NameSection:
    """One entry of ``by_name`` from its counts and its successes' latency."""
    return {
        "requests": requests,
        "ok": ok,
        "errors": requests - ok,
        "error_rate": stats.fraction(requests - ok, requests),
        "throughput_rps": stats.rate(ok, duration_s),
        "latency_ms": latency,
    }
