"""Tests of loadbench.compare.history against synthetic analyzed run directories (no Locust, no server)."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import SCRIPT_PAYLOADS, assert_inert_in_chromium, read_json, require_executable, run_cli

from loadbench.analyze import analyzer
from loadbench.compare import history
from loadbench.errors import UsageError
from loadbench.record import records, rundir

START = 1_700_000_000.0
SECONDS = 12
WARMUP = 2
PER_SECOND = 20


def make_run(
    parent: Path,
    name: str,
    start: float,
    latency_ms: float,
    seed: int = 0,
    scenario: str = "json_post",
    samples: bool = False,
    analyze: bool = True,
    target: str = "http://127.0.0.1:8000/v2/models/m/infer",
) -> Path:
    """An analyzed run: 12 s (2 s warmup), 20 requests a second around ``latency_ms`` (sd 0.5 ms)."""
    path = parent / name
    path.mkdir(parents=True)
    meta: dict[str, Any] = {
        "format": 1,
        "run_id": name,
        "target": target,
        "scenario": scenario,
        "status": "complete",
        "started_unix_s": start,
        "started_at": rundir.iso_utc(start),
        "ended_unix_s": start + SECONDS,
        "ended_at": rundir.iso_utc(start + SECONDS),
        "load_model": "closed loop: each user sends its next request when the previous one ends",
        "settings": {"users": 4, "spawn_rate": 4.0, "duration_s": float(SECONDS), "warmup_s": float(WARMUP)},
        "versions": {"loadbench": "0.1.0", "locust": "2.31.0", "python": "3.11.2"},
        "host": {"hostname": "bench-1", "cpu_model": "Test CPU", "cpu_cores": 8},
    }
    rundir.write_json(path / rundir.META, meta)
    rng = np.random.default_rng(seed)
    recs = []
    for s in range(SECONDS):
        for k in range(PER_SECOND):
            recs.append(
                records.RequestRecord(
                    start_unix_s=start + s + (k + 0.5) / PER_SECOND,
                    latency_ms=float(max(0.1, latency_ms + rng.normal(0.0, 0.5))),
                    name="POST /infer",
                    method="POST",
                    status=200,
                    response_bytes=100,
                    ok=True,
                )
            )
    records.write_requests(path / rundir.REQUESTS, recs)
    if samples:
        with open(path / rundir.SAMPLES, "w", encoding="utf-8") as f:
            for i in range(SECONDS * 2):
                row = {
                    "unix_s": start + i * 0.5,
                    "host.cpu_percent": 40.0 + rng.normal(0, 2),
                    "server.cpu_percent": 120.0 + rng.normal(0, 5),
                    "server.rss_bytes": 2.0e8,
                    "gpu0.util_percent": 70.0 + rng.normal(0, 3),
                }
                f.write(json.dumps(row) + "\n")
    if analyze:
        analyzer.analyze_run(path)
    return path


def payload_run(parent: Path, name: str, start: float, texts: Iterator[str], seed: int = 0) -> Path:
    """An analyzed run (as `make_run`, sampled) whose every free-text field is the next of ``texts``.

    The fields a scenario file, the command line, the host and its GPU driver word: run id,
    scenario, status, start time (the four history shows), target path, load model, scenario arguments, versions, host
    name and CPU model, git commit, and the GPU's name (through ``sampler.json``, as NVML says it).
    """
    path = make_run(parent, name, start, 10.0, seed=seed, samples=True, analyze=False)
    meta = rundir.read_json(path / rundir.META)
    meta.update(
        run_id=next(texts),
        scenario=next(texts),
        status=next(texts),
        started_at=next(texts),
        target=f"http://127.0.0.1:8000/{next(texts)}",
        load_model=next(texts),
        git={"commit": next(texts)},
    )
    meta["settings"]["scenario_args"] = ["--dataset", next(texts)]
    meta["versions"]["locust"] = next(texts)
    meta["host"].update(hostname=next(texts), cpu_model=next(texts))
    rundir.write_json(path / rundir.META, meta)
    rundir.write_json(path / rundir.SAMPLER_INFO, {"gpus": [{"index": 0, "name": next(texts)}]})
    analyzer.analyze_run(path)
    return path


def payload_texts() -> Iterator[str]:
    return itertools.cycle(SCRIPT_PAYLOADS)


def step_runs(parent: Path) -> list[Path]:
    """Six runs a minute apart: 1-4 at 10 ms, 5-6 at 20 ms (names not in start order)."""
    out = []
    for i in range(6):
        lat = 10.0 if i < 4 else 20.0
        out.append(make_run(parent, f"run{6 - i}", START + 60.0 * i, lat, seed=100 + i))
    return out


def test_history_marks_the_step_change_only(tmp_path: Path) -> None:
    runs = step_runs(tmp_path / "reports")
    rows = history.load_history(history.expand_runs(str(tmp_path / "reports")))
    assert [r["id"] for r in rows] == ["run6", "run5", "run4", "run3", "run2", "run1"]
    assert rows.warnings == []
    for r in rows:
        assert set(r["metrics"]) == {
            "latency_ms.p50",
            "latency_ms.p99",
            "throughput_rps",
            "requests.error_rate",
        }
        for m in r["metrics"].values():
            assert m["ci"] is not None and m["ci"][0] <= m["ci"][1]
    p50 = rows[0]["metrics"]["latency_ms.p50"]
    assert p50["ci"][0] < 10.0 < p50["ci"][1] + 0.3
    assert rows[0]["metrics"]["throughput_rps"]["ci"] == [20.0, 20.0]

    changes = history.significant_changes(rows)
    assert {(c["metric"], c["run_id"]) for c in changes} == {
        ("latency_ms.p50", "run2"),
        ("latency_ms.p99", "run2"),
    }
    step = next(c for c in changes if c["metric"] == "latency_ms.p50")
    assert step["previous_run_id"] == "run3"
    assert step["change"] == "up" and step["verdict"] == "worse"

    html_path, json_path = history.render_history(rows, tmp_path / "out")
    page = html_path.read_text(encoding="utf-8")
    assert page.count('<img class="plot" src="data:image/png;base64,') == 4
    assert "Significant changes of p50 latency" in page
    assert "Significant changes of throughput" not in page
    assert not re.search(r"<(script|link)\b", page)
    data = json.loads(json_path.read_text(encoding="utf-8"), parse_constant=lambda c: pytest.fail(c))
    assert len(data["rows"]) == 6
    assert {c["run_id"] for c in data["significant_changes"]} == {"run2"}
    assert len(runs) == 6


def test_history_gpu_metric_and_skipped_dirs(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    a = make_run(reports, "a", START, 10.0, seed=1, samples=True)
    b = make_run(reports, "b", START + 60, 10.0, seed=2, samples=True)
    raw = make_run(reports, "c", START + 120, 10.0, seed=3, analyze=False)
    rows = history.load_history([a, b, raw])
    assert [r["id"] for r in rows] == ["a", "b"]
    assert len(rows.warnings) == 1 and "summary.json" in rows.warnings[0]
    gpu = rows[0]["metrics"][history.GPU_UTIL]
    assert gpu["value"] == pytest.approx(70.0, abs=3.0)
    assert gpu["ci"] is not None and gpu["ci"][0] < gpu["ci"][1]
    html_path, json_path = history.render_history(rows, tmp_path / "out")
    page = html_path.read_text(encoding="utf-8")
    assert page.count('<img class="plot"') == 5
    assert "summary.json" in page  # the skip warning is shown
    assert json.loads(json_path.read_text())["warnings"] == rows.warnings


def test_history_escapes_run_text(tmp_path: Path) -> None:
    xss = "<script>x</script>"
    run = make_run(tmp_path, "r1", START, 10.0, scenario=xss)
    meta = rundir.read_json(run / rundir.META)
    meta["run_id"] = f"id{xss}"
    rundir.write_json(run / rundir.META, meta)
    rows = history.load_history([run])
    html_path, _ = history.render_history(rows, tmp_path / "out")
    page = html_path.read_text(encoding="utf-8")
    assert xss not in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page


def test_history_page_keeps_run_text_inert_in_chromium(tmp_path: Path) -> None:
    browser = require_executable("chromium", "chromium")
    reports = tmp_path / "reports"
    texts = payload_texts()
    # Twelve texts a run, four of them shown: three runs show all nine payloads.
    # Directory names carry payloads too (those without a slash): the page shows each run's path.
    names = ["plain", SCRIPT_PAYLOADS[1], SCRIPT_PAYLOADS[2]]
    runs = [payload_run(reports, n, START + 60.0 * i, texts, seed=i) for i, n in enumerate(names)]
    make_run(reports, f"{SCRIPT_PAYLOADS[2]} raw", START + 300, 10.0, analyze=False)  # skipped, named
    out = tmp_path / "out"
    result = run_cli("history", str(reports), "--out", str(out))
    assert result.returncode == 0, result.stderr
    data = read_json(out / history.HISTORY_JSON)
    assert [r["path"] for r in data["rows"]] == [str(r) for r in runs]
    # The skipped directory, and the three series (each run another scenario and target path).
    assert len(data["warnings"]) == 2 and "3 different scenarios or targets" in data["warnings"][0]
    shown = [str(r[key]) for r in data["rows"] for key in ("id", "scenario", "status", "started_at", "path")]
    shown += data["warnings"]
    assert set(SCRIPT_PAYLOADS) <= {
        r[key] for r in data["rows"] for key in ("id", "scenario", "status", "started_at")
    }
    assert_inert_in_chromium(
        out / history.HISTORY_HTML, browser, tmp_path / "profile", shown, title_prefix="loadbench history"
    )


def test_expand_runs(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    late = make_run(reports, "20231114T000200Z-kserve_v2", START + 120, 10.0, analyze=False)
    early = make_run(reports, "20231114T000900Z-kserve_v2", START, 10.0, analyze=False)
    other = make_run(reports, "20231114T000500Z-json_post", START + 60, 10.0, analyze=False)
    (reports / "not-a-run").mkdir()
    assert history.expand_runs(str(reports)) == [early, other, late]
    assert history.expand_runs(str(reports / "*-kserve_v2")) == [early, late]
    assert history.expand_runs(str(other)) == [other]
    with pytest.raises(UsageError, match="no loadbench run directory") as info:
        history.expand_runs(str(tmp_path / "nothing-*"))
    assert "\n" not in str(info.value)
    with pytest.raises(UsageError):
        history.expand_runs(str(reports / "not-a-run"))


def test_bootstrap_helpers() -> None:
    assert history.bootstrap_mean_ci([5.0]) is None
    assert history.bootstrap_mean_ci([3.0, 3.0, 3.0]) == [3.0, 3.0]
    ci = history.bootstrap_mean_ci(np.arange(100.0), seed=1)
    assert ci is not None and ci[0] < 49.5 < ci[1]
    assert history.bootstrap_mean_ci(np.arange(100.0), seed=1) == ci  # seeded: reproducible
    assert history.bootstrap_ratio_ci([0, 0], [0, 0]) is None
    ratio = history.bootstrap_ratio_ci([1, 0, 1, 0], [10, 10, 10, 10])
    assert ratio is not None and 0.0 <= ratio[0] <= 0.05 <= ratio[1] <= 0.1


def test_runs_of_other_scenarios_or_targets_are_series_of_their_own(tmp_path: Path) -> None:
    """A slower run of another scenario or host between two runs of one series is no change of
    that series (it once was: one chain through every run), and the page says there are several."""
    reports = tmp_path / "reports"
    make_run(reports, "a1", START, 10.0, seed=1)
    make_run(reports, "chat", START + 60, 40.0, seed=2, scenario="openai_chat")
    make_run(reports, "elsewhere", START + 120, 40.0, seed=3, target="http://10.0.0.5:8000/v2/models/m/infer")
    # The same host and path on another port (the demo's, every run): the same series.
    make_run(reports, "a2", START + 180, 10.0, seed=4, target="http://127.0.0.1:9999/v2/models/m/infer")
    make_run(reports, "a3", START + 240, 20.0, seed=5)
    # Several patterns, overlapping: each run once, in start order.
    paths = history.expand_runs([str(reports / "a*"), str(reports / "chat"), str(reports)])
    rows = history.load_history(paths)
    assert [r["id"] for r in rows] == ["a1", "chat", "elsewhere", "a2", "a3"]
    assert [r["series"] for r in rows] == [
        "json_post @ 127.0.0.1/v2/models/m/infer",
        "openai_chat @ 127.0.0.1/v2/models/m/infer",
        "json_post @ 10.0.0.5/v2/models/m/infer",
        "json_post @ 127.0.0.1/v2/models/m/infer",
        "json_post @ 127.0.0.1/v2/models/m/infer",
    ]
    changes = history.significant_changes(rows)
    assert {(c["metric"], c["run_id"], c["previous_run_id"]) for c in changes} == {
        ("latency_ms.p50", "a3", "a2"),
        ("latency_ms.p99", "a3", "a2"),
    }
    assert len(rows.warnings) == 1
    assert rows.warnings[0].startswith(
        "the runs are of 3 different scenarios or targets, each its own series"
    )
    assert "json_post @ 127.0.0.1/v2/models/m/infer (3 runs)" in rows.warnings[0]
    html_path, json_path = history.render_history(rows, tmp_path / "out")
    assert "3 different scenarios or targets" in html_path.read_text(encoding="utf-8")
    assert json.loads(json_path.read_text())["warnings"] == rows.warnings
    # One pattern of several that names nothing is bad input, named: its runs are not dropped silently.
    with pytest.raises(UsageError, match="nothing-"):
        history.expand_runs([str(reports), str(tmp_path / "nothing-*")])
