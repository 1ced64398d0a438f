"""LLM metrics (loadbench.analyze.llm_metrics) on hand-made request frames with hand-computed answers; the
analyzer, the report and the CLI option around them. No Locust, no server."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loadbench.analyze import analyzer, llm_metrics
from loadbench.analyze.slo import parse_slos
from loadbench.cli import main as cli
from loadbench.drive.config import RunConfig
from loadbench.errors import UsageError
from loadbench.record import rundir
from loadbench.record.records import RequestRecord, write_requests
from loadbench.report import plots_llm, report

NAN = float("nan")
WINDOW_S = 8.0

# (ok, latency_ms, ttft_ms, input, output, source, gaps): the standard LLM window.
#   A: 5 tokens, gaps 100 200 300 200 (sum 800 = 1000 - 200); TPOT 800 / 4 = 200
#   B: 3 tokens, gaps 250 350 (sum 600 = 700 - 100);           TPOT 600 / 2 = 300
#   C: 1 token, no gap;                                          no TPOT
#   D: failed before any token
#   E: 9 tokens counted from chunks, gaps 200 x 8 (sum 1600);    TPOT 1600 / 8 = 200
ROWS: list[tuple[bool, float, float, float, float, str, list[float]]] = [
    (True, 1000.0, 200.0, 10, 5, "usage", [100.0, 200.0, 300.0, 200.0]),
    (True, 700.0, 100.0, 20, 3, "usage", [250.0, 350.0]),
    (True, 300.0, 300.0, 5, 1, "usage", []),
    (False, 50.0, NAN, NAN, NAN, "", []),
    (True, 2000.0, 400.0, 30, 9, "counted", [200.0] * 8),
]


def frame(rows: list[tuple[bool, float, float, float, float, str, list[float]]] = ROWS) -> pd.DataFrame:
    """A measured-window frame with the columns read_requests gives."""
    return pd.DataFrame(
        {
            "ok": np.array([r[0] for r in rows], dtype=np.int8),
            "latency_ms": [r[1] for r in rows],
            "ttft_ms": [r[2] for r in rows],
            "input_tokens": [float(r[3]) for r in rows],
            "output_tokens": [float(r[4]) for r in rows],
            "tokens_source": pd.Series([r[5] for r in rows], dtype="category"),
            "itl_ms": pd.Series([" ".join(f"{g:.3f}" for g in r[6]) for r in rows], dtype="string"),
        }
    )


def summarize(
    slos: list[str] | None = None, realtime: float | None = None, rows: Any = ROWS
) -> tuple[dict[str, Any], list[str]]:
    df = frame(rows)
    return llm_metrics.llm_summary(
        df, df["latency_ms"].to_numpy(), WINDOW_S, parse_slos(slos or []), realtime
    )


# --- the percentiles -----------------------------------------------------------------------------


def test_ttft_itl_tpot_e2e() -> None:
    result, _ = summarize()
    ttft = result["ttft_ms"]  # successful streams: 100 200 300 400
    assert (ttft["p50"], ttft["p90"], ttft["mean"], ttft["max"], ttft["min"]) == (
        250.0,
        370.0,
        250.0,
        400.0,
        100.0,
    )
    itl = result["itl_ms"]  # all 14 gaps: 100, 200 x 10, 250, 300, 350
    assert (itl["p50"], itl["max"], itl["min"]) == (200.0, 350.0, 100.0)
    assert itl["mean"] == round(3000.0 / 14, 3)
    assert itl["p99"] == round(float(np.percentile([100.0] + [200.0] * 10 + [250.0, 300.0, 350.0], 99)), 3)
    tpot = result["tpot_ms"]  # A 200, B 300, E 200; C has one token
    assert (tpot["p50"], tpot["mean"], tpot["max"], tpot["min"]) == (200.0, 233.333, 300.0, 200.0)
    e2e = result["e2e_ms"]  # latency of the successful LLM requests: 1000 700 300 2000
    assert (e2e["p50"], e2e["mean"], e2e["max"], e2e["min"]) == (850.0, 1000.0, 2000.0, 300.0)
    assert set(ttft) == {"p50", "p90", "p95", "p99", "p999", "max", "mean", "min"}


def test_tpot_counts_from_the_send_not_the_due_time() -> None:
    # Open loop: latency_ms counts from the due time (here 500 ms late); TTFT and TPOT from the send.
    df = frame(ROWS[:1])
    late = df.assign(latency_ms=df["latency_ms"] + 500.0)
    result, _ = llm_metrics.llm_summary(late, df["latency_ms"].to_numpy(), WINDOW_S)
    assert result["tpot_ms"]["p50"] == 200.0
    assert result["e2e_ms"]["p50"] == 1500.0
    assert result["tokens"]["per_request_output_per_s"]["p50"] == 5.0  # 4 tokens after the first in 0.8 s


def test_tokens() -> None:
    result, notices = summarize()
    tokens = result["tokens"]
    assert tokens["input_total"] == 65
    assert tokens["output_total"] == 18
    assert tokens["requests"] == 4
    assert tokens["output_per_s"] == 2.25  # 18 / 8 s
    # After the first token: A 4 / 0.8 s, B 2 / 0.6 s, E 8 / 1.6 s; C has one token (no pace after it).
    rate = tokens["per_request_output_per_s"]
    assert (rate["p50"], rate["min"], rate["max"]) == (5.0, 3.333, 5.0)
    # = 1000 / TPOT of each request (A 200, B 300, E 200 ms)
    assert rate["mean"] == round((5.0 + 1000 / 300 + 5.0) / 3, 3)
    assert tokens["source"] == "mixed"
    assert any("counted from stream chunks" in n and "1 request" in n for n in notices)


def test_token_source_usage_only_has_no_notice() -> None:
    result, notices = summarize(rows=ROWS[:3])
    assert result["tokens"]["source"] == "usage"
    assert (result["tokens"]["input_source"], result["tokens"]["output_source"]) == ("usage", "usage")
    assert notices == []


def test_unknown_input_tokens_make_the_input_total_unknown_never_0() -> None:
    # B's server sent no usage: its prompt tokens are unknown, so no total can be given.
    rows = [ROWS[0], (True, 700.0, 100.0, NAN, 3, "counted", [250.0, 350.0])]
    result, notices = summarize(rows=rows)
    tokens = result["tokens"]
    assert tokens["input_total"] is None
    assert tokens["output_total"] == 8 and tokens["output_source"] == "mixed"
    assert tokens["input_source"] == "usage"  # of the counts there are
    assert any("input tokens of 1 request(s) are unknown" in n and "--tokenizer" in n for n in notices)
    # Every count unknown: no source at all.
    result, _ = summarize(rows=rows[1:])
    assert (result["tokens"]["input_total"], result["tokens"]["input_source"]) == (None, None)


def test_input_tokens_counted_by_the_tokenizer_say_so() -> None:
    df = frame(ROWS[:2]).assign(input_tokens_source=pd.Series(["usage", "tokenizer"], dtype="category"))
    result, notices = llm_metrics.llm_summary(df, df["latency_ms"].to_numpy(), WINDOW_S)
    assert not any("unknown" in n for n in notices)
    assert result["tokens"]["input_total"] == 30
    assert result["tokens"]["input_source"] == "mixed"
    df = df.assign(input_tokens_source=pd.Series(["tokenizer", "tokenizer"], dtype="category"))
    result, _ = llm_metrics.llm_summary(df, df["latency_ms"].to_numpy(), WINDOW_S)
    assert result["tokens"]["input_source"] == "tokenizer"


def test_non_streamed_requests_with_token_counts() -> None:
    rows = [(True, 400.0, NAN, 7, 12, "usage", []), (True, 600.0, NAN, 3, 8, "usage", [])]
    result, _ = summarize(rows=rows)
    assert result["tokens"]["output_total"] == 20
    assert result["e2e_ms"]["p50"] == 500.0
    assert result["ttft_ms"]["p50"] is None and result["tpot_ms"]["p50"] is None
    assert result["itl_ms"]["max"] is None
    assert result["tokens"]["per_request_output_per_s"]["p50"] is None  # no TTFT: no decode time


def test_a_plain_run_gets_no_llm_keys() -> None:
    rows = [(True, 10.0, NAN, NAN, NAN, "", []), (False, 3.0, NAN, NAN, NAN, "", [])]
    assert summarize(rows=rows) == ({}, [])
    assert summarize(rows=rows, realtime=5.0) == ({}, [])


# --- goodput --------------------------------------------------------------------------------------


def test_goodput_with_several_per_request_slos() -> None:
    result, _ = summarize(["ttft<=300ms", "tpot<250ms", "itl<300ms"])
    # A: itl max 300 is not < 300. B: tpot 300, itl 350. C: ttft 300 <= 300, one token (tpot and
    # itl met without a value). D: failed. E: ttft 400. Only C meets all three.
    assert result["goodput_rps"] == 0.125  # 1 / 8 s
    goodput = result["goodput"]
    assert (goodput["rps"], goodput["requests"], goodput["attainment"]) == (0.125, 1, 0.2)
    ttft, tpot, itl = goodput["slos"]
    assert ttft == {
        "expr": "ttft<=300ms",
        "metric": "ttft",
        "op": "<=",
        "threshold_ms": 300.0,
        "measured": 4,
        "met": 3,
        "attainment": 0.6,
    }
    assert (tpot["measured"], tpot["met"], tpot["attainment"]) == (4, 3, 0.6)  # A, C (1 token), E
    assert (itl["measured"], itl["met"], itl["attainment"]) == (4, 2, 0.4)  # C, E


def test_goodput_e2e_and_latency_bounds() -> None:
    result, _ = summarize(["e2e<1s", "latency<=1000ms"])
    e2e, latency = result["goodput"]["slos"]
    assert e2e["met"] == 2  # B 700, C 300 (A is 1000, not < 1000; D failed)
    assert latency["met"] == 3  # A, B, C
    assert result["goodput"]["requests"] == 2


def test_goodput_without_per_request_slos_is_the_throughput() -> None:
    result, _ = summarize()
    assert result["goodput_rps"] == 0.5  # 4 successful requests / 8 s
    assert result["goodput"] == {"rps": 0.5, "requests": 4, "attainment": 0.8, "slos": []}


def test_per_request_slos_on_a_plain_run() -> None:
    rows = [(True, 10.0, NAN, NAN, NAN, "", []), (True, 30.0, NAN, NAN, NAN, "", [])]
    result, notices = summarize(["latency<20ms"], rows=rows)
    assert set(result) == {"goodput_rps", "goodput"}  # no LLM keys without LLM data
    assert result["goodput"]["requests"] == 1 and result["goodput_rps"] == 0.125
    result, notices = summarize(["ttft<1s"], rows=rows)
    assert result["goodput_rps"] == 0.0
    assert result["goodput"]["slos"][0]["measured"] == 0
    assert any("ttft<1s" in n for n in notices)


def test_streams_without_a_token_count_miss_tpot_but_not_itl() -> None:
    rows = [(True, 500.0, 100.0, NAN, NAN, "", [200.0, 200.0])]
    result, _ = summarize(["tpot<1s", "itl<1s"], rows=rows)
    tpot, itl = result["goodput"]["slos"]
    assert (tpot["measured"], tpot["met"]) == (0, 0)
    assert (itl["measured"], itl["met"]) == (1, 1)


# --- real-time ratio ------------------------------------------------------------------------------


def test_realtime_fraction_ahead() -> None:
    result, _ = summarize(realtime=5.0)  # a reader at 200 ms per token from the first token
    # A: 100 300 600 800 by 200 400 600 800 (ties ahead). B: 250 > 200. C: one chunk. E: on pace.
    assert result["llm_realtime"] == {"tokens_per_s": 5.0, "fraction_ahead": 0.75, "requests": 4}


def ahead(gaps: list[list[float]], rate: float) -> list[bool]:
    flat, counts = llm_metrics.parse_itl([" ".join(f"{g:.3f}" for g in row) for row in gaps])
    return llm_metrics.kept_ahead(flat, counts, rate).tolist()


def test_kept_ahead_boundaries() -> None:
    assert ahead([[100.0, 100.0, 100.0]], 10.0) == [True]  # exactly on pace
    assert ahead([[100.0, 100.001]], 10.0) == [False]  # 1 µs late at the second token
    assert ahead([[100.001, 99.999]], 10.0) == [False]  # late at the first, back on pace after
    assert ahead([[99.999, 100.001]], 10.0) == [True]  # early, then exactly on pace
    assert ahead([[0.0, 0.0, 299.0]], 10.0) == [True]  # a burst buys time for a later stall
    assert ahead([[150.0, 50.0]], 10.0) == [False]  # on average on pace, but behind at token 1
    assert ahead([[], [5000.0], []], 10.0) == [True, False, True]  # one chunk: nothing to wait for
    assert ahead([], 10.0) == []
    assert ahead([[1000.0 / 3] * 3], 3.0) == [True]  # 333.333 ms gaps against a 333.333... pace


def test_kept_ahead_damaged_gaps_and_bad_pace() -> None:
    flat, counts = llm_metrics.parse_itl(["10.0 x 10.0", "5.0", "-1.0"])
    assert counts.tolist() == [3, 1, 1] and math.isnan(flat[1])
    assert llm_metrics.kept_ahead(flat, counts, 10.0).tolist() == [False, True, False]
    with pytest.raises(ValueError, match="above 0"):
        llm_metrics.kept_ahead(flat, counts, 0.0)


def test_parse_itl_and_gap_helpers() -> None:
    gaps, counts = llm_metrics.parse_itl(pd.Series(["1.5 2.5", "", pd.NA, "4"], dtype="string"))
    assert gaps.tolist() == [1.5, 2.5, 4.0] and counts.tolist() == [2, 0, 0, 1]
    assert llm_metrics.gaps_so_far(gaps, counts).tolist() == [1.5, 4.0, 4.0]
    maxima = llm_metrics.max_gap(gaps, counts)
    assert maxima[0] == 2.5 and math.isnan(maxima[1]) and maxima[3] == 4.0


# --- per-second helpers of the plots --------------------------------------------------------------


def test_mean_in_flight() -> None:
    # [0.5, 2.5] and [1.0, 1.5]: second 0 holds 0.5 s of one, second 1 holds 1 + 0.5, second 2 holds 0.5.
    got = plots_llm.mean_in_flight([0.5, 1.0], [2.5, 1.5], 4)
    assert np.allclose(got, [0.5, 1.5, 0.5, 0.0])


def test_per_second_tokens_and_medians() -> None:
    assert plots_llm.per_second_tokens([0.1, 0.9, 2.0, 5.0, -1.0], [1, 2, 3, 4, 5], 3).tolist() == [3, 0, 3]
    got = plots_llm.median_per_second([0, 0, 0, 2], [1.0, 5.0, 3.0, 7.0], 3)
    assert got[0] == 3.0 and math.isnan(got[1]) and got[2] == 7.0


# --- the analyzer, the report, the CLI ------------------------------------------------------------

STARTED = 1000.0


def llm_record(start: float, row: tuple[bool, float, float, float, float, str, list[float]]) -> RequestRecord:
    ok, latency, ttft, inp, out, source, gaps = row
    extras: dict[str, Any] = {"itl_ms": gaps, "tokens_source": source}
    if not math.isnan(ttft):
        extras["ttft_ms"] = ttft
    if not math.isnan(out):
        extras["input_tokens"], extras["output_tokens"] = int(inp), int(out)
    return RequestRecord(
        start, latency, "POST /v1/chat/completions", "POST", 200 if ok else 503, 10, ok,
        "" if ok else "HTTPError: 503 Server Error: busy", extras=extras if ok else None,
    )  # fmt: skip


def make_run(tmp_path: Path, llm: bool = True, **settings: Any) -> Path:
    run = tmp_path / ("llm" if llm else "plain")
    run.mkdir()
    meta = {
        "format": 1,
        "run_id": run.name,
        "target": "http://127.0.0.1:8000",
        "scenario": "openai_chat" if llm else "json_post",
        "status": rundir.STATUS_COMPLETE,
        "started_unix_s": STARTED,
        "ended_unix_s": STARTED + 10.0,
        "settings": {"users": 2, "warmup_s": 2.0, "duration_s": 10, **settings},
    }
    rundir.write_json(run / rundir.META, meta)
    # The five standard rows in the window, one request in the warmup (excluded).
    records = [llm_record(STARTED + 1.0, ROWS[0])]
    records += [llm_record(STARTED + 2.5 + i, row) for i, row in enumerate(ROWS)]
    if not llm:
        records = [RequestRecord(r.start_unix_s, r.latency_ms, "/a", "POST", 200, 10, True) for r in records]
    write_requests(run / rundir.REQUESTS, records)
    (run / rundir.USERS).write_text("unix_s,users\n" + "".join(f"{STARTED + i:.3f},2\n" for i in range(10)))
    return run


def test_analyzer_writes_the_llm_keys(tmp_path: Path) -> None:
    slos = ["ttft<=300ms", "tpot<250ms", "itl<300ms", "goodput>0.1", "ttft_p50<300ms"]
    run = make_run(tmp_path, slos=slos, realtime_tokens_per_s=5.0)
    summary = analyzer.analyze_run(run)
    assert summary["ttft_ms"]["p50"] == 250.0
    assert summary["tpot_ms"]["max"] == 300.0
    assert summary["itl_ms"]["mean"] == round(3000.0 / 14, 3)
    assert summary["e2e_ms"]["max"] == 2000.0
    assert summary["tokens"]["output_total"] == 18 and summary["tokens"]["output_per_s"] == 2.25
    assert summary["goodput_rps"] == 0.125 and summary["goodput"]["attainment"] == 0.2
    assert summary["llm_realtime"] == {"tokens_per_s": 5.0, "fraction_ahead": 0.75, "requests": 4}
    checks = summary["slo"]["checks"]
    assert [c.get("per_request", False) for c in checks] == [True, True, True, False, False]
    assert [c["value"] for c in checks[:3]] == [0.6, 0.6, 0.4]
    assert all(c["passed"] for c in checks)  # per-request ones never fail; goodput 0.125 > 0.1
    assert summary["slo"]["passed"] is True
    assert any("counted from stream chunks" in n for n in summary["notices"])


def test_goodput_gate_fails_and_per_request_slos_alone_pass(tmp_path: Path) -> None:
    run = make_run(tmp_path, slos=["ttft<1ms", "goodput>1"])
    summary = analyzer.analyze_run(run)
    ttft, goodput = summary["slo"]["checks"]
    assert ttft["passed"] is True and ttft["value"] == 0.0
    assert goodput["passed"] is False and goodput["value"] == 0.0
    assert summary["slo"]["passed"] is False
    (tmp_path / "alone").mkdir()
    alone = analyzer.analyze_run(make_run(tmp_path / "alone", slos=["ttft<1ms"]))
    assert alone["slo"]["passed"] is True


def test_analyzer_plain_run_has_no_llm_keys(tmp_path: Path) -> None:
    summary = analyzer.analyze_run(make_run(tmp_path, llm=False, realtime_tokens_per_s=5.0))
    for key in ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms", "tokens", "goodput_rps", "goodput", "llm_realtime"):
        assert key not in summary


def test_report_has_the_llm_section_only_for_llm_runs(tmp_path: Path) -> None:
    run = make_run(tmp_path, slos=["ttft<=300ms", "goodput>0.1"], realtime_tokens_per_s=5.0)
    summary = analyzer.analyze_run(run)
    console = cli.console_summary(summary)
    assert "SLO INFO  ttft<=300ms  (met by 60.0% of requests; counted into goodput)" in console
    assert "SLO PASS  goodput>0.1" in console
    assert "TTFT p50 250 p99 397" in console and "goodput 0.4 req/s" in console
    html_path, md_path = report.render_report(run)
    page = html_path.read_text(encoding="utf-8")
    assert "<h2 id='llm'>LLM</h2>" in page
    for figure in ("plot-llm-ttft", "plot-llm-itl", "plot-llm-tokens", "plot-llm-tpot"):
        assert f'<figure id="{figure}"><img class="plot" src="data:image/png;base64,' in page
    assert "INFO <code>ttft&lt;=300ms</code>: met by 60.00 % of requests" in page
    assert "(1 of 1 checks; 1 per-request SLO(s) counted into goodput)" in page
    assert "| ttft&lt;=300ms | INFO | met by 60.00 % of requests |" in md_path.read_text(encoding="utf-8")
    assert "75.00 % of 4 streams" in page
    markdown = md_path.read_text(encoding="utf-8")
    assert "**LLM**" in markdown and "| TTFT | 250 ms |" in markdown
    assert "goodput 0.4 req/s (60.00 % of requests)" in markdown  # 3 requests / 8 s

    plain = make_run(tmp_path, llm=False)
    analyzer.analyze_run(plain)
    html_path, md_path = report.render_report(plain)
    page = html_path.read_text(encoding="utf-8")
    assert "id='llm'" not in page and "plot-llm" not in page
    assert "LLM ms" not in cli.console_summary(analyzer.analyze_run(plain))
    assert "**LLM**" not in md_path.read_text(encoding="utf-8")


def test_cli_realtime_option() -> None:
    parser = cli.build_parser()
    args, _ = parser.parse_known_args(["run", "--target", "http://x", "--realtime-tokens-per-s", "12.5"])
    assert args.realtime_tokens_per_s == 12.5
    args, _ = parser.parse_known_args(["run", "--target", "http://x"])
    assert args.realtime_tokens_per_s is None
    assert RunConfig(target="http://x").realtime_tokens_per_s is None
    for bad in ("0", "-3", "fast", "inf"):
        with pytest.raises(UsageError, match="--realtime-tokens-per-s"):
            parser.parse_known_args(["run", "--target", "http://x", "--realtime-tokens-per-s", bad])


def test_goodput_never_counts_an_empty_answer() -> None:
    # An answer that finished with 0 output tokens (streamed, or not streamed with its usage)
    # succeeded, but is no goodput, with or without per-request SLOs; a failed one neither.
    empty_rows = [
        *ROWS,
        (True, 20.0, NAN, 7, 0, "counted", []),  # a stream that finished without content
        (True, 30.0, NAN, 7, 0, "usage", []),  # not streamed, usage says 0
    ]
    for slos in ([], ["e2e<10s"]):
        result, notices = summarize(slos, rows=empty_rows)
        assert result["goodput"]["requests"] == 4, slos  # A, B, C, E: not D (failed), not the empty two
        assert result["goodput_rps"] == pytest.approx(4 / WINDOW_S)
        assert result["goodput"]["attainment"] == pytest.approx(4 / 7)
        assert any(n.startswith("2 successful request(s) answered no output token") for n in notices)
    plain, notices = summarize([])
    assert plain["goodput"]["requests"] == 4 and not any("no output token" in n for n in notices)
