"""docs/ci.md's pipelines, run: every `loadbench run` / `loadbench compare` line of its GitHub
Actions and GitLab CI blocks, against the demo, shortened only in duration, so the doc cannot rot."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import junitparser
from helpers import REPO, demo_process

DOC = REPO / "docs" / "ci.md"
DOC_TARGET = "http://127.0.0.1:8000"
SHORTER = {"-u 8 -d 60s --warmup 5s": "-u 2 -d 1s --warmup 0s --no-sampler"}


def doc_commands(marker: str) -> list[str]:
    """The loadbench run/compare command lines of the YAML block holding ``marker``."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    block = next(b for b in blocks if marker in b)
    logical = re.sub(r"\\\n\s*", "", block)  # shell line continuations
    return [m.group(0).strip() for m in re.finditer(r"loadbench (?:run|compare) [^\n]*", logical)]


GITHUB, GITLAB = ".github/workflows/latency.yml", ".gitlab-ci.yml"


def test_both_pipelines_run_the_same_loadbench_lines() -> None:
    """So that running one of them (below) checks both."""
    assert doc_commands(GITLAB) == doc_commands(GITHUB)


def test_doc_pipeline_runs(tmp_path: Path) -> None:
    commands = doc_commands(GITHUB)
    assert [c.split()[1] for c in commands] == ["run", "compare"], commands
    run, compare = commands
    assert "--junit" in run and "--slo" in run and "--junit" in compare and "--fail-on" in compare
    # A paced demo (2 ms a request): the doc's lines are the subject, not the load.
    with demo_process(latency_ms=2) as url:
        for old, new in {DOC_TARGET: url, **SHORTER}.items():
            assert old in run
            run = run.replace(old, new)

        def shell(line: str) -> subprocess.CompletedProcess[str]:
            line = line.replace("loadbench ", f"'{sys.executable}' -m loadbench ", 1)
            env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
            return subprocess.run(
                ["bash", "-c", line], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env
            )

        first = shell(run)  # the main branch's run: kept as the artifact the next one compares with
        assert first.returncode in (0, 1), first.stderr
    # The branch's run would be the same line again: a copy of this one stands in for it (a second
    # run of the same command proves nothing more about the doc), and the compare line runs as written.
    shutil.copytree(tmp_path / "run", tmp_path / "base")
    done = shell(compare)
    assert done.returncode in (0, 1), done.stderr
    assert (tmp_path / "compare" / "compare.md").is_file()
    names = {
        case.name
        for path in ("junit-run.xml", "junit-compare.xml")
        for suite in junitparser.JUnitXml.fromfile(str(tmp_path / path))
        for case in suite
    }
    assert {"p99<300ms", "error_rate<1%", "p99>+10%", "throughput<-5%", "error_rate>+0.5pp"} <= names
