"""`loadbench sweep --whatif` against the demo as an M/M/1 FIFO queue: the predictions are checked
against the steps they predict, and the report shows them (docs/whatif.md).

The faster sibling of benchmarks/whatif_validation.py: two short steps, and bounds wide enough for
a loaded machine, yet narrow enough to fail when the overhead's waits are counted twice (that put
the fit step's p50 25-35 % high) or the wrong service time is fitted. A machine busy enough to
slow the demo itself changes the server between the steps: then the validation must say so.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_cli

from loadbench.whatif.render import VALIDATION_HEADERS


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("whatif-sweep") / "sweep"
    done = run_cli(
        "sweep", "--demo", "--demo-workers", "1", "--demo-latency-ms", "10", "--demo-service-dist", "exponential",
        "--demo-seed", "1", "--rates", "30,65", "--arrival", "poisson", "--step-duration", "14s", "--warmup", "2s",
        "--server-time-header", "X-Service-Time-Ms", "--whatif", "--whatif-servers", "1", "--no-sampler",
        "--out", str(out),
        timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "loadbench: what-if: fitted on step 1, 1 server(s)" in done.stdout
    return out


def test_the_fit_is_the_servers_time_and_the_predictions_hold(sweep_dir: Path) -> None:
    whatif = json.loads((sweep_dir / "sweep.json").read_text())["whatif"]
    assert whatif["predicted"] and whatif["fit_step"] == 1 and whatif["servers"] == 1
    assert whatif["service"]["source"] == "server"
    # The demo sleeps 10 ms on average (exponential, ~360 draws): not less than ~8.5 on average.
    assert 8.5 < whatif["service"]["mean_ms"] < 18.0
    first, second = whatif["steps"]
    assert first["fit"] and not second["fit"]
    assert 0.15 < first["utilisation"] < second["utilisation"] < 1.0
    # The fit step predicts itself: its own service times, overheads and rate. Counting each
    # request's wait twice (without the replay) put this 25-35 % high.
    for p in first["predicted"]:
        assert abs(p["error"]["p50"]) < 0.2, p
    # The next step holds when the server stayed the one fitted; on a machine busy enough to slow
    # the demo itself, its own service time moves, and the validation must say so.
    drifted = any(n.startswith("step 2: the server's own mean service time") for n in whatif["notes"])
    assert second["service_mean_ms"] is not None
    assert drifted == (abs(second["service_mean_ms"] / whatif["service"]["mean_ms"] - 1) > 0.10)
    if not drifted:
        for p in second["predicted"]:
            assert abs(p["error"]["p50"]) < 0.45, p
    sim = next(p for p in second["predicted"] if p["method"] == "simulation")
    assert sim["ci_ms"]["p99"][0] <= sim["latency_ms"]["p99"] <= sim["ci_ms"]["p99"][1]


def test_the_report_shows_predicted_against_measured(sweep_dir: Path) -> None:
    md = (sweep_dir / "sweep.md").read_text()
    assert "### What-if: predicted against measured" in md and "| 1 (fit) |" in md
    html = (sweep_dir / "sweep.html").read_text()
    assert "<h2 id='whatif'>" in html and "plot-whatif" in html
    assert all(h in html for h in VALIDATION_HEADERS)


def test_whatif_on_the_sweep_dir_gives_the_same_validation(sweep_dir: Path, tmp_path: Path) -> None:
    done = run_cli(
        "whatif",
        str(sweep_dir),
        "--servers",
        "1",
        "--json",
        "--sim-requests",
        "200000",
        "--out",
        str(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    saved = json.loads((sweep_dir / "sweep.json").read_text())["whatif"]
    assert [s["measured_ms"] for s in result["validation"]["steps"]] == [
        s["measured_ms"] for s in saved["steps"]
    ]
    assert result["fit"]["source"] == "server" and "replaying the run's sends" in result["fit"]["method"]
    assert [m["source"] for m in result["measured"]] == ["step 1", "step 2"]


def test_whatif_servers_goes_with_whatif() -> None:
    done = run_cli("sweep", "--demo", "--rates", "10", "--whatif-servers", "2")
    assert (
        done.returncode == 2 and "--whatif-servers takes a number >= 1 and goes with --whatif" in done.stderr
    )
