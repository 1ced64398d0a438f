"""``loadbench sweep --shared-prefix-tokens``: its checks, and prefix.json/.md/.html from the steps'
run directories (the steps themselves are ordinary runs: tests/analyze/test_first_requests.py)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from helpers import run_cli

from loadbench.cli.prefixsweep import prefix_lengths
from loadbench.record import rundir
from loadbench.sweep.prefix import PrefixConfig, build_prefix, prefix_dir_name, render_prefix, step_point
from loadbench.sweep.sweep import SweepConfig


def test_lengths_parse_and_bad_ones_are_refused() -> None:
    assert prefix_lengths("0,512, 2048") == [0, 512, 2048]
    for bad in ("", "a,1", "-1,5", "5,5", ",".join(str(n) for n in range(21))):
        with pytest.raises(argparse.ArgumentTypeError):
            prefix_lengths(bad)


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--concurrency", "2", "--shared-prefix-tokens", "0,x"], "numbers of tokens"),
        (["--concurrency", "2", "--shared-prefix-tokens", "0,512", "--scenario", "json_post"], "LLM scenario"),
        (["--find-capacity", "--slo", "p99<1s", "--shared-prefix-tokens", "0,512", "-s", "openai_chat"], "--find-capacity"),
    ],
)  # fmt: skip
def test_the_sweep_refuses_what_it_cannot_run_in_one_line(
    extra: list[str], said: str, tmp_path: Path
) -> None:
    done = run_cli(
        "sweep", "--target", "http://127.0.0.1:9", *extra, "--out", str(tmp_path / "s"), timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert (
        said in done.stderr and "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) <= 2
    )
    assert not (tmp_path / "s").exists()


def write_step(top: Path, tokens: int, first: float | None, later: float, p99: float) -> dict[str, object]:
    run = top / prefix_dir_name(tokens) / "step-01-users-2"
    run.mkdir(parents=True)
    summary = {
        "ttft_ms": {"p50": later, "p99": p99},
        "throughput_rps": 4.0,
        "requests": {"errors": 0},
        "shared_prefix": {
            "tokens": tokens,
            "first": {"count": 2 if first else 0, "ttft_ms": {"p50": first, "p99": first, "max": first}},
            "later": {"count": 6, "ttft_ms": {"p50": later, "p99": p99, "max": p99}},
            "speedup_p50": None if first is None else round(first / later, 3),
        }
        if tokens
        else None,
    }
    rundir.write_json(run / "summary.json", summary)
    return {"run_dir": run.name, "offered": 2.0}


def test_the_report_has_a_row_per_length_and_step_and_escapes_what_it_was_given(tmp_path: Path) -> None:
    config = PrefixConfig(
        [0, 1000, 3000],
        SweepConfig(
            target="http://127.0.0.1:1", mode="users", loads=[2.0], step_duration_s=3.0, warmup_s=1.0,
            run_args=["--scenario", "openai_chat", "--header", "X-Note: <script>"],
        ),
    )  # fmt: skip
    points = [
        step_point(n, write_step(tmp_path, n, first, later, p99), tmp_path / prefix_dir_name(n), "users")
        for n, first, later, p99 in (
            (0, None, 31.0, 33.0),
            (1000, 80.0, 31.5, 34.0),
            (3000, 180.0, 31.8, 40.0),
        )
    ]
    result = build_prefix(config, points, "complete", 1000.0, "openai_chat")
    assert [p["tokens"] for p in result["points"]] == [0, 1000, 3000]
    assert result["points"][2]["uncached"] == {
        "count": 2,
        "ttft_ms": {"p50": 180.0, "p99": 180.0, "max": 180.0},
    }
    assert result["points"][2]["speedup_p50"] == round(180.0 / 31.8, 3) and result["notes"] == []
    json_path, md_path, html_path = render_prefix(result, tmp_path)
    assert json.loads(json_path.read_text())["points"][1]["run_dir"] == "prefix-1000/step-01-users-2"
    markdown = md_path.read_text()
    assert "| 3,000 | 2 users | 31.8 ms | 40.0 ms | 180 ms (2) | 31.8 ms (6) | 5.66× |" in markdown
    html = html_path.read_text()
    assert "plot-prefix" in html and "<script>" not in html and "&lt;script&gt;" in html
    # A length not measured (interrupted) is said.
    assert (
        "not measured (interrupted): 3000"
        in build_prefix(config, points[:2], "interrupted", 1000.0, None)["notes"][0]
    )


def test_run_refuses_a_cold_start_of_none(tmp_path: Path) -> None:
    done = run_cli("run", "--target", "http://127.0.0.1:9", "--cold-start", "0", "--out", str(tmp_path / "r"))
    assert done.returncode == 2 and "--cold-start" in done.stderr and "Traceback" not in done.stderr
