"""The real `loadbench` command: bad input (one line on stderr, exit code 2, no run directory),
and the wiring of `compare` and `history` on real runs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from helpers import DIGITS, REPO, demo_process, read_json, run_cli, wait_for_lines
from run_text import files_text


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
        (["--max-body", "10XB"], "--max-body"),
        (["--max-body", "0"], "at least 1 byte"),
        (["--follow-redirects", "many"], "--follow-redirects"),
        (["--follow-redirects", "1000"], "use 0 to 100"),
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


def test_the_parser_imports_no_analysis_library() -> None:
    # Every command's parser is built at start: a module that imports pandas, pyarrow, matplotlib,
    # DuckDB or Locust at its top makes `loadbench --help` (and `loadbench demo`) wait for it
    # (cli/export.py did: 0.58 CPU-s for --help against 0.14). Each command imports them itself.
    heavy = ("pandas", "pyarrow", "matplotlib", "duckdb", "locust", "gevent", "numpy", "grpc")
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from loadbench.cli.main import build_parser; build_parser(); "
         "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert not set(heavy) & set(result.stdout.split()), result.stdout


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
    # 60 ms more per request: far beyond what a loaded machine adds to the base's own latency.
    # The base's 2 ms paces it to hundreds of requests instead of thousands: the compare needs a
    # clear difference, not throughput. 1.5 s measured stays clear of the 1 s validity minimum.
    for name, latency in (("base", "2"), ("slow", "62")):
        with demo_process(latency_ms=float(latency)) as url:
            result = run_cli(
                "run", "--target", url, "--scenario", "json_post", "--data", str(DIGITS), "-u", "2",
                "-d", "2s", "--warmup", "0.5s", "--out", str(runs / name), "--quiet", "--no-sampler",
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
    md_line = (tmp_path / "c1" / "compare.md").read_text().splitlines()[0]
    assert md_line.replace("**", "") == same.stdout.splitlines()[0]  # the same words, as plain text
    itself = json.loads((tmp_path / "c1" / "compare.json").read_text())
    assert itself["passed"] is True and itself["warnings"] == []
    assert "latency_ms.p99" in itself["metrics"] and "throughput_rps" in itself["metrics"]
    for path, m in itself["metrics"].items():  # a real run against itself: no change anywhere
        assert m["verdict"] == "same" and m["delta"] == 0, (path, m)
        assert m["ci"] is None or m["ci"][0] <= 0 <= m["ci"][1], (path, m)

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
    # The terminal is not Markdown: the gate as typed, not as an HTML entity.
    assert "1 gate failed: p50>+10%" in worse.stdout.splitlines()[0] and "&gt;" not in worse.stdout
    result = json.loads((tmp_path / "c2" / "compare.json").read_text())
    assert result["passed"] is False and [r["rule"] for r in result["failed_rules"]] == ["p50>+10%"]

    # Three runs: each candidate against the base; the slow one fails the gate, so exit 1.
    three = run_cli(
        "compare", str(runs / "base"), str(runs / "base"), str(runs / "slow"),
        "--fail-on", "p50>+10%", "--out", str(tmp_path / "c3"),
    )  # fmt: skip
    assert three.returncode == 1, three.stderr
    both = json.loads((tmp_path / "c3" / "compare.json").read_text())
    assert both["passed"] is True and both["all_passed"] is False  # top level: the first candidate
    assert [c["passed"] for c in both["candidates"]] == [True, False]
    assert sum(line.startswith("- ") for line in three.stdout.splitlines()) == 2  # one per candidate
    assert "- slow: loadbench compare: ❌ worse" in three.stdout  # plain text: no Markdown backticks
    # A gate on a metric no run has is bad input, not a silent pass.
    typo = run_cli("compare", str(runs / "base"), str(runs / "slow"), "--fail-on", "latency_ms.p9>+1%")
    assert typo.returncode == 2 and "in none of the runs" in typo.stderr
    assert len(typo.stderr.strip().splitlines()) == 1
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
    unrelated_runs_through_the_command_line(runs, tmp_path)


def unrelated_runs_through_the_command_line(runs: Path, tmp_path: Path) -> None:
    """A run of another scenario against another target, INVALID: compare refuses it without
    --force and, forced, says why on the terminal; history keeps it a series of its own."""
    other = runs / "unrelated"  # after "slow" in start order: a copy of it, renamed
    shutil.copytree(runs / "slow", other)
    meta = read_json(other / "meta.json")
    meta.update(scenario="openai_chat", target="http://10.9.8.7:8000/v1/chat/completions")
    (other / "meta.json").write_text(json.dumps(meta))
    summary = read_json(other / "summary.json")
    summary["validity"] = {"valid": False, "reasons": ["every request failed"]}
    (other / "summary.json").write_text(json.dumps(summary))

    refused = run_cli("compare", str(runs / "base"), str(other), "--out", str(tmp_path / "c4"))
    assert_one_line_error(refused, "scenario ('json_post' vs 'openai_chat')", "target", "--force")
    assert not (tmp_path / "c4").exists()
    forced = run_cli(
        "compare", str(runs / "base"), str(other), "--force", "--fail-on", "error_rate>+50pp", "--out", str(tmp_path / "c4")
    )  # fmt: skip
    assert forced.returncode == 1, forced.stderr  # no rule broken, but a gate on an INVALID run fails
    headline = forced.stdout.splitlines()[0]
    assert "candidate run INVALID" in headline and "✅" not in headline, headline
    warned = [line for line in forced.stderr.splitlines() if line.startswith("loadbench: warning: ")]
    assert any("scenarios differ" in w for w in warned) and any("targets differ" in w for w in warned)
    assert any("the candidate run is INVALID: every request failed" in w for w in warned), forced.stderr

    # history: several directories and globs together; the other series is said, not chained.
    mixed = run_cli(
        "history", str(runs / "base"), str(runs / "s*"), str(other), "--out", str(tmp_path / "h2")
    )
    assert mixed.returncode == 0, mixed.stderr
    assert "2 different scenarios or targets" in mixed.stderr and mixed.stdout.startswith("3 runs")
    data = read_json(tmp_path / "h2" / "history.json")
    series = [r["series"] for r in data["rows"]]  # the demo's port differs per run: the same target
    assert series[0] == series[1] != series[2] == "openai_chat @ 10.9.8.7/v1/chat/completions", series
    assert "2 different scenarios or targets" in (tmp_path / "h2" / "history.html").read_text()
    assert_one_line_error(run_cli("history", str(runs), str(tmp_path / "nothing-*")), "nothing-*")


SECRET = "s3cretPW"


@pytest.mark.parametrize(
    "args",
    [
        ["--target", f"http://user:{SECRET}@127.0.0.1:99999"],
        ["--target", f"ftp://user:{SECRET}@127.0.0.1/x"],
        ["--target", f"http://{SECRET}@127.0.0.1:99999"],  # a lone user token
        ["--target", f"http://user:{SECRET}@127.0.0.1:{closed_port()}", "-d", "5s"],
        ["--target", "DEMO", "-H", f"Authorization Bearer {SECRET}"],  # a header without its colon
        ["--target", "DEMO", "-H", f"X-Api-Key={SECRET}"],
        ["--target", "DEMO", "--scrape", f"http://u:{SECRET}@127.0.0.1:99999/metrics"],
        ["--target", "DEMO", "--scrape", f"ftp://u:{SECRET}@127.0.0.1/metrics"],
        ["--target", "DEMO", "--agent", f"http://u:{SECRET}@127.0.0.1:{closed_port()}"],
    ],
    ids=[
        "bad-port", "ftp", "user-token", "unreachable", "header-no-colon", "header-equals",
        "scrape-bad-port", "scrape-ftp", "agent-unreachable",
    ],
)  # fmt: skip
def test_errors_never_print_credentials(demo_url: str, tmp_path: Path, args: list[str]) -> None:
    args = [demo_url if a == "DEMO" else a for a in args]
    result = run_cli("run", *args, "--out", str(tmp_path / "r"))
    assert_one_line_error(result)
    assert SECRET not in result.stdout + result.stderr, result.stderr
    if "--agent" not in args:  # an agent URL's credentials are its token: shown without them
        assert "***" in result.stderr, result.stderr  # masked in place: which part was wrong shows
    assert not (tmp_path / "r").exists()


def test_config_messages_redact_at_the_source() -> None:
    # Before the CLI's last line of defence: the messages themselves carry no credential.
    from loadbench.errors import LoadbenchError
    from loadbench.values import check_target, parse_header

    for call in (
        lambda: check_target(f"http://user:{SECRET}@127.0.0.1:99999"),
        lambda: check_target(f"ftp://user:{SECRET}@h/x"),
        lambda: parse_header(f"Authorization Bearer {SECRET}"),
    ):
        with pytest.raises(LoadbenchError) as caught:
            call()
        assert SECRET not in str(caught.value) and "***" in str(caught.value)


def test_probe_messages_redact_the_base_url() -> None:
    from loadbench.errors import TargetError
    from loadbench.protocols.probe import check_reachable

    with pytest.raises(TargetError, match="unreachable") as caught:
        check_reachable(f"http://user:{SECRET}@127.0.0.1:{closed_port()}", timeout_s=2)
    assert SECRET not in str(caught.value) and "user:***@" in str(caught.value)


def test_scrub_error_masks_every_secret_of_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from loadbench.cli.main import scrub_error

    monkeypatch.setenv("LOADBENCH_AGENT_TOKEN", "agent-tok-123456")
    argv = [
        "run", "--target", f"http://u:{SECRET}@h:1", "-H", "Authorization: Bearer tok-abcdefgh",
        "--agent-token", "cli-token-999", "--path", "/p?api_key=qkey1234",
    ]  # fmt: skip
    message = f"server said: {SECRET} tok-abcdefgh cli-token-999 agent-tok-123456 qkey1234 at http://x:pw9@h/"
    out = scrub_error(message, argv)
    for secret in (SECRET, "tok-abcdefgh", "cli-token-999", "agent-tok-123456", "qkey1234", "pw9"):
        assert secret not in out, out
    assert out.startswith("server said: ***")


@pytest.fixture(scope="module")
def analyzed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "small"
    shutil.copytree(REPO / "tests" / "data" / "run-small", run)
    assert run_cli("report", str(run)).returncode == 0
    return run


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["demo", "--port", "99999"], "--port"),
        (["demo", "--port", "BUSY"], "in use"),
        (["demo", "--host", "999.1.1.1", "--port", "0"], "999.1.1.1"),
        (["demo", "--port", "0", "--latency-ms", "-5"], "--latency-ms"),
        (["demo", "--port", "0", "--jitter-ms", "nan"], "--jitter-ms"),
        (["demo", "--port", "0", "--llm-itl-ms", "-1"], "--llm-itl-ms"),
        (["agent", "--port", "-1"], "--port"),
        (["agent", "--port", "BUSY"], "in use"),
        (["run", "--demo", "--demo-latency-ms", "-5"], "--demo-latency-ms"),
        (["run", "--demo", "--demo-llm-ttft-ms", "inf"], "--demo-llm-ttft-ms"),
        (["run", "--demo", "--demo-asr-rtf", "-1"], "--demo-asr-rtf"),
        (["run", "--target", "http://127.0.0.1:1", "--master-port", "99999"], "--master-port"),
        (["worker", "--master-port", "70000"], "--master-port"),
        (["compare", "RUN", "RUN", "--out", "/proc/x/compare"], "/proc/x"),
        (["history", "RUN", "--out", "/proc/x/history"], "/proc/x"),
    ],
)
def test_bad_input_is_one_line_not_a_traceback(
    analyzed_run: Path, busy_port: int, args: list[str], fragment: str
) -> None:
    args = [str(busy_port) if a == "BUSY" else str(analyzed_run) if a == "RUN" else a for a in args]
    result = run_cli(*args, timeout=60)
    assert_one_line_error(result, fragment)
    assert result.stdout == "" or "Traceback" not in result.stdout


def demo_children(cli_pid: int) -> list[psutil.Process]:
    """The `loadbench demo` processes a `loadbench run --demo` started (they name it as parent)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        demo = "loadbench.demo" in cmd or "demo" in cmd  # `python -m loadbench.demo` or `loadbench demo`
        if demo and "--parent-pid" in cmd and cmd[cmd.index("--parent-pid") + 1] == str(cli_pid):
            found.append(proc)
    return found


def wait_gone(procs: list[psutil.Process], timeout_s: float = 10.0) -> None:
    _, alive = psutil.wait_procs(procs, timeout=timeout_s)
    assert not alive, f"the demo outlived loadbench: {alive}"


@pytest.mark.parametrize("how", ["ctrl-c", "sigkill"])
def test_terminal_ctrl_c_stops_the_load_before_the_demo(tmp_path: Path, how: str) -> None:
    out = tmp_path / "run"
    # Its own process group, as a shell gives a foreground job: killpg is the terminal's Ctrl-C.
    process = subprocess.Popen(
        [sys.executable, "-m", "loadbench", "run", "--demo", "--scenario", "json_post", "-u", "2",
         "-d", "60s", "--warmup", "0s", "--out", str(out), "--quiet", "--no-sampler"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for_lines(out / "requests.csv", 50)  # --records parquet (the default) writes it during the run
        demos = demo_children(process.pid)
        assert len(demos) == 1, demos
        os.killpg(process.pid, signal.SIGINT if how == "ctrl-c" else signal.SIGKILL)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    wait_gone(demos)  # stopped by loadbench, or (killed) by noticing loadbench is gone
    if how == "sigkill":  # killed: the records stay in the CSV the run was writing
        assert (out / "requests.csv").exists() and not (out / "requests.parquet").exists()
        return
    assert process.returncode == 130, stderr
    # Interrupted, the run ends as any: its records in requests.parquet, its report read from there.
    assert (out / "requests.parquet").exists() and not (out / "requests.csv").exists()
    assert read_json(out / "meta.json")["format"] == 2
    summary = read_json(out / "summary.json")
    assert summary["run"]["status"] == "interrupted"
    # The demo kept serving until the load had stopped: no request failed on the way out.
    assert summary["requests"]["errors"] == 0, summary.get("errors")


def test_demo_is_stopped_when_the_run_fails(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "loadbench", "run", "--demo", "--scenario", "nope", "--out", str(tmp_path / "r")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    demos: list[psutil.Process] = []
    deadline = time.monotonic() + 30
    while process.poll() is None and not demos and time.monotonic() < deadline:
        demos = demo_children(process.pid)
        time.sleep(0.05)
    _, stderr = process.communicate(timeout=60)
    assert_one_line_error(subprocess.CompletedProcess(process.args, process.returncode, "", stderr), "nope")
    assert demos, "the demo was never seen running"
    wait_gone(demos)


# -- several targets, negative durations, --scrape with a query, --quiet ----------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (
            ["run", "--target", "http://127.0.0.1:1", "-t", "http://127.0.0.1:2"],
            "http://127.0.0.1:1 is unreachable",
        ),
        (
            ["master", "--expect-workers", "1", "-t", "http://127.0.0.1:1", "--target=http://127.0.0.1:2"],
            "http://127.0.0.1:1 is unreachable",
        ),
        (["ui", "--target", "http://127.0.0.1:1", "--target", "http://127.0.0.1:1"], "is given twice"),
    ],
    ids=["run", "master", "ui"],
)
def test_a_repeated_target_is_a_second_replica_never_an_override(
    tmp_path: Path, args: list[str], fragment: str
) -> None:
    # The last --target used to win without a word: a run against the wrong endpoint. Now each is
    # a replica, the first checked first; the same one twice is refused.
    result = run_cli(*args, "--reports-dir", str(tmp_path / "r"), timeout=60)
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["-d", "-5s"], "--duration"),
        (["--duration", "-1.5"], "--duration"),
        (["--warmup", "-2s"], "--warmup"),
        (["--timeout=-1m"], "--timeout"),
    ],
)
def test_a_negative_duration_says_so(demo_url: str, tmp_path: Path, args: list[str], fragment: str) -> None:
    # Not argparse's "expected one argument": the value is named, and what it must be.
    result = run_cli("run", "--target", demo_url, "--out", str(tmp_path / "r"), *args)
    value = args[-1].partition("=")[2] or args[-1]
    assert_one_line_error(result, fragment, "must be >= 0", value)
    assert not (tmp_path / "r").exists()


def test_scrape_url_with_a_token_in_its_query(tmp_path: Path) -> None:
    from helpers import json_server

    token = "scrapeTok3n99"
    paths: list[str] = []

    def metrics(handler, state):  # type: ignore[no-untyped-def]
        paths.append(handler.path)
        return 200, b"# TYPE queue_depth gauge\nqueue_depth 3\n"

    out = tmp_path / "r"
    # A paced demo: the scrape is the subject, not the load (hundreds of requests, not thousands).
    with json_server(metrics) as (url, _), demo_process(latency_ms=5) as target:
        result = run_cli(
            "run", "--target", target, "--scenario", "json_post", "--data", str(DIGITS), "-u", "2",
            "-d", "1s", "--warmup", "0s", "--out", str(out), "--quiet", "--sample-interval", "0.1",
            "--scrape", f"{url}/metrics?token={token}&format=text", "--scrape-interval", "0.2",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # Scraped as given, query and all ...
    assert any(f"token={token}" in p for p in paths), paths
    assert "prom.queue_depth" in (out / "samples.jsonl").read_text()
    # ... and the token is in nothing written or printed.
    assert token not in result.stdout + result.stderr
    for file, text in files_text(out).items():
        assert token not in text, file
    assert "token=***" in (out / "sampler.json").read_text()


def test_quiet_keeps_locusts_log_lines_off_the_terminal(demo_url: str, tmp_path: Path) -> None:
    # A task that fails outside its request: Locust logs it (with a traceback) from its own
    # loggers. Under --quiet the run's summary counts it; the terminal shows none of Locust's lines.
    locustfile = tmp_path / "flaky.py"
    locustfile.write_text(
        "from locust import FastHttpUser, constant, task\n"
        "class Flaky(FastHttpUser):\n"
        "    wait_time = constant(0.01)\n"
        "    @task\n"
        "    def go(self):\n"
        "        self.client.get('/health')\n"
        "        raise ValueError('flaky task broke')\n"
    )
    out = tmp_path / "r"
    args = ["run", "--target", demo_url, "--scenario", str(locustfile), "-u", "2", "-d", "1s"]
    result = run_cli(*args, "--warmup", "0s", "--out", str(out), "--quiet", "--no-sampler")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
    assert "flaky task broke" in json.dumps(read_json(out / "summary.json")["notices"])


# --- exit codes (README "Exit codes") ------------------------------------------------------------


def test_run_exit_codes_from_the_summary() -> None:
    from loadbench.cli.summary import run_exit_code

    def summary(status: str, total: int, ok: int, passed: bool | None = None) -> dict:
        checks = [] if passed is None else [{"expr": "p99<1s", "passed": passed}]
        return {
            "run": {"status": status},
            "requests": {"total": total, "ok": ok},
            "slo": {"passed": passed, "checks": checks},
            "validity": {"valid": ok > 0, "reasons": []},
        }

    assert run_exit_code(summary("complete", 10, 10)) == 0
    assert run_exit_code(summary("complete", 10, 10, passed=False)) == 1
    assert run_exit_code(summary("complete", 10, 0)) == 3  # every request failed (with --keep-going)
    assert run_exit_code(summary("complete", 10, 0, passed=False)) == 3
    assert run_exit_code(summary("failed", 0, 0)) == 3  # nothing recorded, or stopped early
    assert run_exit_code(summary("interrupted", 10, 0)) == 130


def test_run_help_documents_exit_codes_and_keep_going() -> None:
    result = run_cli("run", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "--keep-going" in text
    assert "3 the target failed every request, or nothing was recorded" in text
    assert "130 interrupted" in text


def test_a_run_that_records_nothing_exits_3(demo_url: str, tmp_path: Path) -> None:
    locustfile = tmp_path / "idle.py"
    locustfile.write_text(
        "from locust import User, constant, task\n"
        "class Idle(User):\n"
        "    wait_time = constant(0.1)\n"
        "    @task\n"
        "    def go(self):\n"
        "        pass\n"
    )
    out = tmp_path / "r"
    result = run_cli(
        "run", "--target", demo_url, "--scenario", str(locustfile), "-u", "1", "-d", "1s",
        "--warmup", "0s", "--out", str(out), "--quiet", "--no-sampler",
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert read_json(out / "meta.json")["status"] == "failed"
    assert (out / "report.html").is_file()
