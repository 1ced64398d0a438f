"""The live progress line, fed by a real recorder in a child process (locust stays out of pytest)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import io, sys
from pathlib import Path
from loadbench.drive.progress import Progress
from loadbench.drive.recorder import Recorder

class TTY(io.StringIO):
    def isatty(self): return True

run_dir = Path(sys.argv[1])
recorder = Recorder(run_dir)
for out, quiet in ((TTY(), False), (io.StringIO(), False), (TTY(), True)):
    recorder.total = recorder.errors = 0
    progress = Progress(recorder, duration_s=30, warmup_s=2, out=out, quiet=quiet)
    for second in range(1, 13):
        for i in range(100):
            recorder.on_request("GET", "/", response_time=float(i + 1), response_length=1, start_time=1.0)
        recorder.on_request("GET", "/", 5.0, 0, exception=ConnectionResetError("reset"), start_time=1.0)
        progress.tick(float(second), users=4)
    progress.done()
    print(repr(out.getvalue()))
recorder.close()
"""


def test_progress_line_on_a_terminal_in_a_log_and_quiet(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    tty, log, quiet = (eval(line) for line in result.stdout.splitlines())
    # On a terminal: rewritten in place every second, ending with a newline.
    assert tty.count("\r\x1b[K") == 12 and tty.endswith("\n")
    last = tty.rsplit("\r\x1b[K", 1)[1]
    assert "[   12s /30s, 18s left]" in last
    assert "users 4" in last and "101 req/s" in last
    assert "errors 12 (0.99%)" in last
    assert "p50 50.5 ms" in last and "p99 99.0 ms" in last  # latencies 1..100 ms, exact
    assert "warmup" in tty.split("\r\x1b[K")[1]  # second 1 is inside the 2 s warmup
    # In a log: one full line every 10 s, no control characters.
    assert "\r" not in log and len(log.splitlines()) == 2
    assert quiet == ""
