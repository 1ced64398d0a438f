"""JUnit XML for CI servers: one suite per command, one testcase per gate (``--junit FILE``).

Consumes `Suite`s (built from a summary by `run_suite`, from a comparison by
`loadbench.compare.ci`, from a sweep by `loadbench.sweep.ci`); produces the XML that Jenkins,
GitLab, GitHub test reporters and Azure read: ``testsuites/testsuite/testcase`` with
``failure message=...`` or ``skipped``, and the tests / failures / errors / skipped counts on both
levels. Every text passes `xml_safe` first: request names, error texts and expressions may hold
anything, and one control character that XML 1.0 forbids makes the whole file unreadable.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from loadbench.errors import UsageError
from loadbench.report.html import write_text_atomic

Outcome = Literal["passed", "failed", "skipped"]

# Everything XML 1.0 forbids (its Char production), surrogates and U+FFFE/U+FFFF included.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class Case:
    """One gate: its name is the expression as typed (``p99<300ms``), so CI lists read like the
    command line; ``message`` is the one line a CI server shows, ``detail`` the text under it."""

    name: str
    classname: str  # what kind of gate: "slo", "validity", "run", "compare", "sweep"
    outcome: Outcome
    message: str = ""
    detail: str = ""


@dataclass(frozen=True)
class Suite:
    name: str  # the command and what it measured: "loadbench run 20260101T000000Z-json_post"
    cases: Sequence[Case]
    properties: Mapping[str, str] = field(default_factory=dict)
    time_s: float | None = None

    def count(self, outcome: Outcome) -> int:
        return sum(1 for case in self.cases if case.outcome == outcome)


def xml_safe(text: Any) -> str:
    """``text`` with every character XML 1.0 forbids written as a visible ``\\xNN`` escape (a
    removed character would hide that the server sent one); the rest is escaped by ElementTree."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group(0)):02x}", str(text))


def _testsuite(suite: Suite) -> ET.Element:
    element = ET.Element(
        "testsuite",
        name=xml_safe(suite.name),
        tests=str(len(suite.cases)),
        failures=str(suite.count("failed")),
        errors="0",
        skipped=str(suite.count("skipped")),
        time=f"{suite.time_s or 0.0:.3f}",
    )
    if suite.properties:
        props = ET.SubElement(element, "properties")
        for name, value in suite.properties.items():
            ET.SubElement(props, "property", name=xml_safe(name), value=xml_safe(value))
    for case in suite.cases:
        testcase = ET.SubElement(
            element, "testcase", name=xml_safe(case.name), classname=f"loadbench.{xml_safe(case.classname)}"
        )
        testcase.set("time", "0")
        if case.outcome == "passed":
            if case.detail:
                ET.SubElement(testcase, "system-out").text = xml_safe(case.detail)
            continue
        tag = "failure" if case.outcome == "failed" else "skipped"
        child = ET.SubElement(testcase, tag, message=xml_safe(case.message))
        if tag == "failure":
            child.set("type", xml_safe(case.classname))
        child.text = xml_safe(case.detail or case.message)
    return element


def junit_xml(suites: Sequence[Suite]) -> str:
    """The JUnit XML document of ``suites`` (UTF-8, with its declaration)."""
    root = ET.Element(
        "testsuites",
        name="loadbench",
        tests=str(sum(len(s.cases) for s in suites)),
        failures=str(sum(s.count("failed") for s in suites)),
        errors="0",
        skipped=str(sum(s.count("skipped") for s in suites)),
    )
    root.extend(_testsuite(suite) for suite in suites)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def check_junit_path(path: Path) -> None:
    """`UsageError` unless ``--junit`` can be written: checked before the load, so a long run is
    not lost to a typo in the last step. Nothing is created."""
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UsageError(f"--junit {path}: is a directory; give a file name, e.g. {path / 'junit.xml'}")
    if not parent.is_dir():
        raise UsageError(f"--junit {path}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"--junit {path}: not writable")


def write_junit(path: Path, suites: Sequence[Suite]) -> None:
    """Write ``suites`` to ``path`` atomically: a CI step never reads half a file."""
    write_text_atomic(path, junit_xml(suites))
