"""Print the slowest tests of one or more pytest JUnit XML files, slowest first (`make unit`).

    python tests/slowest.py [-n 25] FILE.xml [FILE.xml ...]

One list for several passes together (the quick suite, the real servers), so a slow test is seen when it is
added. A missing file (a pass that did not run) is skipped.
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=25, help="how many tests to list (default 25)")
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
    total = sum(t for t, _ in cases)
    print(f"slowest {min(args.n, len(cases))} of {len(cases)} tests ({total:,.0f} s of test time in all):")
    for seconds, name in cases[: args.n]:
        print(f"{seconds:8.2f}s  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
