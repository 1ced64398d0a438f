"""What the terminal shows of an analyzed run, and the exit code it gives (`run_exit_code`)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loadbench.cli.options import EXIT_GATE_FAILED, EXIT_INTERRUPTED, EXIT_TARGET_FAILED

if TYPE_CHECKING:
    from loadbench.analyze.analyzer import Summary


def _format_ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.3g}" if value < 100 else f"{value:,.0f}"


def console_summary(summary: Mapping[str, Any]) -> str:
    """A few lines for the terminal; the report has the rest."""
    run, req, lat = summary["run"], summary["requests"], summary["latency_ms"]
    tput = summary.get("throughput_rps")
    several = len((summary.get("targets") or {}).get("targets") or [])
    where = f"{run['target']} and {several - 1} more targets" if several > 1 else run["target"]
    lines = [
        f"{run['scenario']} against {where}: {req['total']:,} requests in {summary['window']['duration_s']:.1f} s"
        f" measured ({req['warmup_excluded']:,} in warmup excluded) · {run['status']}",
        f"  throughput {'–' if tput is None else f'{tput:,.1f}'} req/s   errors {req['errors']:,} ({req['error_rate']:.2%})",
        "  latency ms  "
        + "  ".join(f"{k} {_format_ms(lat[k])}" for k in ("p50", "p90", "p99", "p999", "max")),
    ]
    service = summary.get("service_time_ms") or {}
    schedule = summary.get("schedule")
    if schedule:
        lines.append(
            "  service ms  "
            + "  ".join(f"{k} {_format_ms(service.get(k))}" for k in ("p50", "p90", "p99", "p999", "max"))
            + "   (from the actual send)"
        )
        late = schedule.get("lateness_ms") or {}
        lines.append(
            f"  schedule    {schedule.get('achieved_send_rps') or 0:,.1f} req/s sent"
            + (f" of {schedule['requested_rps']:g} requested" if schedule.get("requested_rps") else "")
            + f"; sends late p50 {_format_ms(late.get('p50'))} p99 {_format_ms(late.get('p99'))} ms"
            + f"; {schedule.get('late_requests', 0):,} over {schedule.get('late_threshold_ms', 10):g} ms late"
        )
    ttft, tpot, tokens = (summary.get(k) or {} for k in ("ttft_ms", "tpot_ms", "tokens"))
    if ttft or tokens:
        goodput = summary.get("goodput_rps")
        lines.append(
            "  LLM ms      "
            + f"TTFT p50 {_format_ms(ttft.get('p50'))} p99 {_format_ms(ttft.get('p99'))}"
            + f"   TPOT p50 {_format_ms(tpot.get('p50'))} p99 {_format_ms(tpot.get('p99'))}"
            + f"   {tokens.get('output_per_s') or 0:,.1f} output tokens/s"
            + ("" if goodput is None else f"   goodput {goodput:,.1f} req/s")
        )
    lines += _routing_lines(summary)
    # INVALID and WARNING notices repeat validity's reasons, printed on their own lines below.
    lines += [
        f"  note: {n}" for n in summary.get("notices", []) if not n.startswith(("INVALID: ", "WARNING: "))
    ]
    validity = summary.get("validity")
    if validity and not validity["valid"]:
        lines.append("  INVALID measurement: " + "; ".join(validity["reasons"]))
    if validity and validity.get("warnings"):
        lines.append("  WARNING: " + "; ".join(validity["warnings"]))
    for check in (summary.get("slo") or {}).get("checks", []):
        value = check["value"]
        if check.get("per_request"):
            shown = (
                "not measured" if value is None else f"met by {value:.1%} of requests; counted into goodput"
            )
            lines.append(f"  SLO INFO  {check['expr']}  ({shown})")
            continue
        shown = "not measured" if value is None else f"{value:g}"
        lines.append(f"  SLO {'PASS' if check['passed'] else 'FAIL'}  {check['expr']}  (measured {shown})")
    return "\n".join(lines)


def _routing_lines(summary: Mapping[str, Any]) -> list[str]:
    """Several targets: a line per target; retries: the amplification (the report has the rest)."""
    lines = []
    targets = summary.get("targets") or {}
    rows = targets.get("targets") or []
    if rows:
        lines.append(
            f"  targets     {targets.get('policy') or '–'}, imbalance {targets.get('imbalance') or 0:.2f}"
        )
        for row in rows:
            share = row.get("share")
            lines.append(
                f"    {row['url']}  {'–' if share is None else f'{share:.1%}'} of attempts"
                f"  errors {row['errors']:,}  p50 {_format_ms(row['latency_ms'].get('p50'))}"
                f"  p99 {_format_ms(row['latency_ms'].get('p99'))} ms"
            )
    retries = summary.get("retries")
    if retries:
        amplification = retries.get("amplification")
        lines.append(
            f"  retries     {retries['attempts']:,} attempts for {retries['requests']:,} requests"
            f" (amplification {'–' if amplification is None else f'{amplification:.3f}'}):"
            f" {retries['recovered']:,} recovered, {retries['exhausted']:,} failed after retrying;"
            f" attempts failed {retries['attempt_error_rate'] or 0:.2%}, requests {retries['error_rate'] or 0:.2%}"
        )
    lines += cache_lines(summary.get("cache"))
    lines += firsts_lines(summary)
    return lines


def _ms(value: Any) -> str:
    """`_format_ms` with its unit; a bare dash for none."""
    return f"{_format_ms(value)} ms" if isinstance(value, int | float) else "–"


def firsts_lines(summary: Mapping[str, Any]) -> list[str]:
    """``--cold-start`` and ``--shared-prefix-tokens``: a line each (docs/metrics.md)."""
    lines = []
    cold = summary.get("cold_start")
    if isinstance(cold, Mapping):
        ratio = cold.get("p50_vs_steady")
        lines.append(
            f"  cold start  first request {_ms(cold.get('first_ms'))}, first {cold.get('requests')} "
            f"p50 {_ms((cold.get('latency_ms') or {}).get('p50'))}"
            f" ({'–' if ratio is None else f'{ratio:.2f}x'} the steady p50 {_ms(cold.get('steady_p50_ms'))})"
        )
    prefix = summary.get("shared_prefix")
    if isinstance(prefix, Mapping):
        first, later = prefix.get("first") or {}, prefix.get("later") or {}
        lines.append(
            f"  prefix      {prefix.get('tokens'):,} shared tokens: TTFT p50 "
            f"{_ms((first.get('ttft_ms') or {}).get('p50'))} uncached ({first.get('count')}), "
            f"{_ms((later.get('ttft_ms') or {}).get('p50'))} cached ({later.get('count')})"
        )
    return lines


def cache_lines(cache: Any) -> list[str]:
    """Payload keys or cache answers: the hit ratio, its source, a hit's speedup, the repeat share."""
    if not isinstance(cache, Mapping):
        return []
    ratio, speedup, repeats = cache.get("hit_ratio"), cache.get("speedup_p50"), cache.get("repeat_share")
    line = f"  cache       hit ratio {'–' if ratio is None else f'{ratio:.2%}'} ({cache.get('source')})"
    if speedup:  # a hit slower than a miss (a cache slower than the model) says so too
        line += (
            f", a hit {speedup:.2f}x faster at p50"
            if speedup >= 1
            else f", a hit {1 / speedup:.2f}x slower at p50"
        )
    if repeats is not None:
        line += f", repeat share {repeats:.2%}"
    return [line]


# From this many records on, `analyze_and_report` says on stderr that it reads them out of memory.
SAY_RECORDS = 1_000_000


def analyze_and_report(run_dir: Path, quiet: bool = False) -> Summary:
    """Analyze a run directory and render its report; print the console summary. ``quiet``: no
    word on how a long run's records are read (the summary is printed all the same)."""
    from loadbench.record import rundir

    # A directory that is not a run fails on its meta.json first (and at once).
    meta = rundir.read_meta(run_dir)
    from loadbench.analyze.analyzer import analyze_run
    from loadbench.analyze.bounded import open_bounded
    from loadbench.record.columnar import read_run_requests
    from loadbench.report.report import render_report

    # The records opened once, analysis and report share them: a store over them when the bounded
    # path covers the run (never in memory), else read into memory.
    store = open_bounded(run_dir, meta)
    if store is not None:
        if not quiet and store.records >= SAY_RECORDS:
            # A long run takes a while (about a second per million records): say why, at once.
            print(
                f"analyzing {store.records:,} records out of memory ({store.path.name}, DuckDB) ...",
                file=sys.stderr,
                flush=True,
            )
        with store:
            summary = analyze_run(run_dir, store=store)
            report_path, _ = render_report(run_dir, store=store)
    else:
        requests = read_run_requests(run_dir)
        summary = analyze_run(run_dir, requests)
        report_path, _ = render_report(run_dir, requests)
    print(console_summary(summary))
    print(f"report: {report_path}")
    return summary


def run_exit_code(summary: Mapping[str, Any]) -> int:
    """``loadbench run``'s exit code of an analyzed run (README, "Exit codes"): 130 interrupted;
    3 when the run failed (nothing recorded, or stopped because every request failed) or every
    measured request failed; else the SLO gates' (`gate_exit_code`)."""
    from loadbench.record import rundir

    status = summary["run"]["status"]
    if status == rundir.STATUS_INTERRUPTED:
        return EXIT_INTERRUPTED
    requests = summary.get("requests") or {}
    if status == rundir.STATUS_FAILED or (requests.get("total", 0) > 0 and requests.get("ok", 0) == 0):
        return EXIT_TARGET_FAILED
    return gate_exit_code(summary)


def gate_exit_code(summary: Mapping[str, Any]) -> int:
    """1 when an SLO failed, or when SLOs were given and the measurement is INVALID; else 0."""
    checks = summary.get("slo", {}).get("checks", [])
    if not checks:
        return 0
    validity = summary.get("validity", {"valid": True})
    return EXIT_GATE_FAILED if not summary["slo"]["passed"] or not validity.get("valid", True) else 0
