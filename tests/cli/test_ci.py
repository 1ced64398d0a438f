"""`--junit` and the GitHub Actions output of `run`, `compare` and `sweep`, through the real
command: the XML a JUnit parser reads, bad paths refused before the load, no credential printed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import junitparser
import pytest
from helpers import REPO, demo_process, run_cli

SHORT = ("-d", "1s", "--warmup", "0s", "-u", "2", "--quiet", "--no-sampler")


def _results(path: Path) -> dict[str, list[str]]:
    suites = list(junitparser.JUnitXml.fromfile(str(path)))
    return {case.name: [type(r).__name__ for r in case.result] for suite in suites for case in suite}


def _cli_env(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loadbench", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
    )


def test_run_junit_and_github_output(tmp_path: Path) -> None:
    step = tmp_path / "step.md"
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(step)}
    # A paced demo (2 ms a request): the outputs are the subject, not the load; p99 stays far
    # above the 0.001 ms gate that must fail.
    with demo_process(latency_ms=2) as url:
        done = _cli_env(
            "run", "--target", url, *SHORT, "--header", "Authorization: Bearer tok-SECRET-123",
            "--slo", "p99<0.001ms", "--slo", "error_rate<1%", "--junit", "j.xml", "-o", "run",
            cwd=tmp_path, env=env,
        )  # fmt: skip
    assert done.returncode == 1, done.stderr
    results = _results(tmp_path / "j.xml")
    assert results == {
        "run completed": [],
        "valid measurement": results["valid measurement"],  # a busy test host may call it INVALID
        "p99<0.001ms": ["Failure"],
        "error_rate<1%": [],
    }
    suite = next(iter(junitparser.JUnitXml.fromfile(str(tmp_path / "j.xml"))))
    props = {p.name: p.value for p in suite.properties()}
    assert props["run_dir"] == "run" and props["target"] == url and props["scenario"]
    failure = next(c for c in suite if c.name == "p99<0.001ms").result[0]
    assert failure.message.startswith("SLO p99<0.001ms failed: measured ") and "95% CI" in failure.message
    errors = [line for line in done.stdout.splitlines() if line.startswith("::error ")]
    assert any(
        line.startswith("::error title=loadbench run%3A p99<0.001ms::SLO p99<0.001ms failed")
        for line in errors
    )
    assert "SECRET" not in done.stdout + done.stderr + (tmp_path / "j.xml").read_text(encoding="utf-8")
    assert (
        step.read_text(encoding="utf-8")
        == (tmp_path / "run" / "summary.md").read_text(encoding="utf-8") + "\n"
    )


@pytest.mark.parametrize("junit", ["missing/j.xml", "."])
def test_run_refuses_an_unwritable_junit_before_the_load(tmp_path: Path, junit: str) -> None:
    done = run_cli("run", "--demo", *SHORT, "--junit", junit, "-o", "run", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "--junit" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def analyzed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("runs")
    runs = []
    for name in ("run-demo-openai_chat", "run-small"):
        shutil.copytree(REPO / "tests" / "data" / name, root / name)
        assert run_cli("report", str(root / name)).returncode == 0
        runs.append(root / name)
    return runs[0], runs[1]


def test_compare_junit_one_case_per_rule(tmp_path: Path, analyzed: tuple[Path, Path]) -> None:
    base, candidate = analyzed
    rules = ["p50>+1%", "p50<-1%", "throughput<-99%", "ttft_p50>+5%"]
    args = [a for rule in rules for a in ("--fail-on", rule)]
    done = run_cli(
        "compare", str(base), str(candidate), "--force", *args, "--junit", str(tmp_path / "c.xml"),
        "-o", str(tmp_path / "cmp"),
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    results = _results(tmp_path / "c.xml")
    assert set(results) >= set(rules)
    # p50 cannot have moved significantly both ways; only the LLM run has a TTFT: not checked.
    assert results["ttft_p50>+5%"] == ["Skipped"]
    assert [results["p50>+1%"], results["p50<-1%"]].count(["Failure"]) <= 1
    assert (done.returncode == 1) == any(r == ["Failure"] for r in results.values())
    assert any(name.startswith("valid measurement (base ") for name in results)
    suite = next(iter(junitparser.JUnitXml.fromfile(str(tmp_path / "c.xml"))))
    assert suite.name.startswith("loadbench compare ") and " vs " in suite.name


def test_compare_refuses_an_unwritable_junit(tmp_path: Path, analyzed: tuple[Path, Path]) -> None:
    base = analyzed[0]
    done = run_cli("compare", str(base), str(base), "--junit", "/proc/nope/c.xml", "-o", str(tmp_path / "c"))
    assert done.returncode == 2 and "--junit" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "c").exists()


def test_sweep_junit_one_case_per_step(tmp_path: Path) -> None:
    done = run_cli(
        "sweep", "--demo", "--demo-latency-ms", "2", "--concurrency", "1,2", "--step-duration", "1s",
        "--warmup", "0s", "--slo", "error_rate<1%", "--junit", "s.xml", "-o", "sw", "--quiet", "--no-sampler",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = _results(tmp_path / "s.xml")
    assert list(results) == ["step-01 1 user", "step-02 2 users"]
    suite = next(iter(junitparser.JUnitXml.fromfile(str(tmp_path / "s.xml"))))
    props = {p.name: p.value for p in suite.properties()}
    assert props["sweep_dir"] == "sw" and "capacity" in props
