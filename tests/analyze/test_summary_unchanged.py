"""``summary.json`` and ``summary.md`` of fixed run directories, byte for byte as the code before the
package redesign wrote them.

``tests/data/run-demo-*/`` are two real demo runs (json_post with labels and resource samples;
openai_chat with token timings and an SLO), recorded and analyzed by loadbench 0.1.0 at commit
7a24888, the last flat layout; ``summary.before.*`` are what its ``loadbench report DIR`` wrote.
The redesign promised the same numbers, in the same order, in the same bytes: a key that
moves, a float that rounds differently or a section that is built in another order fails here.
An intended change of the summary regenerates these files (``loadbench report`` on a copy).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from loadbench.analyze.analyzer import analyze_run
from loadbench.cli.main import main
from loadbench.record import rundir

DATA = Path(__file__).resolve().parents[1] / "data"
RUNS = sorted(p.name for p in DATA.glob("run-demo-*"))


def test_the_fixtures_are_there() -> None:
    assert RUNS == ["run-demo-json_post", "run-demo-openai_chat"]


@pytest.mark.parametrize("name", RUNS)
def test_summary_json_is_byte_for_byte_unchanged(tmp_path: Path, name: str) -> None:
    run = tmp_path / name
    shutil.copytree(DATA / name, run, ignore=shutil.ignore_patterns("summary.before.*"))
    analyze_run(run)
    before = (DATA / name / "summary.before.json").read_bytes()
    assert (run / rundir.SUMMARY).read_bytes() == before


@pytest.mark.parametrize("name", RUNS)
def test_loadbench_report_writes_the_same_summaries(tmp_path: Path, name: str) -> None:
    # The whole stage as users run it, on a directory written before the change.
    run = tmp_path / name
    shutil.copytree(DATA / name, run, ignore=shutil.ignore_patterns("summary.before.*"))
    assert main(["report", str(run)]) == 0
    assert (run / rundir.SUMMARY).read_bytes() == (DATA / name / "summary.before.json").read_bytes()
    assert (run / "summary.md").read_bytes() == (DATA / name / "summary.before.md").read_bytes()
    assert (run / "report.html").stat().st_size > 0
