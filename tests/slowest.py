"""Print the slowest tests of one or more pytest JUnit XML files, slowest first (`make unit`).

    python tests/slowest.py [-n 25] FILE.xml [FILE.xml ...]
    python tests/slowest.py --write-durations tests/durations.json .pytest-results/unit.xml

One list for several passes together (the quick suite, the real servers), so a slow test is seen when it is
added. A missing file (a pass that did not run) is skipped.

``--write-durations``: each test file's seconds in all (its module fixtures included), for
`tests/conftest.py` to hand the slowest files out first (`make durations` after a `make unit`).
"""

from __future__ import annotations

import argparse
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # JUnit classnames are dotted paths from here


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=25, help="how many tests to list (default 25)")
    parser.add_argument("--write-durations", type=Path, metavar="JSON", help="write each file's seconds here")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    cases: list[tuple[float, str]] = []
    for path in args.files:
        if not path.is_file():
            continue
        for case in ET.parse(path).getroot().iter("testcase"):
            name = f"{case.get('classname', '')}::{case.get('name', '')}"
            cases.append((float(case.get("time") or 0.0), name))
    cases.sort(reverse=True)
    if args.write_durations is not None:
        write_durations(args.write_durations, cases)
        return 0
    total = sum(t for t, _ in cases)
    print(f"slowest {min(args.n, len(cases))} of {len(cases)} tests ({total:,.0f} s of test time in all):")
    for seconds, name in cases[: args.n]:
        print(f"{seconds:8.2f}s  {name}")
    return 0


def file_of(classname: str) -> str:
    """``tests/ui/test_webui.py`` of a JUnit classname (``tests.ui.test_webui``, or with a class
    after it: ``tests.ui.test_webui.TestPage``)."""
    parts = classname.split(".")
    for end in range(len(parts), 0, -1):
        path = Path(*parts[:end]).with_suffix(".py")
        if (ROOT / path).is_file():
            return path.as_posix()
    return Path(*parts).with_suffix(".py").as_posix()


def write_durations(path: Path, cases: list[tuple[float, str]]) -> None:
    """Each test file's seconds in all, slowest first, as JSON (see the module docstring)."""
    files: dict[str, float] = {}
    for seconds, name in cases:
        file = file_of(name.split("::")[0])
        files[file] = files.get(file, 0.0) + seconds
    ranked = dict(sorted(((f, round(s, 1)) for f, s in files.items()), key=lambda fs: (-fs[1], fs[0])))
    path.write_text(json.dumps(ranked, indent=1) + "\n", encoding="utf-8")
    print(f"{path}: {len(ranked)} test files, {sum(ranked.values()):,.0f} s in all")


if __name__ == "__main__":
    sys.exit(main())
