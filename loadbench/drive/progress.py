"""The live progress line of a run: elapsed/remaining time, users, req/s, errors, p50/p99.

Consumes the recorder's running counters and its window of recent latencies once a second;
produces one line on the console (rewritten in place on a terminal, every 10 s in a log).
The figures are for watching a run, not for reporting: the report's come from the records.
"""

from __future__ import annotations

from collections import deque
from typing import TextIO

import numpy as np

from loadbench.drive.recorder import Recorder

PROGRESS_WINDOW_S = 5  # the live p50/p99 cover the last few seconds
LOG_EVERY_S = 10  # without a terminal, one line this often


class Progress:
    """The live line: elapsed/remaining, users, req/s, errors, p50/p99 of the last few seconds."""

    def __init__(
        self, recorder: Recorder, duration_s: float, warmup_s: float, out: TextIO, quiet: bool
    ) -> None:
        self.recorder, self.duration_s, self.warmup_s = recorder, duration_s, warmup_s
        self.out, self.quiet = out, quiet
        self.tty = out.isatty()
        self.windows: deque[list[float]] = deque(maxlen=PROGRESS_WINDOW_S)
        self.last_total = 0
        self.last_print = -float(LOG_EVERY_S)  # a log gets a line at the first tick

    def tick(self, elapsed_s: float, users: int, label: str = "users") -> None:
        batch, self.recorder.window_ms = self.recorder.window_ms, []
        self.windows.append(batch)
        rps = self.recorder.total - self.last_total
        self.last_total = self.recorder.total
        if self.quiet or (not self.tty and elapsed_s - self.last_print < LOG_EVERY_S):
            return
        self.last_print = elapsed_s
        recent = np.concatenate([np.asarray(w) for w in self.windows]) if any(self.windows) else np.empty(0)
        p50, p99 = np.percentile(recent, [50, 99]) if recent.size else (float("nan"), float("nan"))
        total, errors = self.recorder.total, self.recorder.errors
        phase = " warmup" if elapsed_s < self.warmup_s else ""
        line = (
            f"[{elapsed_s:5.0f}s /{self.duration_s:.0f}s, {max(self.duration_s - elapsed_s, 0):.0f}s left{phase}] "
            f"{label} {users}  {rps:,} req/s  {total:,} req  errors {errors:,} ({errors / total if total else 0:.2%})"
            f"  p50 {p50:.1f} ms  p99 {p99:.1f} ms"
        )
        if self.tty:
            self.out.write("\r\x1b[K" + line)
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def done(self) -> None:
        if self.tty and not self.quiet:
            self.out.write("\n")
            self.out.flush()
