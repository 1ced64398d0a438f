"""Analyze a run directory: ``meta.json`` + ``requests.csv`` + ``users.csv`` -> ``summary.json``
and ``timeseries.csv``.

Reads the run directory alone, so it can be re-run at any time (``loadbench report DIR``).
Metric definitions: ``docs/metrics.md``. In short: the measured window starts ``warmup_s``
after the load started and ends when the load stopped; a request belongs to the window when
it *started* inside it; latency percentiles are over the successful requests of the window.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from loadbench.analyze import llm_metrics, network, quality, slo, stats, trust
from loadbench.analyze.resources import compute_resources
from loadbench.analyze.stages import stage_summaries
from loadbench.errors import RunDirError
from loadbench.record import rundir
from loadbench.record.records import from_due_time, read_requests, read_samples

SCHEMA_VERSION = 1


def read_users(path: Path) -> pd.DataFrame:
    """Read ``users.csv`` (``unix_s,users``); missing or damaged lines give fewer rows, not errors.

    A file without those columns in its header raises `RunDirError`; a file with no whole line
    (empty, or truncated inside its header) gives zero rows.
    """
    empty = pd.DataFrame({"unix_s": pd.Series([], dtype="float64"), "users": pd.Series([], dtype="int64")})
    if not path.exists():
        return empty
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RunDirError(f"cannot read {path}: {exc.strerror or exc}") from None
    data = data[: data.rfind(b"\n") + 1]
    if not data.strip():  # nothing but blank lines: pandas would raise EmptyDataError
        return empty
    # Every field is a number, so nothing is quoted: QUOTE_NONE keeps a stray quote from
    # swallowing the rest of the file (a ParserError); dtype=str leaves numbers to to_numeric
    # below (no int64 overflow in pandas' type inference); undecodable bytes become U+FFFD.
    frame = pd.read_csv(
        io.BytesIO(data),
        on_bad_lines="skip",
        quoting=csv.QUOTE_NONE,
        dtype=str,
        encoding="utf-8",
        encoding_errors="replace",
        skip_blank_lines=True,
    )
    missing = [c for c in ("unix_s", "users") if c not in frame.columns]
    if missing:
        raise RunDirError(f"{path} is not a users file: missing column(s) {', '.join(missing)}")
    frame = frame[["unix_s", "users"]].apply(pd.to_numeric, errors="coerce").astype("float64")
    # Damaged values are dropped: NaN / inf, and user counts no int64 can hold exactly.
    keep = np.isfinite(frame["unix_s"]) & frame["users"].between(0, 2**53)
    return frame[keep].astype({"unix_s": "float64", "users": "int64"}).reset_index(drop=True)


def _gated_counts(slos: list[slo.Slo], measured: pd.DataFrame, ok: npt.NDArray[np.bool_]) -> dict[str, int]:
    """Gated percentiles other than latency's, by summary path, with the values each rests on.

    ITL counts a stream once, not per gap: the gaps of one request are far from independent.
    """
    ttft = np.isfinite(measured["ttft_ms"].to_numpy(dtype=np.float64))
    tokens = measured["output_tokens"].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        decoded = np.isfinite(tokens) & (tokens >= 2)
    values = {
        "service_time_ms": ok,
        "ttft_ms": ok & ttft,
        "itl_ms": ok & ttft,
        "tpot_ms": ok & ttft & decoded,
        "e2e_ms": ok & (ttft | np.isfinite(tokens)),
    }
    out: dict[str, int] = {}
    for gate in slos:
        prefix = gate.path.split(".")[0]
        if not gate.per_request and prefix in values:
            out[gate.path] = int(values[prefix].sum())
    return out


def window_start_unix_s(meta: dict[str, Any]) -> float:
    """Where the measured window starts (wall clock): ``warmup_s`` after the load started.
    ``loadbench compare`` windows its bootstrap with this too."""
    settings = meta.get("settings") or {}
    return float(meta["started_unix_s"]) + float(settings.get("warmup_s", 0.0) or 0.0)


def compute_summary(
    meta: dict[str, Any],
    requests: pd.DataFrame,
    users: pd.DataFrame,
    samples: pd.DataFrame | None = None,
    sampler_info: dict[str, Any] | None = None,
) -> tuple[dict, pd.DataFrame]:
    """The pure core of the analyzer: run metadata and records -> (summary dict, per-second frame)."""
    settings = meta.get("settings", {})
    started = float(meta["started_unix_s"])
    load = settings.get("load") or {}
    load_model = "open" if load.get("model") == "open" else "closed"
    slos = slo.parse_slos(settings.get("slos") or [])
    # Open loop: a request counts from when it was due, not from when it was sent; the
    # service time (from the actual send) is kept beside it. Closed loop: the two are equal.
    service_ms = requests["latency_ms"].to_numpy()
    sent_unix_s = requests["start_unix_s"].to_numpy()
    intended = requests["intended_unix_s"].to_numpy()
    requests = from_due_time(requests)
    warmup_s = float(settings.get("warmup_s", 0.0) or 0.0)
    status = meta.get("status", rundir.STATUS_RUNNING)
    notices: list[str] = []

    ended = meta.get("ended_unix_s")
    if ended is None:
        # The driver never finished (killed): the run lasted at least until its last record ended.
        last = (
            (requests["start_unix_s"] + requests["latency_ms"] / 1000.0).max() if len(requests) else started
        )
        ended = max(float(last), started)
        notices.append(
            "incomplete run: the load generator did not finish (killed or still running); "
            "the metrics cover the requests recorded up to its last flush"
        )
        # A damaged start time must not stretch the run to years of per-second rows: a run
        # cannot have outlasted its planned duration (plus the request timeout) by much.
        planned = settings.get("duration_s")
        limit = started + rundir.MAX_RUN_S
        if isinstance(planned, int | float) and 0 < planned < rundir.MAX_RUN_S:
            limit = started + planned + float(settings.get("timeout_s") or 60.0) + 60.0
        if ended > limit:
            ended = limit
            notices.append("records that lie after the planned end of the run were ignored for its length")
    ended = float(ended)
    if status == rundir.STATUS_INTERRUPTED:
        planned = settings.get("duration_s")
        notices.append(
            f"run interrupted after {ended - started:.1f} s"
            + (f" of {float(planned):.1f} s planned" if planned else "")
            + "; the metrics cover what ran"
        )
    elif status == rundir.STATUS_FAILED:
        notices.append(f"the run failed: {meta.get('failure', 'see the console output')}")

    if settings.get("tls_verify") is False:
        notices.append(
            "TLS certificates were NOT verified (--insecure): the endpoint's identity was not checked"
        )
    for worker in meta.get("workers") or []:
        died = worker.get("died_at_unix_s")
        if isinstance(died, int | float):
            notices.append(
                f"worker {worker.get('index')} died {died - started:.1f} s into the run ({worker.get('how')}) "
                f"after sending {worker.get('records', 0):,} requests; the run went on without it"
            )
    for exc in meta.get("scenario_exceptions") or []:
        notices.append(f"the scenario raised {exc['count']:,} exception(s) outside requests: {exc['error']}")

    window_start = window_start_unix_s(meta)  # started + warmup_s
    window_reason = f"--warmup {warmup_s:g} s excluded, then until the load stopped"
    if settings.get("warmup_auto"):
        window_reason = "--warmup auto: " + window_reason
    window_s = max(ended - window_start, 0.0)
    if window_s == 0.0 and meta.get("ended_unix_s") is not None:
        notices.append(f"the warmup ({warmup_s:g} s) covers the whole run: no requests were measured")

    in_window = requests["start_unix_s"].to_numpy() >= window_start
    measured = requests[in_window]
    warmup_excluded = int((~in_window).sum())
    ok_mask = measured["ok"].to_numpy().astype(bool)
    total, ok = len(measured), int(ok_mask.sum())
    errors = total - ok
    if total == 0 and window_s > 0:
        notices.append("no requests were recorded in the measured window")
    elif total and ok == 0:
        notices.append("every request failed: latency figures are empty")

    by_name: dict[str, Any] = {}
    measured_latency = measured["latency_ms"].to_numpy()
    for name, rows in stats.group_rows(measured["name"]):
        g_ok = ok_mask[rows]
        by_name[name] = {
            "requests": int(rows.size),
            "ok": int(g_ok.sum()),
            "errors": int((~g_ok).sum()),
            "error_rate": stats.fraction(int((~g_ok).sum()), int(rows.size)),
            "throughput_rps": stats.rate(int(g_ok.sum()), window_s),
            "latency_ms": stats.latency_summary(measured_latency[rows][g_ok]),
        }

    run = {
        "id": meta.get("run_id"),
        "target": meta.get("target"),
        "scenario": meta.get("scenario"),
        "status": status,
        "started_at": rundir.iso_utc(started),
        "ended_at": rundir.iso_utc(ended),
        "started_unix_s": started,
        "ended_unix_s": round(ended, 6),
        "duration_s": round(ended - started, 3),
        "users": settings.get("users"),
        "warmup_s": warmup_s,
    }
    if meta.get("workers"):
        run["workers"] = len(meta["workers"])
        run["workers_died"] = sum(1 for w in meta["workers"] if w.get("died_at_unix_s") is not None)
    ok_latency = measured["latency_ms"].to_numpy()[ok_mask]
    measured_send = measured["start_unix_s"].to_numpy()
    thin = [k for k in trust.thin_percentiles(ok) if k in ("p99", "p999")]
    if ok and thin:
        notices.append(
            f"{' and '.join(thin)} rest{'s' if len(thin) == 1 else ''} on fewer than "
            f"{trust.MIN_TAIL_REQUESTS} requests beyond {'it' if len(thin) == 1 else 'them'} "
            f"({ok:,} successful; {thin[0]} needs {trust.required_requests(thin[0]):,}): rough figures, "
            "see their confidence intervals"
        )
    summary: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "run": run,
        "load": _load_section(load_model, settings, meta),
        "window": {
            "start_unix_s": round(window_start, 6),
            "end_unix_s": round(ended, 6),
            "duration_s": round(window_s, 3),
            "reason": window_reason,
        },
        "requests": {
            "total": total,
            "ok": ok,
            "errors": errors,
            "error_rate": stats.fraction(errors, total),
            "warmup_excluded": warmup_excluded,
        },
        "throughput_rps": stats.rate(ok, window_s),
        "request_rate_rps": stats.rate(total, window_s),
        "latency_ms": stats.latency_summary(ok_latency),
        "latency_ci_ms": trust.latency_ci(ok_latency),
        "service_time_ms": stats.latency_summary(service_ms[in_window][ok_mask]),
        "by_name": by_name,
        "errors": stats.error_table(measured.loc[~ok_mask, ["status", "error"]], total),
        "response_bytes": {
            "total": int(measured["response_bytes"].sum()),
            "mean": round(float(measured["response_bytes"].mean()), 1) if total else None,
        },
        "notices": notices,
    }
    # Only for payloads that carried an expected label (quality) or a media duration (RTF).
    if "expected" in measured and "predicted" in measured:
        quality_section = quality.quality_summary(measured["expected"], measured["predicted"], ok_mask)
        if quality_section is not None:
            summary["quality"] = quality_section
    if "media_s" in measured:
        rtf_section = quality.rtf_summary(service_ms[in_window], measured["media_s"].to_numpy(), ok_mask)
        if rtf_section is not None:
            summary["rtf"] = rtf_section
    # LLM keys (ttft_ms, itl_ms, tpot_ms, e2e_ms, tokens, goodput, llm_realtime): only for runs
    # with TTFT or token counts, or with a per-request SLO; nothing at all for a plain run.
    llm, llm_notices = llm_metrics.llm_summary(
        measured, service_ms[in_window], window_s, slos, settings.get("realtime_tokens_per_s")
    )
    summary.update(llm)
    notices.extend(llm_notices)
    # Network vs server: one round trip (measured before the load) against p50 service time.
    breakdown = network.latency_breakdown(meta.get("network"), summary["service_time_ms"].get("p50"))
    phases = network.phase_summaries(measured[ok_mask])
    if phases:
        breakdown = {**(breakdown or {}), "phases_ms": phases}
    if breakdown is not None:
        summary["latency_breakdown"] = breakdown
    sampler_meta = meta.get("sampler")
    info = dict(sampler_info or {})
    # The driver's notices (how the server process was or was not found) come first.
    info["notices"] = [*(sampler_meta or {}).get("notices", []), *info.get("notices", [])]
    resources = compute_resources(
        samples if samples is not None else pd.DataFrame(),
        info if (sampler_info or sampler_meta) else None,
        window_start,
        ended,
        measured,
        ok,
        output_tokens=(llm.get("tokens") or {}).get("output_total"),
    )
    summary["resources"] = resources
    if resources.get("generator", {}).get("saturated"):
        notices.append(resources["notices"][-1])
    if load_model == "open":
        summary["schedule"] = trust.schedule_summary(
            sent_unix_s, intended, window_start, ended, load, meta.get("schedule")
        )
    summary["steady"] = trust.steady_start(
        measured_send[ok_mask].astype(np.float64), ok_latency, window_start, ended
    )
    steady = summary["steady"]
    if steady["settled"] and steady.get("material"):
        notices.append(
            f"latency settled {steady['settled_offset_s']:g} s into the measured window "
            f"(MSER-5): a --warmup of {warmup_s + steady['settled_offset_s']:.0f} s would exclude the settling"
        )
    if settings.get("stages"):
        summary["stages"] = stage_summaries(
            requests["start_unix_s"].to_numpy(),
            requests["latency_ms"].to_numpy(),
            requests["ok"].to_numpy(),
            started,
            settings["stages"],
            window_start,
            window_end_unix_s=ended,
        )
    summary["slo"] = slo.evaluate(slos, summary)
    summary["validity"] = trust.validity(
        summary,
        load_model,
        [s.path.split(".")[-1] for s in slos if s.path.startswith("latency_ms.")],
        _gated_counts(slos, measured, ok_mask),
    )
    if not summary["validity"]["valid"]:
        notices.extend(f"INVALID: {reason}" for reason in summary["validity"]["reasons"])
    if total and (resources.get("generator") or {}).get("cpu_max_percent") is None:
        # Not a reason for INVALID (nothing says it was saturated), but VALID then means less.
        summary["validity"]["unchecked"] = [
            "the load generator's CPU (no resource samples: --no-sampler, or the sampler failed)"
        ]

    # Whole seconds of the run; the load loop overshoots its duration by a fraction of a
    # millisecond, which must not add a near-empty last second to the plots.
    seconds = max(int(np.ceil(ended - started - 0.01)), 0)
    series = stats.per_second(requests, started, window_start, seconds)
    series["users"] = stats.users_per_second(users, started, seconds)
    return stats.clean(summary), series


def _load_section(load_model: str, settings: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """How the load was offered: the run's load model in words and numbers."""
    load = settings.get("load") or {}
    if load_model == "open":
        what = (
            f"open loop: {load.get('arrival', '?')} arrivals"
            + (f" at {load['rate']:g} requests/s" if isinstance(load.get("rate"), int | float) else "")
            + (" replaying a trace" if load.get("trace") else "")
            + f", at most {load.get('max_inflight', '?')} in flight; latency counts from each request's due time"
        )
    else:
        what = f"closed loop: {settings.get('users', '?')} users, each sending its next request when the previous one ends"
    if settings.get("stages"):
        what += f"; load shape of {len(settings['stages'])} stage(s)"
    return {"model": load_model, "description": what, **{k: v for k, v in load.items() if k != "model"}}


def analyze_run(run_dir: Path, requests: pd.DataFrame | None = None) -> dict[str, Any]:
    """Analyze ``run_dir`` in place: write ``summary.json`` and ``timeseries.csv``; return the summary.

    ``requests``: the directory's ``requests.csv`` as `read_requests` gave it, when the caller
    reads it once for the analyzer and the report (``loadbench report``).
    """
    meta = rundir.read_meta(run_dir)
    if requests is None:
        requests = read_requests(run_dir / rundir.REQUESTS)
    users = read_users(run_dir / rundir.USERS)
    samples = read_samples(run_dir / rundir.SAMPLES)
    info_path = run_dir / rundir.SAMPLER_INFO
    sampler_info = rundir.read_json(info_path) if info_path.exists() else None
    try:
        summary, series = compute_summary(meta, requests, users, samples, sampler_info)
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
        raise RunDirError(f"{run_dir / rundir.META} has an unusable value: {exc}") from None
    series.to_csv(run_dir / rundir.TIMESERIES, index=False, float_format="%.3f", na_rep="")
    rundir.write_json(run_dir / rundir.SUMMARY, summary)
    return summary
