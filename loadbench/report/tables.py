"""The report's run-level tables as plain-text rows for ``report.html.j2``: the summary numbers,
requests by name, errors, and the run's own facts (settings, command, versions, host). The
template escapes every value as it places it (the errors table quotes the server's own words).
"""

from __future__ import annotations

import shlex
from typing import Any

from loadbench.report.fmt import (
    PERCENTILE_KEYS,
    as_dict,
    as_list,
    format_bytes,
    format_count,
    format_ms,
    format_pct,
    format_rate,
    format_seconds,
    num,
    utc,
)


def summary_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """The "Summary" section's (metric, value) rows, as plain text."""
    reqs = as_dict(summary.get("requests"))
    lat = as_dict(summary.get("latency_ms"))
    window = as_dict(summary.get("window"))
    size = as_dict(summary.get("response_bytes"))
    rows = [
        ("throughput (successful requests)", format_rate(summary.get("throughput_rps"))),
        ("request rate (all requests)", format_rate(summary.get("request_rate_rps"))),
        *((f"latency {label}", format_ms(lat.get(key))) for key, label in PERCENTILE_KEYS),
        ("latency max", format_ms(lat.get("max"))),
        ("latency mean", format_ms(lat.get("mean"))),
        ("latency min", format_ms(lat.get("min"))),
        ("requests", format_count(reqs.get("total"))),
        ("successful", format_count(reqs.get("ok"))),
        ("failed", format_count(reqs.get("errors"))),
        ("error rate", format_pct(reqs.get("error_rate"))),
        ("excluded as warmup", format_count(reqs.get("warmup_excluded"))),
        (
            "measured window",
            f"{utc(window.get('start_unix_s'))} → {utc(window.get('end_unix_s'))} "
            f"({format_seconds(window.get('duration_s'))})",
        ),
        ("response bytes", f"{format_bytes(size.get('total'))} total, {format_bytes(size.get('mean'))} mean"),
    ]
    if "redirects" in reqs:  # only runs that followed redirects (--follow-redirects)
        rows.append(
            (
                "redirects followed",
                f"{format_count(reqs.get('redirects'))} by {format_count(reqs.get('redirected'))} requests",
            )
        )
    return rows


BY_NAME_HEADERS = ("name", "requests", "ok", "errors", "error rate", "throughput", "p50", "p90", "p99", "max")
ERROR_HEADERS = ("kind", "count", "share", "example")
# The errors table's columns for what the server said, shown only when some error row has it.
MESSAGE_HEADER = "server's message"
RETRY_AFTER_HEADER = "Retry-After"


def by_name_rows(summary: dict[str, Any]) -> list[list[str]]:
    """One row per request name, as plain text in the order of `BY_NAME_HEADERS`."""
    rows = []
    for name, entry in as_dict(summary.get("by_name")).items():
        s = as_dict(entry)
        lat = as_dict(s.get("latency_ms"))
        rows.append(
            [
                str(name),
                format_count(s.get("requests")),
                format_count(s.get("ok")),
                format_count(s.get("errors")),
                format_pct(s.get("error_rate")),
                format_rate(s.get("throughput_rps")),
                *(format_ms(lat.get(k)) for k in ("p50", "p90", "p99", "max")),
            ]
        )
    return rows


def error_cells(errors: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows of an errors table (``summary["errors"]`` entries, most frequent first).

    Columns: kind, count, share, then the server's message and Retry-After only when some row
    has one (runs whose servers said nothing keep the table they always had), then an example.
    Text cells are the summary's text, unescaped (None where a row has no such value).
    """
    message = any(e.get("server_message") or e.get("other_messages") for e in errors)
    retry_after = any(e.get("retry_after") for e in errors)
    headers = [
        *ERROR_HEADERS[:3],
        *([MESSAGE_HEADER] if message else []),
        *([RETRY_AFTER_HEADER] if retry_after else []),
        ERROR_HEADERS[3],
    ]
    rows = [
        [
            e.get("kind"),
            format_count(e.get("count")),
            format_pct(e.get("share")),
            *([_said(e)] if message else []),
            *([e.get("retry_after") or None] if retry_after else []),
            e.get("example"),
        ]
        for e in errors
    ]
    return headers, rows


def error_headers(summary: dict[str, Any]) -> list[str]:
    """The errors table's headers for this summary (see `error_cells`)."""
    return error_cells(_errors(summary))[0]


def error_rows(summary: dict[str, Any]) -> list[list[Any]]:
    """One row per error kind and server message, most frequent first as the analyzer ranks them."""
    return error_cells(_errors(summary))[1]


def _said(error: dict[str, Any]) -> str | None:
    """The server's message of an error row; for a row of a kind's rarer messages, how many."""
    others = error.get("other_messages")
    if not error.get("server_message") and isinstance(others, int) and others > 0:
        return f"({format_count(others)} other messages)"
    return error.get("server_message") or None


def _errors(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [as_dict(e) for e in as_list(summary.get("errors"))]


def run_facts(meta: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """The "Run" section's facts as plain values: ``meta.json`` first, the summary's run block as fallback."""
    info = as_dict(summary.get("run"))
    settings = as_dict(meta.get("settings"))
    versions = as_dict(meta.get("versions"))
    started, ended = num(meta.get("started_unix_s")), num(meta.get("ended_unix_s"))
    duration = ended - started if started is not None and ended is not None else None
    command = as_list(meta.get("command"))
    return {
        "run_id": meta.get("run_id") or info.get("id"),
        "target": meta.get("target") or info.get("target"),
        "scenario": meta.get("scenario") or info.get("scenario"),
        "scenario_reason": meta.get("scenario_reason") or None,
        "status": meta.get("status") or info.get("status"),
        "started": utc(started),
        "ended": utc(ended),
        "duration": format_seconds(duration),
        "users": format_count(settings.get("users", info.get("users"))),
        "spawn_rate": format_rate(settings.get("spawn_rate"), "users/s"),
        "planned": format_seconds(settings.get("duration_s")),
        "warmup": format_seconds(settings.get("warmup_s", info.get("warmup_s"))),
        "headers": as_list(settings.get("headers")),
        "scenario_args": as_list(settings.get("scenario_args")),
        "command": shlex.join(str(a) for a in command) if command else None,
        "versions": " · ".join(f"{k} {v}" for k, v in versions.items()) or None,
        "host": _host_text(as_dict(meta.get("host"))),
        "git_commit": meta.get("git_commit"),
    }


def _host_text(host: dict[str, Any]) -> str | None:
    facts = [
        host.get("hostname"),
        host.get("platform"),
        host.get("cpu_model"),
        f"{host['cpu_cores']} cores" if host.get("cpu_cores") else None,
        f"{format_bytes(host['memory_bytes'])} memory" if host.get("memory_bytes") else None,
    ]
    return " · ".join(str(f) for f in facts if f) or None
