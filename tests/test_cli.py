"""The real `loadbench` command: bad input (one line on stderr, exit code 2, no run directory),
and the wiring of `compare` and `history` on real runs."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from helpers import DIGITS, demo_process, run_cli


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("loadbench: error: "), lines[0]
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_unreachable_target(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run_cli("run", "--target", f"http://127.0.0.1:{closed_port()}", "-d", "5s", "--out", str(out))
    assert_one_line_error(result, "unreachable")
    assert not out.exists()


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/x",
        "127.0.0.1:8000",
        "http://",
        "http://127.0.0.1:99999",
        "http://127.0.0.1:8000/?api_key=x",
    ],
)
def test_non_http_target(url: str) -> None:
    assert_one_line_error(run_cli("run", "--target", url), "target")


def test_unknown_scenario(demo_url: str, tmp_path: Path) -> None:
    result = run_cli("run", "--target", demo_url, "--scenario", "nope", "--out", str(tmp_path / "r"))
    assert_one_line_error(result, "unknown scenario 'nope'", "json_post")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["-d", "3x"], "3x"),
        (["-d", "10s", "--warmup", "10s"], "--warmup"),
        (["--users", "0"], "--users"),
        (["--users", "many"], "--users"),
        (["--spawn-rate", "-1"], "--spawn-rate"),
    ],
)
def test_bad_run_options(demo_url: str, tmp_path: Path, args: list[str], fragment: str) -> None:
    result = run_cli("run", "--target", demo_url, "--out", str(tmp_path / "r"), *args)
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--sample-interval", "10ms"], "--sample-interval"),
        (["--server-pid", "999999999"], "no such process"),
        (["--server-name", "no-such-process-name-xyz"], "no running process"),
        (["--scrape", "ftp://127.0.0.1/metrics"], "ftp://"),
        (["--scrape-match", "(unclosed"], "--scrape-match"),
    ],
)
def test_bad_sampler_options(demo_url: str, tmp_path: Path, args: list[str], fragment: str) -> None:
    result = run_cli("run", "--target", demo_url, "--out", str(tmp_path / "r"), *args)
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "r").exists()


def test_unreachable_agent(demo_url: str, tmp_path: Path) -> None:
    out = tmp_path / "r"
    result = run_cli(
        "run", "--target", demo_url, "--agent", f"http://127.0.0.1:{closed_port()}", "--out", str(out)
    )
    assert_one_line_error(result, "agent", "unreachable")
    assert not out.exists()


def test_agent_refuses_to_bind_beyond_loopback_without_a_token() -> None:
    result = run_cli("agent", "--bind", "0.0.0.0", "--port", "0")
    assert_one_line_error(result, "token")


def test_unwritable_out_dir(demo_url: str, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run_cli(
        "run",
        "--target",
        demo_url,
        "--scenario",
        "json_post",
        "--data",
        str(DIGITS),
        "--out",
        str(blocker / "run"),
    )
    assert_one_line_error(result, "cannot write run directory")


def test_existing_run_dir_needs_force(demo_url: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    result = run_cli(
        "run", "--target", demo_url, "--scenario", "json_post", "--data", str(DIGITS), "--out", str(out)
    )
    assert_one_line_error(result, "--force")
    assert (out / "keep.txt").read_text() == "precious"
    assert not (out / "meta.json").exists()


def test_scenario_syntax_error(demo_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "broken.py"
    bad.write_text("from locust import HttpUser\n\nclass User(HttpUser:\n    pass\n")
    assert_one_line_error(
        run_cli("run", "--target", demo_url, "--scenario", str(bad)), "line 3", "syntax error"
    )


def test_scenario_without_user_class(demo_url: str, tmp_path: Path) -> None:
    empty = tmp_path / "empty.py"
    empty.write_text("X = 1\n")
    assert_one_line_error(
        run_cli("run", "--target", demo_url, "--scenario", str(empty)), "no Locust User class"
    )


def test_malformed_data_line(demo_url: str, tmp_path: Path) -> None:
    data = tmp_path / "rows.jsonl"
    data.write_text('{"inputs": [[0]]}\n{"inputs": [[0]\n')
    out = tmp_path / "r"
    result = run_cli(
        "run", "--target", demo_url, "--scenario", "json_post", "--data", str(data), "--out", str(out)
    )
    assert_one_line_error(result, "line 2", "invalid JSON")
    assert not out.exists()


def test_json_post_needs_a_body(demo_url: str) -> None:
    assert_one_line_error(
        run_cli("run", "--target", demo_url, "--scenario", "json_post"), "--payload", "--data"
    )


def test_bad_payload_json(demo_url: str) -> None:
    result = run_cli("run", "--target", demo_url, "--scenario", "json_post", "--payload", "{nope")
    assert_one_line_error(result, "--payload is not valid JSON")


def test_unknown_scenario_option(demo_url: str) -> None:
    result = run_cli("run", "--target", demo_url, "--scenario", "kserve_v2", "--bogus", "1")
    assert_one_line_error(result, "kserve_v2", "--bogus")


def test_v2_unknown_model(demo_url: str) -> None:
    result = run_cli("run", "--target", demo_url, "--scenario", "kserve_v2", "--model", "nosuch", "-d", "5s")
    assert_one_line_error(result, "nosuch")


def test_bad_header(demo_url: str) -> None:
    assert_one_line_error(run_cli("run", "--target", demo_url, "--header", "no colon here"), "bad header")


def test_report_on_missing_dir(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("report", str(tmp_path / "nothing")), "does not exist")


def test_report_on_corrupt_run_dir(tmp_path: Path) -> None:
    (tmp_path / "meta.json").write_text('{"format": 1, "started_unix_s": 1000.0, "settings": {}}')
    (tmp_path / "requests.csv").write_text("start_unix_s,latency_ms\n1.0,2.0\n")
    assert_one_line_error(run_cli("report", str(tmp_path)), "missing column")
    (tmp_path / "meta.json").write_text("{not json")
    assert_one_line_error(run_cli("report", str(tmp_path)), "meta.json", "not valid JSON")


def test_no_command_prints_help() -> None:
    result = run_cli()
    assert result.returncode == 2
    assert "loadbench run --demo" in result.stdout


def test_help_teaches() -> None:
    result = run_cli("run", "--help")
    assert result.returncode == 0
    for text in (
        "--target",
        "--scenario",
        "--duration",
        "--warmup",
        "json_post",
        "kserve_v2",
        "openai_chat",
        "examples:",
    ):
        assert text in result.stdout


def test_scenarios_lists_builtins() -> None:
    result = run_cli("scenarios")
    assert result.returncode == 0
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert {"json_post", "kserve_v2", "openai_chat", "openai_completions"} <= set(names)
    assert names == sorted(names)


def test_compare_and_history_through_the_command_line(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for name, latency in (("base", "0"), ("slow", "15")):
        with demo_process(latency_ms=float(latency)) as url:
            result = run_cli(
                "run", "--target", url, "--scenario", "json_post", "--data", str(DIGITS), "-u", "2",
                "-d", "3s", "--warmup", "0.5s", "--out", str(runs / name), "--quiet", "--no-sampler",
            )  # fmt: skip
        assert result.returncode == 0, result.stderr

    same = run_cli(
        "compare",
        str(runs / "base"),
        str(runs / "base"),
        "--fail-on",
        "p99>+10%",
        "--out",
        str(tmp_path / "c1"),
    )
    assert same.returncode == 0, same.stderr
    assert (tmp_path / "c1" / "compare.md").read_text().splitlines()[0] == same.stdout.splitlines()[0]
    assert json.loads((tmp_path / "c1" / "compare.json").read_text())["passed"] is True

    worse = run_cli(
        "compare",
        str(runs / "base"),
        str(runs / "slow"),
        "--fail-on",
        "p50>+10%",
        "--out",
        str(tmp_path / "c2"),
    )
    assert worse.returncode == 1, worse.stderr
    result = json.loads((tmp_path / "c2" / "compare.json").read_text())
    assert result["passed"] is False and [r["rule"] for r in result["failed_rules"]] == ["p50>+10%"]
    assert result["metrics"]["latency_ms.p50"]["verdict"] == "worse"
    assert (tmp_path / "c2" / "compare.html").exists()

    assert_one_line_error(
        run_cli("compare", str(runs / "base"), str(runs / "slow"), "--fail-on", "p99 bigger"), "p99 bigger"
    )
    assert_one_line_error(run_cli("compare", str(runs / "base")), "candidate")

    history = run_cli("history", str(runs), "--out", str(tmp_path / "h"))
    assert history.returncode == 0, history.stderr
    assert (tmp_path / "h" / "history.html").exists() and (tmp_path / "h" / "history.json").exists()
    assert_one_line_error(run_cli("history", str(tmp_path / "nothing-*")), "")
