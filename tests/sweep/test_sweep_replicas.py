"""``loadbench sweep --replicas``: the steps' several targets, the search per replica count (with a
stand-in for each count's sweep), scaling.json/.md/.html and their escaping, the CLI's bad input,
and one end-to-end run against demo replicas of finite capacity."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import SCRIPT_PAYLOADS, assert_inert_in_chromium, read_json, require_executable, run_cli

from loadbench.analyze.scaling import usl_rps
from loadbench.cli.main import main
from loadbench.errors import UsageError
from loadbench.sweep import scaling
from loadbench.sweep.scaling import ScalingConfig, given_replicas, run_scaling
from loadbench.sweep.scaling_report import (
    SCALING_HTML,
    render_scaling,
    render_scaling_markdown,
    scaling_headline,
)
from loadbench.sweep.sweep import SweepConfig, step_command

URLS = [f"http://127.0.0.1:{9000 + k}" for k in range(1, 9)]


def test_steps_target_every_replica_and_balance_only_several(tmp_path: Path) -> None:
    several = SweepConfig(target=URLS[0], mode="rate", targets=URLS[:3], balance="p2c")
    command = step_command(several, 10.0, tmp_path / "step")
    targets = [command[i + 1] for i, a in enumerate(command) if a == "--target"]
    assert targets == URLS[:3]
    assert command[command.index("--balance") + 1] == "p2c"
    alone = step_command(SweepConfig(target=URLS[0], mode="rate", balance="p2c"), 10.0, tmp_path / "step")
    assert [a for a in alone if a == "--target"] == ["--target"] and "--balance" not in alone


# -- the search per replica count, each count's sweep a stand-in ------------------------------


def capacity_of(count: int) -> float:
    return round(usl_rps(count, 40.0, 0.05, 0.01), 1)


class FakeSweeps:
    """`run_sweep` for each count: capacity by a known USL; records what each count was given."""

    def __init__(self, fail_at: int | None = None, interrupt_at: int | None = None) -> None:
        self.calls: list[SweepConfig] = []
        self.fail_at, self.interrupt_at = fail_at, interrupt_at

    def __call__(self, config: SweepConfig, out: Any) -> tuple[dict[str, Any], list[Path], int]:
        self.calls.append(config)
        count = len(config.step_targets())
        if count == self.fail_at:
            raise UsageError("sweep aborted at step 1 (10 rps): the target refused the connection")
        assert config.out_dir is not None
        config.out_dir.mkdir(parents=True)
        cap = capacity_of(count)
        sweep = {
            "status": "complete",
            "scenario": "json_post",
            "settings": {"mode": "rate"},
            "steps": [{"index": 1}, {"index": 2}],
            "capacity": {"step": 2, "offered": cap, "unit": "rps", "rps": cap, "p99_ms": 21.5},
        }
        (config.out_dir / "sweep.json").write_text(json.dumps(sweep), encoding="utf-8")
        return sweep, [config.out_dir / "sweep.json"], 130 if count == self.interrupt_at else 0


def scaling_config(tmp_path: Path, replicas: list[int]) -> ScalingConfig:
    search = SweepConfig(
        target="",
        mode="rate",
        find_capacity=True,
        start=5.0,
        slos=["p90<50ms"],
        out_dir=tmp_path / "scaling",
        quiet=True,
    )
    return ScalingConfig(replicas=replicas, search=search, balance="p2c", targets=URLS)


def test_each_count_searches_its_own_replicas_from_the_linear_ideal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeSweeps()
    monkeypatch.setattr(scaling, "run_sweep", fake)
    result, paths, code = run_scaling(scaling_config(tmp_path, [1, 2, 4]), given_replicas(URLS))
    assert code == 0 and [p.name for p in paths] == ["scaling.json", "scaling.md", "scaling.html"]
    top = tmp_path / "scaling"
    assert [c.out_dir for c in fake.calls] == [top / "replicas-1", top / "replicas-2", top / "replicas-4"]
    assert [c.step_targets() for c in fake.calls] == [URLS[:1], URLS[:2], URLS[:4]]
    assert [c.balance for c in fake.calls] == [None, "p2c", "p2c"]
    # 1 starts at --start-rate; the others at the linear ideal from the capacity just found.
    assert [c.start for c in fake.calls] == [5.0, 2 * capacity_of(1), 2 * capacity_of(2)]
    assert [c.growth for c in fake.calls] == [2.0, 1.25, 1.25]  # above the ideal: 25 % a step
    saved = read_json(top / "scaling.json")
    assert saved == json.loads(json.dumps(result))
    assert saved["kind"] == "scaling" and saved["status"] == "complete"
    assert [p["replicas"] for p in saved["points"]] == [1, 2, 4]
    assert [p["sweep_dir"] for p in saved["points"]] == ["replicas-1", "replicas-2", "replicas-4"]
    assert saved["points"][1]["targets"] == URLS[:2] and saved["points"][1]["steps"] == 2
    assert saved["points"][2]["efficiency"] == pytest.approx(capacity_of(4) / (4 * capacity_of(1)), abs=1e-4)
    assert saved["fit"]["model"] == "usl" and saved["fit"]["sigma"] == pytest.approx(0.05, abs=0.01)
    assert saved["settings"]["replicas"] == [1, 2, 4] and saved["settings"]["balance"] == "p2c"
    assert {"points", "fit", "curve", "predictions", "validation", "assumptions", "notes"} <= set(saved)


def test_a_count_that_aborts_ends_the_run_after_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scaling, "run_sweep", FakeSweeps(fail_at=4))
    with pytest.raises(
        UsageError, match=r"^4 replica\(s\): sweep aborted at step 1 .*report of the counts before it"
    ):
        run_scaling(scaling_config(tmp_path, [1, 2, 4, 8]), given_replicas(URLS))
    saved = read_json(tmp_path / "scaling" / "scaling.json")
    assert saved["status"] == "aborted" and [p["replicas"] for p in saved["points"]] == [1, 2]
    assert any("not measured (aborted): 4, 8 replica(s)" in n for n in saved["notes"])


def test_the_first_count_aborting_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scaling, "run_sweep", FakeSweeps(fail_at=1))
    with pytest.raises(UsageError, match="target refused"):
        run_scaling(scaling_config(tmp_path, [1, 2]), given_replicas(URLS))
    assert not (tmp_path / "scaling").exists()


def test_an_interrupted_count_stops_the_run_with_130(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scaling, "run_sweep", FakeSweeps(interrupt_at=2))
    result, _, code = run_scaling(scaling_config(tmp_path, [1, 2, 4]), given_replicas(URLS))
    assert code == 130 and result["status"] == "interrupted"
    assert [p["replicas"] for p in result["points"]] == [1, 2]


def test_replicas_that_cannot_start_abort_like_a_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scaling, "run_sweep", FakeSweeps())

    @contextlib.contextmanager
    def broken(count: int) -> Iterator[list[str]]:
        if count > 1:
            raise UsageError("the embedded demo endpoint did not start: address in use")
        yield URLS[:1]

    with pytest.raises(UsageError, match=r"^2 replica\(s\): the embedded demo endpoint did not start"):
        run_scaling(scaling_config(tmp_path, [1, 2]), broken)
    assert read_json(tmp_path / "scaling" / "scaling.json")["status"] == "aborted"


# -- the report ---------------------------------------------------------------------------------


def scaling_object(measured: list[tuple[int, float | None]], **extra: Any) -> dict[str, Any]:
    from loadbench.analyze.scaling import analyze_scaling

    analysis = analyze_scaling(measured)
    points = [
        p | {"sweep_dir": f"replicas-{p['replicas']}", "steps": 4, "p99_ms": 30.0}
        for p in analysis.pop("points")
    ]
    settings = {"replicas": [n for n, _ in measured], "mode": "rate", "slos": ["p90<50ms"], "balance": "p2c"}
    return {
        "status": "complete",
        "scenario": "json_post",
        "settings": settings,
        "points": points,
        **analysis,
    } | extra


def test_report_files_plots_and_headline(tmp_path: Path) -> None:
    obj = scaling_object([(1, 40.0), (2, 76.0), (4, 132.0), (8, 190.0)])
    paths = render_scaling(obj, tmp_path)
    assert [p.name for p in paths] == ["scaling.json", "scaling.md", "scaling.html"]
    html = (tmp_path / SCALING_HTML).read_text(encoding="utf-8")
    assert 'id="plot-capacity"' in html and 'id="plot-efficiency"' in html
    assert "href='./replicas-2/sweep.html'" in html
    assert "http://" not in html  # nothing to fetch
    headline = scaling_headline(obj)
    assert headline.startswith("Scaling (capacity, efficiency) 1: 40.0 req/s (100 %) · 2: 76.0 req/s (95 %)")
    assert "USL σ = " in headline and "predicted 8: " in headline and "check at 8: error " in headline
    md = render_scaling_markdown(obj)
    assert "| 4 | 132.0 req/s | 160.0 req/s | 82 % |" in md
    assert "fitted (USL) on 1, 2, 4 replica(s), the fit predicted" in md
    assert "| 16 |" in md and "extrapolated" in md


def test_report_says_why_there_is_no_fit(tmp_path: Path) -> None:
    obj = scaling_object([(1, None), (2, 76.0)])
    render_scaling(obj, tmp_path)
    md = (tmp_path / "scaling.md").read_text(encoding="utf-8")
    assert "no fit: 1 replica count(s) with a capacity: a fit needs at least 2" in md and "| 1 | none |" in md
    assert 'id="plot-capacity"' in (tmp_path / SCALING_HTML).read_text(encoding="utf-8")


def test_report_escapes_server_and_user_text(tmp_path: Path) -> None:
    p = SCRIPT_PAYLOADS
    obj = scaling_object([(1, 40.0), (2, 76.0), (4, 132.0)], scenario=p[3], status=p[6])
    obj["settings"] |= {"slos": [p[0]], "run_args": ["--header", f"X-Model: {p[1]}", "--payload", p[5]]}
    obj["settings"] |= {"source": "targets", "targets": [f"http://127.0.0.1:1/{p[8]}"]}
    obj["notes"].append(p[4])
    obj["points"][1]["sweep_dir"] = p[2]
    obj["started_at"], obj["ended_at"] = p[7], p[8]
    _, md_path, html_path = render_scaling(obj, tmp_path)
    html = html_path.read_text(encoding="utf-8")
    for payload in p:
        assert payload not in html, payload
    md = md_path.read_text(encoding="utf-8")
    assert "<script>" not in md and "<img" not in md and "](javascript:" not in md
    browser = require_executable("chromium", "chromium")
    shown = [p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8]]
    assert_inert_in_chromium(
        html_path, browser, tmp_path / "profile", shown, title_prefix="loadbench scaling: "
    )


# -- the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--demo", "--replicas", "1,2", "--rates", "10"], "--replicas compares the capacity under the SLO"),
        (["--demo", "--replicas", "1,2", "--concurrency", "1"], "it needs --find-capacity"),
        (["--demo", "--replicas", "0,1,2", "--find-capacity", "--slo", "p90<1s"], "whole numbers >= 1"),
        (["--demo", "--replicas", "-1,1", "--find-capacity", "--slo", "p90<1s"], "whole numbers >= 1"),
        (["--demo", "--replicas", "1,x", "--find-capacity", "--slo", "p90<1s"], "comma-separated numbers"),
        (
            ["--demo", "--replicas", "2,4", "--find-capacity", "--slo", "p90<1s"],
            "give 1 and at least one more",
        ),
        (["--demo", "--replicas", "1", "--find-capacity", "--slo", "p90<1s"], "give 1 and at least one more"),
        (
            ["--demo", "--replicas", "1,2,2", "--find-capacity", "--slo", "p90<1s"],
            "names a number of replicas twice",
        ),
        (["--demo", "--replicas", "1,2", "--find-capacity"], "--find-capacity needs at least one --slo"),
        (
            [
                "--target",
                URLS[0],
                "--target",
                URLS[1],
                "--replicas",
                "1,2,4",
                "--find-capacity",
                "--slo",
                "p90<1s",
            ],
            "--replicas 4 needs 4 targets, 2 given",
        ),
        (
            [
                "--target",
                URLS[0],
                "--target",
                URLS[0] + "/",
                "--replicas",
                "1,2",
                "--find-capacity",
                "--slo",
                "p90<1s",
            ],
            "is given twice",
        ),
        (["--target", URLS[0], "--rates", "10", "--balance", "p2c"], "--balance spreads the requests"),
        (
            ["--demo", "--replicas", "1,2", "--find-capacity", "--slo", "p90<1s", "--balance", "fastest"],
            "fastest",
        ),
        (
            [
                "--demo",
                "--replicas",
                "1,2",
                "--find-capacity",
                "--slo",
                "p90<1s",
                "--scenario",
                "kserve_v2_grpc",
            ],
            "a gRPC scenario cannot be balanced",
        ),
    ],
)
def test_cli_bad_input_is_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    out = tmp_path / "sweep"
    assert main(["sweep", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not out.exists()


def test_targets_file_too_short_for_the_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listing = tmp_path / "replicas.txt"
    listing.write_text(f"# the fleet\n{URLS[0]}\n\n{URLS[1]}\n", encoding="utf-8")
    args = ["--targets", str(listing), "--replicas", "1,2,4", "--find-capacity", "--slo", "p90<1s"]
    assert main(["sweep", *args, "--out", str(tmp_path / "out")]) == 2
    assert "--replicas 4 needs 4 targets, 2 given" in capsys.readouterr().err


def test_help_teaches_scaling(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    text = capsys.readouterr().out
    for expected in ("--replicas N1,N2,...", "--balance POLICY", "scaling.json", "Universal Scalability Law"):
        assert expected in text


# -- end to end: demo replicas of one worker each (20 ms: about 45 req/s a replica) -------------


@pytest.mark.e2e
def test_demo_replicas_scale_the_capacity(tmp_path: Path) -> None:
    out = tmp_path / "scaling"
    # 1 replica: 30 rps passes, 60 fails (over its ~45 req/s). 2 replicas: the search starts at
    # the linear ideal, 60, which two workers serve; 120 fails. Two steps a count keep it short.
    result = run_cli(
        "sweep", "--demo", "--replicas", "1,2", "--demo-workers", "1", "--demo-latency-ms", "20",
        "--find-capacity", "--start-rate", "30", "--max-steps", "2", "--slo", "p50<60ms",
        "--scenario", "json_post", "--step-duration", "2s", "--warmup", "0.5s", "--no-sampler",
        "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    saved = read_json(out / "scaling.json")
    caps = {p["replicas"]: p["capacity_rps"] for p in saved["points"]}
    why = {n: read_json(out / f"replicas-{n}" / "sweep.json")["steps"] for n in (1, 2)}
    assert caps[1] and caps[2] and caps[2] > caps[1], why
    assert why[2][0]["offered"] == 2 * caps[1]  # from the linear ideal
    step = read_json(out / "replicas-2" / why[2][0]["run_dir"] / "summary.json")
    served = {t["url"]: t["requests"] for t in step["targets"]["targets"]}
    assert len(served) == 2 and min(served.values()) > 0.4 * sum(served.values())  # round-robin
    for name in (
        "scaling.json",
        "scaling.md",
        "scaling.html",
        "replicas-1/sweep.html",
        "replicas-2/sweep.html",
    ):
        assert (out / name).is_file(), name
    assert saved["fit"]["model"] == "amdahl" and saved["validation"]["validated"] is False
    assert result.stdout.splitlines()[-4].startswith("Scaling (capacity, efficiency) 1: ")
