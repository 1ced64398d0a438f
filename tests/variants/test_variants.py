"""`loadbench variants` on tiny run directories of known accuracy, latency and memory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loadbench.analyze import analyzer
from loadbench.cli.main import main
from loadbench.record import rundir
from loadbench.record.records import RequestRecord, write_requests
from loadbench.variants.figures import Figures, difference_interval, value_interval
from loadbench.variants.variants import load_variant, pareto_flags, parse_drop, variants_table

STARTED = 1_700_000_000.0
SECONDS = 10
RATE = 20  # requests per second
N = SECONDS * RATE
CLASSES = 5
MB = 1024 * 1024


def latencies(base_ms: float) -> list[float]:
    return [base_ms * (1 + 0.01 * (i % 7)) for i in range(N)]


def records(base_ms: float, wrong: int) -> list[RequestRecord]:
    """N requests, evenly spread over the window; exactly ``wrong`` of them answered wrongly."""
    out = []
    for i, latency in enumerate(latencies(base_ms)):
        expected = str(i % CLASSES)
        is_wrong = (i + 1) * wrong // N != i * wrong // N
        predicted = str((i + 1) % CLASSES) if is_wrong else expected
        start = STARTED + i / RATE
        extras = {"expected": expected, "predicted": predicted}
        out.append(RequestRecord(start, latency, "POST /v2", "POST", 200, 50, True, extras=extras))
    return out


def make_variant(
    path: Path,
    base_ms: float,
    wrong: int,
    rss_mb: float,
    label: str | None = None,
    scenario: str = "kserve_v2",
    data: str = "digits.jsonl",
) -> Path:
    path.mkdir(parents=True)
    meta: dict[str, Any] = {
        "format": 1,
        "run_id": path.name,
        "target": f"http://127.0.0.1:8000/v2/models/{path.name}",
        "scenario": scenario,
        "status": rundir.STATUS_COMPLETE,
        "started_unix_s": STARTED,
        "ended_unix_s": STARTED + SECONDS,
        "load_model": "closed loop",
        "settings": {
            "users": 2,
            "warmup_s": 0.0,
            "duration_s": SECONDS,
            "label": label,
            "scenario_args": ["--data", f"/somewhere/{data}", "--model", path.name],
        },
        "versions": {"loadbench": "0.1", "locust": "2.0", "python": "3.11"},
        "host": {"cpu_model": "Test CPU", "cpu_cores": 8},
    }
    rundir.write_json(path / rundir.META, meta)
    write_requests(path / rundir.REQUESTS, records(base_ms, wrong))
    # RSS rising to its peak at the window's end; the GPU's memory flat.
    samples = [
        {
            "unix_s": STARTED + t / 2,
            "server.rss_bytes": (rss_mb - 10 + t / (2 * SECONDS) * 10) * MB,
            "gpu0.mem_used_bytes": 2 * rss_mb * MB,
        }
        for t in range(2 * SECONDS + 1)
    ]
    (path / rundir.SAMPLES).write_text("".join(json.dumps(s) + "\n" for s in samples))
    analyzer.analyze_run(path)
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("variants")
    return {
        "fp32": make_variant(root / "fp32", 20.0, 10, 400.0),  # 95.0 %
        "int8": make_variant(root / "int8", 10.0, 11, 200.0, label="int8-dyn"),  # 94.5 %: 0.5 points down
        "pruned": make_variant(root / "pruned", 15.0, 20, 300.0),  # 90.0 %, dominated by int8
        "distilled": make_variant(root / "distilled", 5.0, 30, 100.0),  # 85.0 %, fastest and smallest
    }


def test_figures_pareto_and_flags(runs: dict[str, Path]) -> None:
    variants = [load_variant(runs[name], None) for name in ("fp32", "int8", "pruned", "distilled")]
    table = variants_table(variants, max_drop=0.01)
    entries = {e["label"]: e for e in table["variants"]}
    assert table["baseline"] == "fp32"
    assert list(entries) == ["fp32", "int8-dyn", "pruned", "distilled"]  # int8's recorded --label
    assert [entries[k]["accuracy"] for k in entries] == [0.95, 0.945, 0.9, 0.85]
    for name, base_ms, key in (("fp32", 20.0, "fp32"), ("distilled", 5.0, "distilled")):
        values = latencies(base_ms)
        assert entries[key]["latency_ms"]["p99"] == pytest.approx(np.percentile(values, 99), abs=1e-3), name
        assert entries[key]["latency_ms"]["p50"] == pytest.approx(np.percentile(values, 50), abs=1e-3), name
    assert entries["fp32"]["throughput_rps"] == pytest.approx(RATE, rel=0.01)
    assert entries["fp32"]["server_rss_mb"] == 400.0 and entries["fp32"]["server_rss_median_mb"] == 395.0
    assert entries["int8-dyn"]["gpu_memory_mb"] == 400.0 and entries["int8-dyn"]["memory_mb"] == 600.0
    assert {k: e["pareto"] for k, e in entries.items()} == {
        "fp32": True,
        "int8-dyn": True,
        "pruned": False,
        "distilled": True,
    }
    assert {k: e["quality_drop"] for k, e in entries.items()} == pytest.approx(
        {"fp32": 0.0, "int8-dyn": 0.005, "pruned": 0.05, "distilled": 0.1}
    )
    assert [k for k, e in entries.items() if e["flagged"]] == ["pruned", "distilled"]
    # Every figure has its interval around it, and each difference's interval holds the difference.
    int8 = entries["int8-dyn"]
    for key in ("accuracy", "latency_ms.p99", "throughput_rps", "f1_macro", "recall_macro"):
        lo, hi = int8["ci"][key]
        value = int8["latency_ms"]["p99"] if key == "latency_ms.p99" else int8[key]
        assert lo <= value <= hi, key
    delta = int8["vs_baseline"]["latency_ms.p99"]
    assert delta["delta"] == pytest.approx(int8["latency_ms"]["p99"] - entries["fp32"]["latency_ms"]["p99"])
    assert delta["ci"][0] <= delta["delta"] <= delta["ci"][1] < 0
    assert int8["vs_baseline"]["accuracy"]["delta"] == pytest.approx(-0.005)
    # A perfectly balanced answer set: macro recall equals accuracy here, and F1 is below 1.
    assert entries["fp32"]["recall_macro"] == pytest.approx(0.95) and entries["fp32"]["f1_macro"] < 1


def test_pareto_flags_skip_missing_axes() -> None:
    # The first has no memory: compared on accuracy and p99 only, it beats the second there.
    assert pareto_flags([(0.9, 10.0, None), (0.8, 12.0, 100.0), (0.95, 20.0, 50.0)]) == [True, False, True]
    assert pareto_flags([(0.9, 10.0, 100.0), (0.9, 10.0, 100.0)]) == [True, True]  # ties dominate nothing


@pytest.mark.parametrize(("text", "value"), [("1%", 0.01), ("0.5pp", 0.005), ("0.02", 0.02)])
def test_parse_drop(text: str, value: float) -> None:
    assert parse_drop(text) == pytest.approx(value)


def test_cli_outputs_exit_codes_and_refusals(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = [f"{runs['fp32']}=full <b>", str(runs["int8"]), str(runs["pruned"])]
    assert main(["variants", *args, "--out", str(out), "--baseline", "full <b>"]) == 0
    table = json.loads((out / "variants.json").read_text())
    assert table["baseline"] == "full <b>"
    assert [e["flagged"] for e in table["variants"]] == [False, False, True]
    page = (out / "variants.html").read_text()
    assert "full &lt;b&gt;" in page and "full <b>" not in page and "data:image/png;base64," in page
    assert "| full &lt;b&gt; |" in (out / "variants.md").read_text()
    capsys.readouterr()
    assert (
        main(["variants", *args, "--fail-on-drop", "--max-quality-drop", "6%"]) == 0
    )  # 5 points: not over 6
    assert "| pruned |" in capsys.readouterr().out  # no --out: the table on the terminal
    assert main(["variants", *args, "--fail-on-drop", "--quiet"]) == 1
    assert "pruned loses more accuracy" in capsys.readouterr().err

    other = make_variant(tmp_path / "chat", 10.0, 0, 100.0, scenario="openai_chat")
    capsys.readouterr()
    assert main(["variants", str(runs["fp32"]), str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "differ in scenario" in err and "--force" in err
    assert main(["variants", str(runs["fp32"]), str(other), "--force", "--quiet"]) == 0
    for bad in (["--baseline", "nope"], ["--max-quality-drop", "lots"]):
        assert main(["variants", str(runs["fp32"]), str(runs["int8"]), *bad]) == 2
    assert main(["variants", str(runs["fp32"]), str(tmp_path / "missing")]) == 2
    assert main(["variants", f"{runs['fp32']}=a", f"{runs['int8']}=a"]) == 2  # one label twice


def test_a_sweep_is_its_capacity_step(runs: dict[str, Path], tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "step-01").symlink_to(runs["int8"], target_is_directory=True)
    capacity = {"step": 1, "offered": 25.0, "unit": "rps", "rps": 25.0, "achieved_rps": 24.5, "p99_ms": 12.0}
    steps = [{"index": 1, "run_dir": "step-01", "verdict": "pass"}]
    rundir.write_json(sweep / "sweep.json", {"kind": "sweep", "steps": steps, "capacity": capacity})
    table = variants_table([load_variant(runs["fp32"], None), load_variant(sweep, "int8-sweep")])
    entry = table["variants"][1]
    assert entry["throughput_rps"] == 24.5 and entry["capacity_rps"] == 24.5
    assert entry["accuracy"] == 0.945 and entry["ci"]["throughput_rps"] is None


def test_a_window_of_few_seconds_has_no_interval_and_bounded_figures_stay_in_their_range() -> None:
    # Resampled accuracies spread wide around 0.97: the widened interval would pass 100 %.
    stars = {"accuracy": np.linspace(0.9, 1.0, 200)}
    wide = Figures({"accuracy": 0.97}, stars, {"accuracy": 0.97}, blocks=5)
    interval = value_interval(wide, "accuracy")
    assert interval is not None and 0.0 <= interval[0] <= 0.97 <= interval[1] <= 1.0
    short = Figures({"accuracy": 0.97}, stars, {"accuracy": 0.97}, blocks=4)
    assert value_interval(short, "accuracy") is None
    assert difference_interval(wide, short, "accuracy") is None
    assert difference_interval(wide, wide, "accuracy") is not None
