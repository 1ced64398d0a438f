"""The JUnit writer and the GitHub Actions output: hostile text stays valid XML, the counts are
the ones CI servers read, and a real JUnit parser (junitparser) reads what we write."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from pathlib import Path

import junitparser
import pytest

from loadbench.errors import UsageError
from loadbench.report.ci import escape_data, escape_property, publish, workflow_command
from loadbench.report.gates import run_cases, run_suite
from loadbench.report.junit import Case, Suite, check_junit_path, junit_xml, write_junit, xml_safe

HOSTILE = "p99<300ms \"quoted\" 'single' & <script>alert(1)</script>\nline2\r\x00\x1b[31m\x0b\ufffe end"


def _suite() -> Suite:
    return Suite(
        name=f"loadbench run {HOSTILE}",
        properties={"target": 'http://h/<x>?q="1"', "scenario": HOSTILE},
        cases=[
            Case("run completed", "run", "passed", detail=HOSTILE),
            Case(HOSTILE, "slo", "failed", message=f"SLO failed: {HOSTILE}", detail=HOSTILE),
            Case("rule", "compare", "skipped", message=HOSTILE),
        ],
    )


def test_hostile_text_stays_valid_xml_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    write_junit(path, [_suite()])
    root = ET.parse(path).getroot()  # strict XML 1.0: one forbidden character fails here
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == (
        "3",
        "1",
        "0",
        "1",
    )
    suite = root.find("testsuite")
    assert suite is not None and suite.get("failures") == "1" and suite.get("skipped") == "1"
    failure = suite.find("testcase/failure")
    assert failure is not None
    message = failure.get("message") or ""
    # Quotes, markup and newlines survive as text; forbidden control characters become escapes.
    assert "<script>alert(1)</script>" in message and '"quoted"' in message and "\nline2" in message
    assert "\\x00" in message and "\\x1b" in message and "\\xfffe" in message and "\x00" not in message
    assert not list(tmp_path.glob(".junit.xml.*"))  # the atomic write left no temporary file

    xml = junitparser.JUnitXml.fromfile(str(path))
    parsed = next(iter(xml))
    assert (parsed.tests, parsed.failures, parsed.errors, parsed.skipped) == (3, 1, 0, 1)
    props = {p.name: p.value for p in parsed.properties()}
    assert props["target"] == 'http://h/<x>?q="1"'
    outcomes = {case.name: [type(r).__name__ for r in case.result] for case in parsed}
    assert outcomes[xml_safe(HOSTILE)] == ["Failure"]
    assert outcomes["rule"] == ["Skipped"]
    assert outcomes["run completed"] == []


def test_xml_safe_keeps_what_xml_allows() -> None:
    assert xml_safe("tab\tnl\ncr\r é 😀") == "tab\tnl\ncr\r é 😀"
    assert xml_safe("a\x07b\x7f") == "a\\x07b\x7f"  # DEL is allowed by XML 1.0


def test_unwritable_paths_are_bad_input(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        check_junit_path(tmp_path / "missing" / "j.xml")
    with pytest.raises(UsageError, match="is a directory"):
        check_junit_path(tmp_path)
    check_junit_path(tmp_path / "j.xml")
    assert not (tmp_path / "j.xml").exists()  # checking creates nothing


def _summary(valid: bool = True) -> dict[str, object]:
    return {
        "run": {
            "id": "r1",
            "target": "http://t",
            "scenario": "json_post",
            "status": "complete",
            "duration_s": 2.0,
        },
        "requests": {"total": 100, "ok": 100},
        "latency_ci_ms": {"p99": [280.0, 330.5]},
        "validity": {
            "valid": valid,
            "reasons": [] if valid else ["the generator was saturated"],
            "warnings": [],
        },
        "slo": {
            "passed": False,
            "checks": [
                {
                    "expr": "p99<300ms",
                    "path": "latency_ms.p99",
                    "value": 312.0,
                    "threshold": 300.0,
                    "op": "<",
                    "unit": "ms",
                    "passed": False,
                },
                {
                    "expr": "error_rate<1%",
                    "path": "requests.error_rate",
                    "value": 0.0,
                    "threshold": 0.01,
                    "op": "<",
                    "unit": "fraction",
                    "passed": True,
                },
                {
                    "expr": "ttft<500ms",
                    "path": "request.ttft_ms",
                    "value": 0.9,
                    "threshold": 500.0,
                    "op": "<",
                    "unit": "fraction",
                    "passed": True,
                    "per_request": True,
                },
            ],
        },
    }


def test_run_cases_name_the_gates_and_quote_the_measurement() -> None:
    cases = {c.name: c for c in run_cases(_summary(valid=False))}
    assert list(cases) == ["run completed", "valid measurement", "p99<300ms", "error_rate<1%", "ttft<500ms"]
    assert cases["p99<300ms"].outcome == "failed"
    assert cases["p99<300ms"].message == "SLO p99<300ms failed: measured 312 ms (95% CI 280–330.5 ms)"
    assert cases["error_rate<1%"].outcome == "passed"
    assert cases["ttft<500ms"].outcome == "passed"  # per-request: gates nothing by itself
    assert cases["valid measurement"].outcome == "failed"
    assert "the generator was saturated" in cases["valid measurement"].message
    suite = run_suite(_summary(), Path("reports/r1"))
    assert suite.name.startswith("loadbench run r1") and suite.properties["run_dir"] == "reports/r1"
    assert '<testcase name="p99&lt;300ms"' in junit_xml([suite])


def test_github_workflow_commands_escape_their_format() -> None:
    assert escape_data("50% a\r\nb") == "50%25 a%0D%0Ab"
    assert escape_property("p99<300ms: a, b%") == "p99<300ms%3A a%2C b%25"
    assert workflow_command("error", "x\ny", title="t: 1") == "::error title=t%3A 1::x%0Ay"


def test_publish_annotates_and_appends_the_summary_without_credentials(tmp_path: Path) -> None:
    markdown = tmp_path / "summary.md"
    markdown.write_text("**loadbench** table\n", encoding="utf-8")
    step = tmp_path / "step.md"
    step.write_text("earlier step\n", encoding="utf-8")
    cases = [Case("p99<300ms", "slo", "failed", message="failed at http://u:hunter22@h/x token s3cr3t-value")]
    out = io.StringIO()
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(step)}
    publish(cases, ["100% CPU"], markdown, "loadbench run", out, ["s3cr3t-value"], env)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(
        "::error title=loadbench run%3A p99<300ms::failed at http://u:***@h/x token ***"
    )
    assert lines[1] == "::warning title=loadbench run%3A warning::100%25 CPU"
    assert "hunter22" not in out.getvalue() and "s3cr3t" not in out.getvalue()
    assert step.read_text(encoding="utf-8").startswith("earlier step\n**loadbench** table\n")

    quiet = io.StringIO()
    publish(cases, ["w"], markdown, "loadbench run", quiet, (), {})
    assert quiet.getvalue() == ""
