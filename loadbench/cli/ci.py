"""CI output of ``run``, ``compare`` and ``sweep``: the ``--junit`` option, checked before any
load, and the wiring that hands each command's result to the JUnit writer and to GitHub Actions
(`loadbench.report.junit`, `loadbench.report.ci`). docs/ci.md shows them in a pipeline.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from loadbench.cli.options import Group, Option
from loadbench.errors import UsageError
from loadbench.redact import argv_secrets
from loadbench.report.ci import publish
from loadbench.report.junit import Suite, check_junit_path, write_junit

JUNIT_OPTION: Option = (
    ("--junit",),
    {
        "type": Path,
        "metavar": "FILE",
        "help": "also write the gates as JUnit XML for CI test reports: one testcase per gate, named by "
        "its expression, a failure quoting the measured value (docs/ci.md). Under GitHub Actions the "
        "gates are annotated and summary.md goes to the job summary whether or not this is given",
    },
)


def add_junit_option(group: Group) -> None:
    flags, kwargs = JUNIT_OPTION
    group.add_argument(*flags, **kwargs)


def check_junit(args: argparse.Namespace) -> None:
    """Bad input before the load: an unwritable ``--junit`` is one line and exit 2."""
    if getattr(args, "junit", None) is not None:
        check_junit_path(args.junit)


def _write(path: Path | None, suites: Sequence[Suite]) -> None:
    if path is None:
        return
    try:
        write_junit(path, suites)
    except OSError as exc:
        raise UsageError(f"cannot write --junit {path}: {exc.strerror or exc}") from None
    print(f"junit: {path}")


def publish_suites(
    args: argparse.Namespace,
    suites: Sequence[Suite],
    warnings: Iterable[str],
    markdown: Path | None,
    who: str,
    argv: Sequence[str] = (),
    secrets: Iterable[str] = (),
) -> None:
    """Write ``--junit`` and, under GitHub Actions, the annotations and the job summary."""
    _write(getattr(args, "junit", None), suites)
    cases = [case for suite in suites for case in suite.cases]
    publish(cases, warnings, markdown, who, sys.stdout, [*secrets, *argv_secrets(argv)])


def publish_run(
    args: argparse.Namespace,
    summary: Mapping[str, Any],
    run_dir: Path,
    argv: Sequence[str],
    secrets: Iterable[str],
) -> None:
    from loadbench.record.rundir import SUMMARY_MD
    from loadbench.report.gates import run_suite, run_warnings

    suite = run_suite(summary, run_dir)
    publish_suites(args, [suite], run_warnings(summary), run_dir / SUMMARY_MD, "loadbench run", argv, secrets)


def publish_compare(
    args: argparse.Namespace, result: Mapping[str, Any], rules: Sequence[Any], out: Path
) -> None:
    from loadbench.compare.ci import compare_suites, compare_warnings
    from loadbench.compare.report import COMPARE_MD

    suites = compare_suites(result, rules, out)
    publish_suites(args, suites, compare_warnings(result), out / COMPARE_MD, "loadbench compare")


def publish_sweep(
    args: argparse.Namespace, sweep: Mapping[str, Any], sweep_dir: Path, argv: Sequence[str]
) -> None:
    from loadbench.sweep.ci import sweep_suite
    from loadbench.sweep.report import SWEEP_MD

    publish_suites(args, [sweep_suite(sweep, sweep_dir)], [], sweep_dir / SWEEP_MD, "loadbench sweep", argv)
