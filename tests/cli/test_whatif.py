"""`loadbench whatif` as a user runs it: the files, the JSON, the table, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import run_cli

DATA = Path(__file__).resolve().parents[1] / "data"
RUN = DATA / "run-demo-json_post"  # 2 users on the demo, 1,468 successful requests
SMALL = DATA / "run-small"


@pytest.fixture(scope="module")
def run_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("whatif") / "run"
    shutil.copytree(RUN, target)
    return target


def test_json_has_one_entry_per_rate_servers_and_method(run_copy: Path, tmp_path: Path) -> None:
    done = run_cli(
        "whatif", str(run_copy), "--servers", "1", "--servers", "2", "--rate", "100", "--rate", "300",
        "--sim-requests", "100000", "--json", "--out", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["kind"] == "whatif" and result["servers"] == [1, 2]
    keys = [(e["rate_rps"], e["servers"], e["method"]) for e in result["predictions"]]
    assert len(keys) == len(set(keys)) == 2 * 2 * 3
    # 300 req/s on one server is past its capacity (mean service ~3.9 ms: 258 req/s).
    over = [e for e in result["predictions"] if e["servers"] == 1 and e["rate_rps"] == 300]
    assert over and all(e["stable"] is False and e["latency_ms"] is None for e in over)
    fit = result["fit"]
    assert fit["source"] == "latency" and fit["requests"] > 1000
    assert any("client's own time" in n for n in result["notes"])
    assert any("2 users" in n for n in result["notes"])  # 2 users may queue on 1 server
    assert {p.name for p in tmp_path.iterdir()} == {"whatif.json", "whatif.md", "whatif.png"}
    assert json.loads((tmp_path / "whatif.json").read_text()) == result
    assert (tmp_path / "whatif.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_table_and_the_plan_paste_into_a_pull_request(run_copy: Path) -> None:
    done = run_cli(
        "whatif", str(run_copy), "--servers", "2", "--slo", "p99<100ms", "--method", "kingman",
        "--method", "erlang_c",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "| rate | servers | utilisation | method |" in out
    assert "Capacity under `p99<100ms`:" in out and "kingman: at most" in out
    assert "simulation" not in out.split("Assumptions:")[0]
    # Default rates: 30 to 95 % of capacity, five of them, per method.
    assert out.count("| 2 |") == 5 * 2
    assert (run_copy / "whatif.md").read_text().startswith("## What-if:")
    assert "loadbench: note:" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((str(SMALL), "--servers", "1"), "needs at least 200"),
        ((str(RUN),), "give --servers C"),
        ((str(RUN), "--servers", "0"), "must be 1 or more"),
        ((str(RUN), "--servers", "1", "--rate", "-5"), "more than 0"),
        ((str(RUN), "--servers", "1", "--rate", "1000"), "unstable"),
        ((str(RUN), "--servers", "1", "--slo", "error_rate<1%"), "whatif predicts latency"),
        ((str(RUN), "--servers", "1", "--replications", "1"), "--replications must be 2"),
        ((str(RUN), "--servers", "1", "--overhead-ms", "-1"), "--overhead-ms"),
        (("/nonexistent-run", "--servers", "1"), "nonexistent-run"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    done = run_cli("whatif", *args, "--out", "/tmp/loadbench-whatif-never-written")
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert message in lines[0]
    assert not Path("/tmp/loadbench-whatif-never-written").exists()


def test_overhead_given_moves_the_service_time(run_copy: Path) -> None:
    base = json.loads(
        run_cli("whatif", str(run_copy), "--servers", "1", "--method", "kingman", "--json").stdout
    )
    less = run_cli(
        "whatif", str(run_copy), "--servers", "1", "--method", "kingman", "--overhead-ms", "1", "--json"
    )  # fmt: skip
    shifted = json.loads(less.stdout)
    assert shifted["fit"]["mean_overhead_ms"] == 1.0
    assert shifted["fit"]["mean_service_ms"] < base["fit"]["mean_service_ms"] - 0.9
    assert "--overhead-ms 1" in shifted["fit"]["method"]
