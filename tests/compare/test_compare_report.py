"""Tests of loadbench.compare.report: hand-built compare results and synthetic analyzed runs."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from helpers import SCRIPT_PAYLOADS, assert_inert_in_chromium, read_json, require_executable, run_cli
from test_history import START, make_run, payload_run, payload_texts

from loadbench.compare import html as compare_html
from loadbench.compare import report as compare_report
from loadbench.compare.rundata import load_run
from loadbench.record import rundir
from loadbench.record.records import read_requests
from loadbench.record.series import read_samples

XSS = "<script>x</script>"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class FakeRun:
    """The fields of `loadbench.compare.rundata.RunData` the renderer reads."""

    path: Path
    meta: dict[str, Any]
    summary: dict[str, Any]
    latency_ms: npt.NDArray[np.float64]
    timeseries: pd.DataFrame
    samples: pd.DataFrame


def load(path: Path) -> FakeRun:
    meta = rundir.read_json(path / rundir.META)
    summary = rundir.read_json(path / rundir.SUMMARY)
    requests = read_requests(path / rundir.REQUESTS)
    window = float(summary["window"]["start_unix_s"])
    keep = (requests["start_unix_s"] >= window) & (requests["ok"] == 1)
    return FakeRun(
        path,
        meta,
        summary,
        requests.loc[keep, "latency_ms"].to_numpy(dtype=float),
        pd.read_csv(path / rundir.TIMESERIES),
        read_samples(path / rundir.SAMPLES),
    )


def metric(
    label: str, unit: str, base: float, cand: float, ci: list[float] | None, verdict: str
) -> dict[str, Any]:
    delta = cand - base
    return {
        "label": label,
        "unit": unit,
        "direction": "higher" if unit == "req/s" else "lower",
        "base": base,
        "candidate": cand,
        "delta": delta,
        "delta_pct": delta / base * 100 if base else None,
        "ci": ci,
        "verdict": verdict,
    }


def make_result(
    passed: bool = False, run_id: str = "base-run", scenario: str = "json_post"
) -> dict[str, Any]:
    failed = (
        []
        if passed
        else [
            {
                "rule": "p99>+10%",
                "metric": "latency_ms.p99",
                "delta": 10.0,
                "delta_pct": 100.0,
                "ci": [9.0, 11.0],
            }
        ]
    )
    return {
        "passed": passed,
        "failed_rules": failed,
        "warnings": [f"scenarios differ: {scenario} vs json_post"],
        "base": {"path": f"reports/{run_id}", "id": run_id, "scenario": scenario},
        "candidate": {"path": "reports/cand-run", "id": "cand-run", "scenario": "json_post"},
        "metrics": {
            "latency_ms.p50": metric("latency p50", "ms", 10.0, 20.0, [9.5, 10.5], "worse"),
            "latency_ms.p99": metric(
                "latency p99", "ms", 12.0, 24.0, [9.0, 11.0], "worse" if not passed else "same"
            ),
            "throughput_rps": metric("throughput", "req/s", 20.0, 20.0, [-0.5, 0.5], "same"),
            "requests.error_rate": metric("error rate", "fraction", 0.01, 0.005, [-0.008, -0.002], "better"),
            "resources.gpus.0.util_mean": metric("GPU 0 utilization (mean)", "%", 70.0, 71.0, None, "same"),
        },
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[FakeRun]:
    root = tmp_path_factory.mktemp("runs")
    base = make_run(root, "base-run", START, 10.0, seed=1, samples=True)
    cand = make_run(root, "cand-run", START + 60, 20.0, seed=2, samples=True)
    extra = make_run(root, "extra-run", START + 120, 15.0, seed=3)
    return [load(base), load(cand), load(extra)]


def pngs(page: str) -> list[bytes]:
    return [
        base64.b64decode(m)
        for m in re.findall(r'<img class="plot" src="data:image/png;base64,([^"]+)"', page)
    ]


def test_markdown_verdict_table_and_gates(tmp_path: Path, runs: list[FakeRun]) -> None:
    result = make_result()
    json_path, md_path, html_path = compare_report.render_compare(result, runs[:2], tmp_path / "cmp")
    assert [p.name for p in (json_path, md_path, html_path)] == ["compare.json", "compare.md", "compare.html"]
    md = md_path.read_text(encoding="utf-8")
    first = md.splitlines()[0]
    assert first.startswith("**loadbench compare: ❌ worse**")
    assert "2 metrics worse, 1 better, 2 same" in first
    assert "1 gate failed: p99&gt;+10%" in first  # rule text is escaped for Markdown, renders as p99>+10%
    assert "> - ⚠️ scenarios differ" in md
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert table[0] == "| metric | base | candidate | Δ | Δ% | 99.5% CI | verdict |"
    for m in result["metrics"].values():
        assert any(line.startswith(f"| {m['label']} |") for line in table), m["label"]
    p50 = next(line for line in table if line.startswith("| latency p50 |"))
    assert (
        "10.0 ms" in p50
        and "20.0 ms" in p50
        and "+10.0 ms" in p50
        and "+100.0 %" in p50
        and "🔴 worse" in p50
    )
    err = next(line for line in table if line.startswith("| error rate |"))
    assert "1.00 %" in err and "-0.50 pp" in err and "🟢 better" in err
    assert "| throughput | 20.0 req/s | 20.0 req/s |" in md and "⚪ same" in md
    assert "**Failed gates**" in md
    assert json.loads(json_path.read_text(encoding="utf-8")) == result


def test_markdown_passed(tmp_path: Path, runs: list[FakeRun]) -> None:
    result = make_result(passed=True)
    for m in result["metrics"].values():
        m["verdict"] = "same"
    _, md_path, html_path = compare_report.render_compare(result, runs[:2], tmp_path)
    first = md_path.read_text(encoding="utf-8").splitlines()[0]
    assert "✅ no significant regression" in first and "gate" not in first
    assert "class='banner ok'" in html_path.read_text(encoding="utf-8")


def test_html_plots_settings_and_metrics(tmp_path: Path, runs: list[FakeRun]) -> None:
    result = make_result()
    _, _, html_path = compare_report.render_compare(result, runs, tmp_path)
    page = html_path.read_text(encoding="utf-8")
    images = pngs(page)
    assert len(images) == 4 and all(png.startswith(PNG_SIGNATURE) for png in images)
    for key in ("plot-percentiles", "plot-cdf", "plot-throughput", "plot-resources"):
        assert f'<figure id="{key}">' in page
    assert "class='banner bad'" in page
    assert "<td class='worse'>" in page and "<td class='better'>" in page
    for m in result["metrics"].values():
        assert f"{m['label']}<br>" in page
    for run_id in ("base-run", "cand-run", "extra-run"):
        assert run_id in page
    assert "Test CPU" in page and "closed loop" in page
    assert "p99&gt;+10%" in page
    assert not re.search(r"(src|href)=['\"]https?:", page)


def test_html_without_samples_skips_resources(tmp_path: Path, runs: list[FakeRun]) -> None:
    bare = [
        FakeRun(r.path, r.meta, r.summary, r.latency_ms, r.timeseries, pd.DataFrame({"unix_s": []}))
        for r in runs[:2]
    ]
    _, _, html_path = compare_report.render_compare(make_result(), bare, tmp_path)
    page = html_path.read_text(encoding="utf-8")
    assert len(pngs(page)) == 3 and "plot-resources" not in page


def test_escapes_server_text(tmp_path: Path, runs: list[FakeRun]) -> None:
    evil = runs[0]
    meta = {**evil.meta, "scenario": XSS, "run_id": f"id{XSS}", "target": f"http://x/{XSS}"}
    summary = {**evil.summary, "resources": {"gpus": [{"index": 0, "name": XSS}]}}
    hostile = [FakeRun(evil.path, meta, summary, evil.latency_ms, evil.timeseries, evil.samples), runs[1]]
    result = make_result(run_id=f"id{XSS}", scenario=XSS)
    result["failed_rules"][0]["rule"] = f"p99>+10%{XSS}"
    _, md_path, html_path = compare_report.render_compare(result, hostile, tmp_path)
    for text in (md_path.read_text(encoding="utf-8"), html_path.read_text(encoding="utf-8")):
        assert XSS not in text
        assert "&lt;script&gt;x&lt;/script&gt;" in text


def test_compare_page_keeps_run_text_inert_in_chromium(tmp_path: Path) -> None:
    browser = require_executable("chromium", "chromium")
    texts = payload_texts()
    base = payload_run(tmp_path / "reports", "base", START, texts, seed=1)
    cand = payload_run(tmp_path / "reports", "cand", START + 60, texts, seed=2)
    out = tmp_path / "out"
    # Other scenarios and targets: refused without --force (the refusal is tested in test_cli.py).
    result = run_cli("compare", str(base), str(cand), "--out", str(out), "--resamples", "100", "--force")
    assert result.returncode == 0, result.stderr
    metas = [rundir.read_json(p / rundir.META) for p in (base, cand)]
    shown = [str(m[k]) for m in metas for k in ("run_id", "scenario", "status", "started_at", "load_model")]
    shown += [m["target"] for m in metas] + [m["git"]["commit"] for m in metas]
    shown += [f"{m['host']['hostname']} · {m['host']['cpu_model']}" for m in metas]
    shown += [" ".join(m["settings"]["scenario_args"]) for m in metas]
    shown += [f"locust {m['versions']['locust']}" for m in metas]
    shown += [f"0: {rundir.read_json(p / rundir.SAMPLER_INFO)['gpus'][0]['name']}" for p in (base, cand)]
    warnings = read_json(out / "compare.json")["warnings"]
    assert any("scenarios differ" in w for w in warnings)  # quoting both runs' scenarios
    shown += warnings
    assert all(any(p in text for text in shown) for p in SCRIPT_PAYLOADS)
    dom = assert_inert_in_chromium(
        out / "compare.html", browser, tmp_path / "profile", shown, title_prefix="loadbench compare: "
    )
    assert metas[0]["run_id"] in dom.title  # the title names the runs, as text


def test_with_real_compare(tmp_path: Path, runs: list[FakeRun]) -> None:
    compare = pytest.importorskip("loadbench.compare.compare")
    base, cand = (load_run(r.path) for r in runs[:2])
    result = compare.compare_runs(base, cand, [compare.parse_rule("p99>+10%")], resamples=100)
    json_path, md_path, html_path = compare_report.render_compare(result, [base, cand], tmp_path)
    first = md_path.read_text(encoding="utf-8").splitlines()[0]
    assert "❌ worse" in first and "p99&gt;+10%" in first
    md = md_path.read_text(encoding="utf-8")
    for m in result["metrics"].values():
        assert f"| {m['label']} |" in md
    assert len(pngs(html_path.read_text(encoding="utf-8"))) == 4
    assert json.loads(json_path.read_text(encoding="utf-8"))["passed"] is False


def test_formatters() -> None:
    f = compare_report
    assert f.format_metric_value(4.213, "ms") == "4.21 ms"
    assert f.format_metric_value(0.012, "fraction") == "1.20 %"
    assert f.format_metric_value(56.7, "% of a core") == "56.7 %"
    assert f.format_delta(-1.3, "ms") == "-1.30 ms"
    assert f.format_delta(0.0, "req/s") == "±0.0 req/s"
    assert f.format_delta(0.005, "fraction") == "+0.50 pp"
    assert f.format_delta_pct(None) == "–"
    assert f.format_ci([-1.0, 2.0], "ms") == "[-1.00 ms, +2.00 ms]"
    assert f.format_ci(None, "ms") == "–"


def test_three_runs_each_candidate_against_the_base(tmp_path: Path, runs: list[FakeRun]) -> None:
    compare = pytest.importorskip("loadbench.compare.compare")
    base, cand, extra = (load_run(r.path) for r in runs)
    result = compare.compare_many(base, [cand, extra], [compare.parse_rule("p99>+10%")], resamples=100)
    json_path, md_path, html_path = compare_report.render_compare(result, [base, cand, extra], tmp_path)
    md = md_path.read_text(encoding="utf-8")
    lines = md.splitlines()
    assert lines[0] == compare_report.verdict_line(result)  # the first candidate's, as before
    verdicts = compare_report.candidate_verdict_lines(result)
    assert [v.split("`")[1] for v in verdicts] == ["cand-run", "extra-run"]
    assert all(v in lines for v in verdicts) and all("❌ worse" in v for v in verdicts)
    assert "### candidate `extra-run` vs base `base-run`" in lines
    # Each candidate has its own table: two header rows.
    assert lines.count("| metric | base | candidate | Δ | Δ% | 99.5% CI | verdict |") == 2
    page = html_path.read_text(encoding="utf-8")
    assert "id='candidates'" in page and "id='candidate-2'" in page and page.count("class='banner bad'") == 2
    saved = json.loads(json_path.read_text(encoding="utf-8"))
    assert [c["run"] for c in saved["candidates"]] == ["cand-run", "extra-run"]
    # Two runs: the page and the markdown keep their one-candidate form.
    single = compare.compare_many(base, [cand], resamples=100)
    md_single = compare_report.render_compare_markdown(single)
    assert "Each candidate against the base" not in md_single and "### candidate" not in md_single


def test_settings_table_shows_the_load_model_numbers(runs: list[FakeRun]) -> None:
    base = runs[0]
    settings = {
        **base.meta["settings"],
        "users": 64,
        "scenario_args": ["--data", "prompts.jsonl"],
        "load": {"model": "open", "rate": 200.0, "arrival": "gamma", "burstiness": 0.5, "max_inflight": 64},
        "stages": [{"name": "ramp", "start_s": 0.0, "end_s": 30.0, "start_level": 100.0, "end_level": 400.0}],
    }
    open_run = FakeRun(
        base.path,
        {**base.meta, "settings": settings},
        base.summary,
        base.latency_ms,
        base.timeseries,
        base.samples,
    )
    table = compare_html.settings_table_html([base, open_run])
    row = {
        name: re.search(rf"<td>(?:<b>)?{name}(?:</b>)?</td>(.*?)</tr>", table) for name in ("rate", "arrival")
    }
    assert row["rate"] and "200.0 req/s" in row["rate"][1]
    assert row["arrival"] and "gamma (burstiness 0.5)" in row["arrival"][1]
    assert "<b>rate</b>" in table  # it differs between the runs: in bold
    assert "--data prompts.jsonl" in table and "dataset / scenario args" in table
    assert "100→400 over 30 s" in table and "max in flight" in table
    # Open loop: settings.users (64, --max-inflight) is not shown as users.
    users = re.search(r"<td>(?:<b>)?users(?:</b>)?</td>(.*?)</tr>", table)
    assert users and "64" not in users[1] and "4" in users[1]
