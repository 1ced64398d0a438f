"""`run_config`: the one place a parsed command line becomes a `RunConfig`, for `run` and `ui`."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadbench.cli.config import run_config
from loadbench.cli.main import build_parser
from loadbench.drive.config import RunConfig


def test_run_options_reach_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADBENCH_AGENT_TOKEN", "from-env")
    args, extra = build_parser().parse_known_args(
        ["run", "--target", "http://x", "-u", "3", "-d", "1m", "--rate", "5", "--slo", "p99<1s",
         "--no-sampler", "--out", "o", "--workers", "2", "--stages", "s.json", "--path", "/p"]
    )  # fmt: skip
    config = run_config(args, "http://x", extra)
    assert (config.users, config.duration_s, config.rate, config.slos) == (3, 60.0, 5.0, ["p99<1s"])
    assert (config.out_dir, config.workers, config.stages_file) == (Path("o"), 2, Path("s.json"))
    assert config.sample_interval_s is None and config.agent_token == "from-env"
    assert config.scenario_args == ["--path", "/p"]


def test_ui_takes_what_it_has_and_runs_until_stopped() -> None:
    args, extra = build_parser().parse_known_args(
        ["ui", "--target", "http://x", "--agent-token", "t", "-u", "4"]
    )
    config = run_config(args, "http://x", extra, duration_s=float("inf"))
    default = RunConfig(target="http://x")
    assert config.duration_s == float("inf") and config.users == 4 and config.agent_token == "t"
    assert (config.out_dir, config.rate, config.workers) == (default.out_dir, default.rate, default.workers)
    assert config.sample_interval_s == 0.5
