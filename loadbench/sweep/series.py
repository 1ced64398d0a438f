"""A series of sweeps, one per point (``--replicas 1,2,4``, ``--shared-prefix-tokens 0,512``): the
loop that runs them in order and the end that writes the report of the points done.

`run_series` calls ``run_point(point)`` for each point in order, with SIGTERM stopping it as
Ctrl-C does, and stops at the first point whose sweep was interrupted (exit code 130) or could not
run (`LoadbenchError`: a step exited 2, the replicas could not start). `finish_series` then writes
the report of the points done (``render``, given the series' status), or, when the very first
point failed, removes the empty series directory and raises the failure as `UsageError` (bad input
leaves nothing behind, as ``run`` does); a later failure is raised after the report. Used by
`loadbench.sweep.scaling` and `loadbench.sweep.prefix`.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from loadbench.errors import LoadbenchError, UsageError
from loadbench.sweep.sweep import STATUS_ABORTED, STATUS_COMPLETE, STATUS_INTERRUPTED

Point = TypeVar("Point")


@dataclass(frozen=True)
class SeriesEnd:
    status: str  # STATUS_COMPLETE, STATUS_INTERRUPTED or STATUS_ABORTED
    abort: str | None = None  # the failed point's error line, with its ``label``


def run_series(
    points: Iterable[Point], run_point: Callable[[Point], int], label: Callable[[Point], str]
) -> SeriesEnd:
    """Run ``run_point`` (which returns its sweep's exit code) on each point in order; how it ended."""
    # Signal handlers can only be set from the main thread.
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if main else None
    try:
        for point in points:
            try:
                code = run_point(point)
            except LoadbenchError as exc:
                return SeriesEnd(STATUS_ABORTED, f"{label(point)}: {exc}")
            if code == 130:
                return SeriesEnd(STATUS_INTERRUPTED)
    except KeyboardInterrupt:  # between points (starting or stopping replicas)
        return SeriesEnd(STATUS_INTERRUPTED)
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
    return SeriesEnd(STATUS_COMPLETE)


def finish_series(
    top: Path,
    end: SeriesEnd,
    measured: bool,
    build: Callable[[str], dict[str, Any]],
    render: Callable[[dict[str, Any], Path], Sequence[Path]],
    what: str,
) -> tuple[dict[str, Any], list[Path], int]:
    """The series' report object (``build(status)``), written into ``top`` (``render``); return it,
    the report's paths and the exit code (0 done, 130 interrupted). ``measured``: whether any point
    was; ``what``: the points, in words, for the error line after a report ("the counts")."""
    if end.abort and not measured:
        with contextlib.suppress(OSError):
            top.rmdir()
        raise UsageError(end.abort)
    result = build(end.status)
    paths = list(render(result, top))
    if end.abort:
        raise UsageError(f"{end.abort} (report of {what} before it: {paths[-1]})")
    return result, paths, 130 if end.status == STATUS_INTERRUPTED else 0


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
