"""Sweeps: knee, capacity and cost on hand-made steps; the capacity search; the report; the CLI's
bad input; and end-to-end sweeps against a server whose capacity is known (tests/capacity_server.py).
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from capacity_server import capacity_server
from helpers import (
    SCRIPT_PAYLOADS,
    assert_inert_in_chromium,
    read_json,
    require_executable,
    run_cli,
    start_cli,
    wait_for_lines,
)

from loadbench.analyze.capacity import (
    CapacitySearch,
    analyze_sweep,
    capacity_notes,
    cost_figures,
    find_capacity,
    find_knee,
    gated_requests,
    load_text,
    step_duration,
    step_row,
)
from loadbench.analyze.slo import parse_slos
from loadbench.analyze.trust import validity
from loadbench.cli.sweep import _scenario_of
from loadbench.record import rundir
from loadbench.record.columnar import convert_csv
from loadbench.record.records import RequestRecord, write_requests
from loadbench.sweep.report import SWEEP_HTML, headline, render_sweep, render_sweep_markdown
from loadbench.sweep.sweep import achieved_rps

PAYLOAD = ["--scenario", "json_post", "--payload", '{"inputs": [[1]]}', "--no-sampler"]


def _has_rate() -> bool:
    from loadbench.cli.main import build_parser
    from loadbench.cli.sweep import _run_options

    return "--rate" in _run_options(build_parser())


needs_rate = pytest.mark.skipif(not _has_rate(), reason="`loadbench run --rate` (open loop) is not built yet")


def summary(
    tput: float | None,
    p99: float | None,
    *,
    p50: float | None = 10.0,
    error_rate: float = 0.0,
    status: str = "complete",
    gpus: int = 0,
    valid: bool | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A step's summary.json with only what a sweep reads."""
    out: dict[str, Any] = {
        "run": {"status": status, "scenario": "json_post"},
        "requests": {"total": 100, "error_rate": error_rate},
        "throughput_rps": tput,
        "request_rate_rps": tput,
        "latency_ms": {"p50": p50, "p90": p99, "p99": p99},
        "resources": {"sampled": True, "gpus": [{"index": i} for i in range(gpus)], "remote": {}},
    }
    if valid is not None:
        out["validity"] = {"valid": valid, "reasons": [] if valid else ["the generator fell behind"]}
    return out | (extra or {})


def rows(
    mode: str, steps: list[tuple[float, dict[str, Any]]], slos: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    parsed = parse_slos(list(slos))
    return [step_row(i, mode, load, s, parsed) for i, (load, s) in enumerate(steps, start=1)]


# -- steps, knee, capacity, cost --------------------------------------------------------------


def test_step_row_rate_mode_passes_and_fails_for_each_reason() -> None:
    r = rows(
        "rate",
        [
            (100, summary(99.0, 20.0)),  # keeps up, meets the SLO
            (100, summary(94.0, 20.0)),  # below 95 % of offered
            (100, summary(100.0, 80.0)),  # SLO broken
            (100, summary(100.0, 20.0, valid=False)),  # invalid
            (100, summary(100.0, 20.0, status="interrupted")),
            (100, summary(100.0, None)),  # p99 not measured
        ],
        slos=("p99<50ms",),
    )
    assert [x["passed"] for x in r] == [True, False, False, False, False, False]
    assert r[0]["achieved_ratio"] == 0.99 and r[0]["why"] == []
    assert "achieved 94% of the offered rate (needs 95%)" in r[1]["why"]
    assert r[2]["why"] == ["SLO p99<50ms failed: p99 = 80 ms"]
    assert r[3]["why"] == ["invalid run: the generator fell behind"] and r[3]["valid"] is False
    assert r[4]["why"] == ["the step is interrupted"]
    assert r[5]["why"] == ["SLO p99<50ms failed: p99 not measured"]


def test_step_row_users_mode_and_missing_summary() -> None:
    r = rows("users", [(4, summary(50.0, 20.0, extra={"ttft_ms": {"p50": 100.0, "p99": 300.0}}))])[0]
    assert r["passed"] and r["unit"] == "users" and r["achieved_ratio"] is None
    assert r["ttft_p50_ms"] == 100.0 and r["ttft_p99_ms"] == 300.0
    assert "tpot_p50_ms" not in r and "service_p99_ms" not in r  # absent keys are left out
    none = step_row(2, "rate", 10, None, [])
    assert none["passed"] is False and none["status"] == "no summary"


def test_knee_rate_mode_throughput_and_p99_rules() -> None:
    steps = [
        (10, summary(10.0, 20.0)),
        (20, summary(19.8, 30.0)),
        (40, summary(37.0, 35.0)),
        (80, summary(40, 900)),
    ]
    knee = find_knee(rows("rate", steps), "rate")
    assert knee is not None and knee["step"] == 3 and knee["offered"] == 40
    assert "below 95% of the offered 40" in knee["reasons"][0]
    # p50 above twice the lowest load's (20 ms), everything else keeping up; p99 alone does not count:
    steps = [
        (10, summary(10.0, 20.0, p50=20.0)),
        (20, summary(20.0, 400.0, p50=40.0)),
        (40, summary(40.0, 40.1, p50=40.1)),
    ]
    knee = find_knee(rows("rate", steps), "rate")
    assert knee is not None and knee["step"] == 3 and "above 2x" in knee["reasons"][0]
    assert find_knee(rows("rate", steps[:2]), "rate") is None  # exactly 2x is not above


def test_knee_users_mode_growth_rule_and_load_order() -> None:
    # Given out of order (a search visits loads out of order): sorted by load first.
    steps = [(4, summary(96.0, 40.0)), (1, summary(50.0, 20.0)), (2, summary(95.0, 21.0))]
    knee = find_knee(rows("users", steps), "users")
    assert knee is not None and knee["step"] == 1 and knee["offered"] == 4
    assert any("grew less than 5%" in r for r in knee["reasons"])
    assert find_knee([], "users") is None


def test_capacity_is_the_highest_passed_load() -> None:
    steps = [(10, summary(10.0, 20.0)), (20, summary(20.0, 20.0)), (40, summary(30.0, 20.0))]
    cap = find_capacity(rows("rate", steps), "rate")
    assert cap is not None and cap["offered"] == 20 and cap["rps"] == 20 and cap["step"] == 2
    # Users mode: capacity in rps is the step's achieved throughput.
    steps = [(1, summary(50.0, 20.0)), (2, summary(95.0, 25.0)), (4, summary(97.0, 80.0))]
    cap = find_capacity(rows("users", steps, ("p99<50ms",)), "users")
    assert cap is not None and cap["offered"] == 2 and cap["rps"] == 95.0
    assert find_capacity(rows("rate", [(10, summary(1.0, 20.0))]), "rate") is None


def test_capacity_notes_flag_a_failed_step_below_capacity() -> None:
    steps = [(10, summary(10.0, 20.0)), (20, summary(20.0, 90.0)), (40, summary(40.0, 20.0))]
    r = rows("rate", steps, ("p99<50ms",))
    cap = find_capacity(r, "rate")
    assert cap is not None and cap["offered"] == 40
    assert "not monotonic" in capacity_notes(r, cap)[0]


def test_cost_figures() -> None:
    cap = {"rps": 100.0}
    out = cost_figures(cap, 2, 3.0)
    # 3 USD/GPU-h × 2 GPUs / (100 req/s × 3600 s/h) × 1e6
    assert out["cost_per_million_requests_usd"] == pytest.approx(16.6667, abs=1e-4)
    assert out["capacity_per_gpu_rps"] == 50.0 and out["cost_note"] is None
    assert cost_figures(cap, 0, 3.0)["cost_note"] == "n/a: no GPU samples"
    assert cost_figures(cap, 0, 3.0)["capacity_per_gpu_rps"] is None
    none = cost_figures(cap, 1, None)
    assert none["capacity_per_gpu_rps"] == 100.0 and none["cost_note"] == "n/a: no --gpu-hour-cost given"
    assert cost_figures(None, 1, 3.0)["cost_note"] == "n/a: no capacity (no step passed)"


def test_analyze_sweep_takes_gpus_from_the_capacity_step() -> None:
    steps = [(10, summary(10.0, 20.0, gpus=2)), (20, summary(12.0, 20.0, gpus=2))]
    out = analyze_sweep(rows("rate", steps), "rate", 2.0)
    assert out["capacity"]["offered"] == 10 and out["gpus"] == 2
    assert out["capacity_per_gpu_rps"] == 5.0
    assert out["cost_per_million_requests_usd"] == pytest.approx(2.0 * 2 / (10 * 3600) * 1e6, abs=1e-3)
    assert out["knee"]["offered"] == 20


@pytest.mark.parametrize("parquet", [False, True], ids=["csv", "parquet"])
def test_achieved_rps_counts_completions_inside_the_window(tmp_path: Path, parquet: bool) -> None:
    def record(start: float, latency_ms: float, ok: bool = True, due: float | None = None) -> RequestRecord:
        return RequestRecord(start, latency_ms, "/x", "POST", 200 if ok else 500, 0, ok, intended_unix_s=due)

    run = tmp_path / "step"
    run.mkdir()
    write_requests(
        run / rundir.REQUESTS,
        [
            record(99.5, 1000.0),  # started in the warmup, completed at 100.5: counts
            record(100.5, 100.0),
            record(101.0, 100.0, ok=False),  # a failure does not count
            record(101.1, 100.0, due=101.0),  # open loop, sent 0.1 s late: completed at 101.2
            record(101.5, 400.0, due=101.0),  # sent 0.5 s late: completed at 101.9, after the window
            record(102.0, 100.0),
            record(109.0, 5000.0),  # drained after the load stopped
        ],
    )
    if parquet:
        convert_csv(run / rundir.REQUESTS, run / rundir.REQUESTS_PARQUET)
        (run / rundir.REQUESTS).unlink()

    def achieved(start: float, end: float) -> float | None:
        return achieved_rps(run, {"window": {"start_unix_s": start, "end_unix_s": end}})

    assert achieved(100.0, 110.0) == 0.5  # 5 completions in 10 s
    # Completion is the send plus the latency from it, not the due time plus that latency: the
    # request due at 101.0 but sent at 101.5 completed at 101.9, outside 100..101.8.
    assert achieved(100.0, 101.8) == round(3 / 1.8, 3)
    assert achieved(100.0, 100.0) is None
    assert achieved_rps(run, {}) is None
    assert achieved_rps(tmp_path / "missing", {"window": {"start_unix_s": 1.0, "end_unix_s": 2.0}}) is None


def test_achieved_rps_overrides_the_summary_throughput() -> None:
    row = step_row(1, "rate", 135, summary(134.9, 20.0), [], achieved_rps=99.0)
    assert row["achieved_rps"] == 99.0 and row["throughput_rps"] == 134.9
    assert row["achieved_ratio"] == round(99 / 135, 4) and not row["passed"]


def test_load_text() -> None:
    assert load_text(12.5, "rate") == "12.5 rps"
    assert load_text(1, "users") == "1 user" and load_text(8, "users") == "8 users"


# -- the capacity search ----------------------------------------------------------------------


def _search(search: CapacitySearch, capacity: float) -> list[float]:
    loads = []
    while (load := search.next_load()) is not None:
        loads.append(load)
        search.record(load, load <= capacity)
    return loads


def test_search_doubles_then_bisects_to_the_resolution() -> None:
    search = CapacitySearch("rate", 10, resolution=0.1, max_steps=12)
    assert _search(search, 100) == [10, 20, 40, 80, 160, 120, 100, 110]
    assert search.lo == 100 and search.hi == 110 and search.hi / search.lo <= 1.1


def test_search_halves_when_the_first_step_fails_and_stops_at_max_steps() -> None:
    assert _search(CapacitySearch("rate", 100, resolution=0.5), 30) == [100, 50, 25, 37.5]
    assert len(_search(CapacitySearch("rate", 1, resolution=0.01, max_steps=5), 1000)) == 5


def test_search_users_are_whole_numbers() -> None:
    assert _search(CapacitySearch("users", 1, resolution=0.1), 5) == [1, 2, 4, 8, 6, 5]
    assert _search(CapacitySearch("users", 1), 0) == [1]  # nothing below one user
    assert _search(CapacitySearch("users", 8), 3) == [8, 4, 2, 3]


# -- too few requests to judge a gate ---------------------------------------------------------


def thin(p99: float, ci: list[float], ok: int = 30, extra: list[str] | None = None) -> dict[str, Any]:
    """A keeping-up step whose p99, gated, rests on ``ok`` successful requests (trust's own reason)."""
    out = summary(12.5, p99, extra={"latency_ci_ms": {"p99": ci}, "window": {"duration_s": 2.4}})
    out["requests"]["ok"] = ok
    out["validity"] = validity(out, "open", ["p99"])
    out["validity"]["reasons"] += extra or []
    out["validity"]["valid"] = not out["validity"]["reasons"]
    return out


def test_a_step_too_short_for_its_gated_percentile_cannot_be_judged() -> None:
    r = rows(
        "rate",
        [
            (12.5, thin(25.0, [9.0, 25.0])),  # p99 over the gate, but its interval reaches below it
            (12.5, thin(8.0, [5.0, 8.0])),  # p99 under the gate: as unproven
            (12.5, thin(40.0, [21.0, 40.0])),  # the whole interval above 20 ms: failed however few
            (12.5, thin(8.0, [5.0, 8.0], extra=["the measured window lasted 0.5 s, under 1 s"])),
        ],
        slos=("p99<20ms",),
    )
    assert [x["verdict"] for x in r] == ["cannot judge", "cannot judge", "fail", "fail"]
    assert not any(x["passed"] for x in r)
    assert r[0]["why"][0].startswith("cannot judge: SLO gates on p99, which 30 successful requests")
    assert "cannot judge SLO p99<20ms: p99 = 25 ms on too few requests" in r[0]["why"]
    assert r[2]["why"] == ["SLO p99<20ms failed: p99 = 40 ms"]
    assert r[3]["why"] == ["invalid run: the measured window lasted 0.5 s, under 1 s"]
    # Not a failure below the capacity either.
    passed = step_row(5, "rate", 20, summary(20.0, 10.0), parse_slos(["p99<20ms"]))
    assert capacity_notes([*r[:2], passed], find_capacity([*r[:2], passed], "rate")) == []


def test_search_stops_at_a_step_it_cannot_judge_instead_of_halving() -> None:
    search = CapacitySearch("rate", 200)
    assert search.next_load() == 200
    search.record(200, None)
    assert search.next_load() is None and search.unjudged == 200 and search.hi is None


def test_step_duration_fits_the_gated_percentiles() -> None:
    assert gated_requests(parse_slos(["p99<20ms", "error_rate<1%"])) == 1000
    assert gated_requests(parse_slos(["p90<1s", "ttft_p99<2s"])) == 1000
    assert gated_requests(parse_slos(["error_rate<1%", "ttft<1s"])) == 0
    # 1,000 requests and 10 % to spare at 12.5 rps: 88 s measured, after the 1 s warmup.
    assert step_duration(3.0, 1.0, 12.5, 1000) == 89
    assert step_duration(30.0, 2.0, 200.0, 1000) == 30.0  # long enough already
    assert step_duration(3.0, 1.0, None, 1000) == 3.0  # users mode before any throughput is known


def test_scenario_of_reads_the_steps_scenario_option() -> None:
    assert _scenario_of(["--scenario", "json_post", "--path", "/x"]) == "json_post"
    assert _scenario_of(["--scenario=openai_chat"]) == "openai_chat"
    assert _scenario_of(["-sjson_post"]) == "json_post"
    assert _scenario_of(["-s", "a.py", "--scenario", "b.py"]) == "b.py"
    assert _scenario_of(["--header", "X: 1"]) is None


# -- the report -------------------------------------------------------------------------------


def _sweep(mode: str = "rate", llm: bool = False) -> dict[str, Any]:
    extra = {"ttft_ms": {"p50": 100.0, "p99": 250.0}, "tpot_ms": {"p50": 20.0, "p99": 30.0}} if llm else None
    steps = [
        (10, summary(10.0, 20.0, gpus=1, extra=extra)),
        (20, summary(19.9, 22.0, gpus=1, extra=extra)),
        (40, summary(30.0, 95.0, error_rate=0.02, gpus=1, extra=extra)),
    ]
    r = rows(mode, steps, ("p99<50ms",))
    for i, row in enumerate(r, start=1):
        row["run_dir"] = f"step-{i:02d}-{mode}-x"
    return {
        "schema": 1,
        "kind": "sweep",
        "status": "complete",
        "scenario": "json_post",
        "settings": {
            "target": "http://127.0.0.1:1/<script>",
            "mode": mode,
            "slos": ["p99<50ms"],
            "step_duration_s": 4,
            "warmup_s": 1,
        },
        "steps": r,
        **analyze_sweep(r, mode, 2.5),
    }


def test_render_sweep_writes_three_self_contained_files(tmp_path: Path) -> None:
    paths = render_sweep(_sweep(llm=True), tmp_path)
    assert [p.name for p in paths] == ["sweep.json", "sweep.md", "sweep.html"]
    html = (tmp_path / SWEEP_HTML).read_text(encoding="utf-8")
    for figure in ("plot-curve", "plot-llm-curve", "plot-achieved", "plot-errors"):
        assert f'id="{figure}"' in html
    assert "<script>" not in html and "&lt;script&gt;" in html  # the target is data, not markup
    assert "http://" not in html.replace("http://127.0.0.1:1/", "")  # nothing to fetch
    assert "href='./step-01-rate-x/report.html'" in html
    assert read_json(paths[0])["capacity"]["offered"] == 20


def test_sweep_page_keeps_server_and_user_text_inert_in_chromium(tmp_path: Path) -> None:
    browser = require_executable("chromium", "chromium")
    p = SCRIPT_PAYLOADS
    # What the steps' summaries say (status, scenario, validity reasons) reaches each step's "why"
    # through `step_row`; the target and the run options are the user's words.
    steps = [
        (10, summary(9.9, 20.0)),
        (20, summary(19.8, 22.0, status=p[1], valid=False)),
        (40, summary(39.6, 95.0, status=p[2])),
    ]
    steps[1][1]["validity"]["reasons"] = [p[4]]
    for _, step in steps:
        step["run"]["scenario"] = p[3]
    r = rows("rate", steps, ("p99<50ms",))
    for i, row in enumerate(r, start=1):
        row["run_dir"] = f"step-{i:02d}-rate-x"
    why = [w for row in r for w in row["why"]]
    assert all(any(x in w for w in why) for x in (p[1], p[2], p[4]))
    sweep = {
        "schema": 1,
        "kind": "sweep",
        "status": p[6],
        "started_at": p[7],
        "ended_at": p[8],
        "scenario": p[3],
        "settings": {
            "target": f"http://127.0.0.1:1/{p[8]}",
            "mode": "rate",
            "slos": ["p99<50ms"],
            "step_duration_s": 4,
            "warmup_s": 1,
            "run_args": ["--header", f"X-Model: {p[0]}", "--payload", p[5]],
        },
        "steps": r,
        **analyze_sweep(r, "rate", 2.5),
    }
    _, _, html_path = render_sweep(sweep, tmp_path)
    shown = [*why, *sweep["notes"], sweep["settings"]["target"], " ".join(sweep["settings"]["run_args"])]
    shown += [p[3], f"sweep {p[6]}", p[7], p[8]]
    assert all(any(x in text for text in shown) for x in p)
    dom = assert_inert_in_chromium(
        html_path, browser, tmp_path / "profile", shown, title_prefix="loadbench sweep: "
    )
    assert sweep["settings"]["target"] in dom.title


def test_report_without_llm_keys_has_no_token_plot(tmp_path: Path) -> None:
    render_sweep(_sweep(), tmp_path)
    assert 'id="plot-llm-curve"' not in (tmp_path / SWEEP_HTML).read_text(encoding="utf-8")


def test_markdown_headline_and_table() -> None:
    sweep = _sweep()
    md = render_sweep_markdown(sweep)
    first = md.splitlines()[0]
    assert first.startswith("**Capacity: 20 rps (p99 22.0 ms; meets p99<50ms) · knee at 40 rps")
    assert "20.0 req/s per GPU" in first and "per million requests" in first
    assert "| 3 | 40 rps | 30.0 req/s | 75% |" in md
    assert headline(_sweep("users")).startswith("Capacity: 20 users = 19.9 req/s")


# -- the command line -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--demo"], "one of the arguments --rates --concurrency --find-capacity is required"),
        (["--demo", "--rates", "1", "--concurrency", "2"], "not allowed with argument"),
        (["--demo", "--rates", "0,1"], "expected comma-separated rates in requests/s > 0"),
        (["--demo", "--rates", "a,b"], "expected comma-separated rates"),
        (["--demo", "--concurrency", "1.5"], "whole numbers of users"),
        (["--demo", "--find-capacity", "users"], "--find-capacity needs at least one --slo"),
        (["--demo", "--concurrency", "1", "--slo", "p98<3ms"], "unknown metric 'p98'"),
        (["--demo", "--concurrency", "1", "--users", "4"], "--users is set by the sweep for every step"),
        (["--demo", "--concurrency", "1", "-d", "5s"], "-d is set by the sweep"),
        (
            ["--demo", "--concurrency", "1", "--step-duration", "1s"],
            "--step-duration must be longer than --warmup",
        ),
        (["--target", "ftp://x", "--concurrency", "1"], "is not an http:// or https:// URL"),
        (["--demo", "--concurrency", "1", "--step-duration", "soon"], "argument --step-duration"),
        (["--demo", "--find-capacity", "users", "--slo", "p99<1s", "--resolution", "0"], "--resolution"),
        (["--demo", "--concurrency", "1", "--gpu-hour-cost", "-1"], "--gpu-hour-cost"),
    ],
)
def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "sweep"
    result = run_cli("sweep", *args, "--out", str(out), timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not out.exists()


def test_help_teaches() -> None:
    result = run_cli("sweep", "--help", timeout=60)
    assert result.returncode == 0
    for text in (
        "--rates 50,100,200,400",
        "--find-capacity",
        "Capacity = the highest offered load",
        "Exit codes",
    ):
        assert text in result.stdout


def test_a_step_that_cannot_run_aborts_with_its_error(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    with capacity_server() as (url, _):
        result = run_cli(
            "sweep", "--target", url, "--concurrency", "1,2", "--out", str(out), "--scenario", "json_post"
        )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "loadbench: error: sweep aborted at step 1 (1 user): scenario json_post: this scenario needs a "
        "request body: give --payload JSON or --data FILE.jsonl"
    ]
    assert not out.exists()


# -- end to end against a server of known capacity (2 slots × 20 ms = 100 req/s) --------------

STEP = ["--step-duration", "3s", "--warmup", "1s"]


@pytest.mark.e2e
def test_concurrency_sweep_and_ctrl_c_still_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    with capacity_server() as (url, server):  # 2 slots × 20 ms = 100 req/s
        process = start_cli(
            # 20 s steps: on a machine loaded four times over, step 2 must still be running when the
            # Ctrl-C comes (a 10 s sweep once ended, all three steps done, before the test sent it).
            "sweep", "--target", url, "--concurrency", "2,4,8", "--step-duration", "20s", "--warmup", "1s",
            "--slo", "p50<200ms", "--out", str(out), *PAYLOAD,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (out / "step-02-users-4" / "requests.csv").is_file():
            time.sleep(0.1)
        wait_for_lines(out / "step-02-users-4" / "requests.csv", 11)  # ten records: into its load
        assert process.poll() is None, "the sweep ended before the Ctrl-C"
        process.send_signal(signal.SIGINT)
        try:
            stdout, stderr = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 130, stderr
    sweep = read_json(out / "sweep.json")
    assert sweep["status"] == "interrupted"
    assert [s["status"] for s in sweep["steps"]] == ["complete", "interrupted"]
    assert [s["run_dir"] for s in sweep["steps"]] == ["step-01-users-2", "step-02-users-4"]
    for step in sweep["steps"]:
        assert (out / step["run_dir"] / "report.html").is_file()
    # 2 users keep both slots busy (p50 ~20 ms: the SLO's 10x margin holds on a loaded machine);
    # the interrupted step proves nothing. The server can serve no more than its capacity.
    assert sweep["steps"][0]["passed"], sweep["steps"][0]["why"]
    assert sweep["capacity"]["offered"] == 2
    assert 0 < sweep["capacity"]["rps"] <= 1.05 * server.capacity_rps
    assert sweep["cost_note"] == "n/a: no GPU samples"
    lines = stdout.splitlines()
    assert lines[1].startswith("loadbench: step  1  2 users") and lines[1].endswith("pass"), lines
    assert lines[-4].startswith("Capacity: 2 users = "), lines
    assert (out / "sweep.html").is_file() and (out / "sweep.md").is_file()
    assert "sweep interrupted" in stderr


@pytest.mark.e2e
@needs_rate
def test_rate_sweep_finds_the_capacity_within_one_step(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    with capacity_server(slots=2, service_ms=40) as (url, server):  # 50 req/s
        result = run_cli(
            "sweep", "--target", url, "--rates", "40,70", *STEP, "--arrival", "constant",
            "--slo", "p50<100ms", "--slo", "error_rate<1%", "--out", str(out), *PAYLOAD,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    sweep = read_json(out / "sweep.json")
    why = [(s["offered"], s["why"]) for s in sweep["steps"]]
    # 40 keeps up; 70 cannot (at most 50 / 70 = 71 % achieved, and the queue grows).
    assert sweep["capacity"]["offered"] == 40, why
    assert sweep["knee"]["offered"] == 70
    assert sweep["steps"][1]["achieved_rps"] <= 1.05 * server.capacity_rps
    assert sweep["steps"][1]["achieved_ratio"] < 0.95
    assert [s["run_dir"] for s in sweep["steps"]] == ["step-01-rate-40", "step-02-rate-70"]
    # Each step is a run of the default format: its achieved throughput was counted in Parquet.
    assert all((out / s["run_dir"] / "requests.parquet").is_file() for s in sweep["steps"])
    assert "Capacity: 40 rps" in result.stdout


@pytest.mark.e2e
@needs_rate
def test_find_capacity_searches_to_the_true_capacity(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    with capacity_server(slots=2, service_ms=40) as (url, _):  # 50 req/s
        result = run_cli(
            "sweep", "--target", url, "--find-capacity", "--start-rate", "40", "--resolution", "0.5",
            *STEP, "--arrival", "constant", "--slo", "p50<100ms", "--out", str(out), *PAYLOAD,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    sweep = read_json(out / "sweep.json")
    why = [(s["offered"], s["why"]) for s in sweep["steps"]]
    # Doubling until a step fails (80), then bisecting: 60 fails, and 60 / 40 <= 1 + 0.5 ends it.
    assert [s["offered"] for s in sweep["steps"]] == [40, 80, 60], why
    assert sweep["capacity"]["offered"] == 40, why  # one resolution step below the true 50
    assert sweep["settings"]["find_capacity"] is True


@pytest.mark.e2e
def test_demo_sweep_sends_the_demos_rows_like_run_demo(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    # A paced demo (2 ms a request): the rows it sends are the subject, not the load.
    result = run_cli(
        "sweep", "--demo", "--demo-latency-ms", "2", "--scenario", "json_post", "--concurrency", "1",
        "--step-duration", "1s", "--warmup", "0s", "--out", str(out), "--no-sampler",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    step = read_json(out / "sweep.json")["steps"][0]
    assert step["status"] == "complete" and step["error_rate"] == 0.0, step
    assert "--data" in read_json(out / "sweep.json")["settings"]["run_args"]


@pytest.mark.e2e
@needs_rate
def test_rate_steps_are_lengthened_to_what_the_gated_percentile_needs(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    with capacity_server(slots=2, service_ms=20) as (url, _):  # 100 req/s
        # Constant arrivals: a Poisson schedule could send fewer than the 100 the step is sized for.
        result = run_cli(
            "sweep", "--target", url, "--rates", "40", "--step-duration", "2s", "--warmup", "1s",
            "--arrival", "constant", "--slo", "p90<200ms", "--out", str(out), *PAYLOAD,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    step = read_json(out / "sweep.json")["steps"][0]
    # p90 needs 100 successful requests: 110 at 40 rps is 2.75 s, so 3 s measured after the 1 s warmup.
    assert step["duration_s"] == 4 and step["verdict"] == "pass", step["why"]
    assert "the --slo percentiles need 100 successful requests, about 40 req/s: this step runs 4 s" in (
        result.stdout
    )


@pytest.mark.e2e
def test_a_users_step_too_short_to_judge_runs_again_lengthened(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    with capacity_server(slots=1, service_ms=20) as (url, _):  # 1 user: at most 50 req/s
        result = run_cli(
            "sweep", "--target", url, "--find-capacity", "users", "--max-steps", "1", "--step-duration",
            "2.5s", "--warmup", "1s", "--slo", "p90<500ms", "--out", str(out), *PAYLOAD,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    steps = read_json(out / "sweep.json")["steps"]
    # 1.5 s measured (clear of the 1 s a valid window needs) at no more than 50 req/s, the
    # server's capacity: under the 100 requests p90 needs, however fast the machine; then 1 user
    # again, lengthened to 110 at the measured rate (whole seconds: at 50 req/s or less, 3 s
    # measured or more, after the 1 s warmup).
    assert [s["offered"] for s in steps] == [1, 1], [s["why"] for s in steps]
    assert steps[0]["verdict"] == "cannot judge" and steps[1]["verdict"] == "pass", steps[1]["why"]
    assert steps[1]["duration_s"] >= 4
    assert "CANNOT JUDGE" in result.stdout
