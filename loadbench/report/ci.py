"""What a CI job gets besides the exit code: GitHub Actions annotations and its step summary.

Consumes the `Case`s of a command (`loadbench.report.junit`), its warnings and its Markdown
(``summary.md``, ``compare.md``, ``sweep.md``); produces workflow-command lines
(``::error title=...::message``) under ``GITHUB_ACTIONS=true`` and appends the Markdown to
``$GITHUB_STEP_SUMMARY`` when it is set. Texts pass `loadbench.redact.scrub` first: a CI log is
public more often than a run directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

from loadbench.redact import scrub
from loadbench.report.junit import Case

# GitHub's workflow-command format: data escapes these, properties (title=...) also ':' and ','.
_DATA_ESCAPES = (("%", "%25"), ("\r", "%0D"), ("\n", "%0A"))
_PROPERTY_ESCAPES = (*_DATA_ESCAPES, (":", "%3A"), (",", "%2C"))


def escape_data(text: str) -> str:
    for char, code in _DATA_ESCAPES:  # '%' first: the other codes contain one
        text = text.replace(char, code)
    return text


def escape_property(text: str) -> str:
    for char, code in _PROPERTY_ESCAPES:
        text = text.replace(char, code)
    return text


def workflow_command(command: str, message: str, title: str | None = None) -> str:
    """``::error title=T::message`` with both parts escaped as the runner requires."""
    props = f" title={escape_property(title)}" if title else ""
    return f"::{command}{props}::{escape_data(message)}"


def workflow_annotations(
    cases: Sequence[Case], warnings: Iterable[str], who: str, secrets: Iterable[str] = ()
) -> list[str]:
    """An ``::error`` per failed case and a ``::warning`` per warning; ``who`` prefixes every
    title ("loadbench run"), so a job running several commands tells them apart."""
    secrets = list(secrets)
    lines = [
        workflow_command(
            "error",
            scrub(case.message or case.name, secrets),
            title=scrub(f"{who}: {case.name}", secrets),
        )
        for case in cases
        if case.outcome == "failed"
    ]
    lines += [workflow_command("warning", scrub(w, secrets), title=f"{who}: warning") for w in warnings]
    return lines


def append_step_summary(markdown: str, environ: Mapping[str, str] = os.environ) -> Path | None:
    """Append ``markdown`` to ``$GITHUB_STEP_SUMMARY`` (the job's summary page) when it is set."""
    target = environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    path = Path(target)
    with path.open("a", encoding="utf-8") as f:
        f.write(markdown if markdown.endswith("\n") else markdown + "\n")
        f.write("\n")
    return path


def in_github_actions(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get("GITHUB_ACTIONS") == "true"


def publish(
    cases: Sequence[Case],
    warnings: Iterable[str],
    markdown_path: Path | None,
    who: str,
    out: TextIO,
    secrets: Iterable[str] = (),
    environ: Mapping[str, str] = os.environ,
) -> None:
    """Everything GitHub Actions reads, when it is the one running: annotations on ``out`` and the
    step summary. Outside GitHub Actions (and without ``GITHUB_STEP_SUMMARY``) nothing happens."""
    if in_github_actions(environ):
        for line in workflow_annotations(cases, warnings, who, secrets):
            print(line, file=out)
    if markdown_path is not None and markdown_path.is_file():
        append_step_summary(markdown_path.read_text(encoding="utf-8"), environ)
