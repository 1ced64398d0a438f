"""The in-process user (loadbench.scenario.inprocess, scenarios/inprocess.py) end to end: ``loadbench run
--target python://...`` calls run in gevent's thread pool, so users overlap; a raised exception is a failed
record with its ``Type: message``. Locust stays in the child process."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import read_json, run_cli

from loadbench.record.columnar import read_run_requests

# The callable sleeps in its own thread (the unpatched sleep: it releases the GIL and never
# yields to gevent), counting the calls in it at once; the peak goes to a file as it grows.
SLEEPY = """\
try:
    from gevent.monkey import get_original
    sleep, allocate_lock = get_original("time", "sleep"), get_original("_thread", "allocate_lock")
except ImportError:
    from time import sleep
    from _thread import allocate_lock
from pathlib import Path

LOCK = allocate_lock()
STATE = {"now": 0, "peak": 0}


def predict(row):
    with LOCK:
        STATE["now"] += 1
        if STATE["now"] > STATE["peak"]:
            STATE["peak"] = STATE["now"]
            Path("peak.txt").write_text(str(STATE["peak"]))
    try:
        sleep(0.05)
        if row["x"] % 5 == 4:
            raise ValueError(f"x={row['x']} is refused")
        return row["x"] % 2
    finally:
        with LOCK:
            STATE["now"] -= 1
"""


def test_users_call_at_once_and_exceptions_are_failed_records(tmp_path: Path) -> None:
    (tmp_path / "lb_sleepy.py").write_text(SLEEPY, encoding="utf-8")
    data = tmp_path / "rows.jsonl"
    data.write_text(
        "".join(json.dumps({"x": i, "_expected": i % 2}) + "\n" for i in range(10)), encoding="utf-8"
    )
    out = tmp_path / "run"
    result = run_cli(
        "run", "--target", "python://lb_sleepy:predict", "--data", str(data), "-u", "8", "-r", "1000",
        "-d", "1s", "--warmup", "0", "--no-sampler", "-q", "--out", str(out), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    # With the calls in gevent's thread pool, 8 users sleep at once; holding the loop, 1 would.
    assert int((tmp_path / "peak.txt").read_text()) > 1
    requests = read_run_requests(out)
    assert set(requests["name"]) == {"lb_sleepy:predict"} and set(requests["method"]) == {"CALL"}
    failed = requests[requests["ok"] == 0]
    answered = requests[requests["ok"] == 1]
    assert len(failed) and len(answered)
    assert failed["error"].str.fullmatch(r"ValueError: x=[49] is refused").all()
    assert (failed["status"] == 0).all() and (answered["status"] == 200).all()
    assert (answered["predicted"].astype(str) == answered["expected"].astype(str)).all()
    summary = read_json(out / "summary.json")
    assert summary["quality"]["accuracy"] < 1  # the failures count as wrong answers
    assert summary["requests"]["errors"] == len(failed)
