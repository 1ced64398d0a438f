"""tests/slowest.py's durations file, and the order tests/conftest.py hands test files out in."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import conftest
import pytest
import slowest
from helpers import REPO

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
<testcase classname="tests.ui.test_webui" name="test_a" time="40.5"/>
<testcase classname="tests.ui.test_webui" name="test_b" time="2.25"/>
<testcase classname="tests.test_values" name="test_c" time="0.5"/>
<testcase classname="tests.report.test_report.TestPage" name="test_d" time="7.0"/>
</testsuite></testsuites>
"""


def test_durations_sum_each_files_tests_slowest_first(tmp_path: Path) -> None:
    junit = tmp_path / "unit.xml"
    junit.write_text(JUNIT, encoding="utf-8")
    out = tmp_path / "durations.json"
    assert slowest.main(["--write-durations", str(out), str(junit)]) == 0
    written = json.loads(out.read_text(encoding="utf-8"))
    # A class inside a file counts for its file; the order is the file's seconds, slowest first.
    assert list(written.items()) == [
        ("tests/ui/test_webui.py", 42.8),
        ("tests/report/test_report.py", 7.0),
        ("tests/test_values.py", 0.5),
    ]


def test_the_committed_durations_name_test_files_that_exist() -> None:
    durations = json.loads((REPO / "tests" / "durations.json").read_text(encoding="utf-8"))
    missing = [name for name in durations if not (REPO / name).is_file()]
    assert not missing, f"renew tests/durations.json (make durations): {missing}"
    assert list(durations.values()) == sorted(durations.values(), reverse=True)


@dataclass
class Item:
    nodeid: str


def test_collection_puts_the_slowest_file_first_and_keeps_each_files_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    durations = tmp_path / "durations.json"
    durations.write_text(json.dumps({"tests/b.py": 30.0, "tests/c.py": 2.0}), encoding="utf-8")
    monkeypatch.setattr(conftest, "DURATIONS", durations)
    ids = ["tests/a.py::one", "tests/a.py::two", "tests/b.py::x[2]", "tests/b.py::x[1]", "tests/c.py::z"]
    ids += ["tests/d.py::first", "tests/d.py::second"]
    items = [Item(i) for i in ids]
    conftest.pytest_collection_modifyitems(None, items)  # type: ignore[arg-type]
    # b (30 s), then the files never timed (a, d: NEW_FILE_S each, in their collected order), then
    # c (2 s); within a file, pytest's own order (what its module fixtures expect).
    assert [i.nodeid for i in items] == [
        "tests/b.py::x[2]",
        "tests/b.py::x[1]",
        "tests/a.py::one",
        "tests/a.py::two",
        "tests/d.py::first",
        "tests/d.py::second",
        "tests/c.py::z",
    ]


def test_without_durations_the_collected_order_stays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "DURATIONS", tmp_path / "absent.json")
    items = [Item("tests/z.py::a"), Item("tests/a.py::b")]
    conftest.pytest_collection_modifyitems(None, items)  # type: ignore[arg-type]
    assert [i.nodeid for i in items] == ["tests/z.py::a", "tests/a.py::b"]
