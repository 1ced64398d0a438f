"""`loadbench demo --replicas N` (loadbench.demo.replicas): several demo servers in one process, each
on its own port with its own service time, each naming itself in ``X-Served-By``.

Timing assertions are lower bounds the sleeps imply: never how fast this (shared, loaded) machine is.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import psutil
import pytest

from loadbench.demo.args import demo_parser
from loadbench.demo.llmsim import MODEL_ID
from loadbench.demo.replicas import Replica, replica_plan

REPO_ROOT = Path(__file__).resolve().parents[2]
BODY = json.dumps({"inputs": [[0] * 64]})
LINE = re.compile(
    r"loadbench demo: replica (?P<name>\S+) serving a digits classifier on "
    r"http://127\.0\.0\.1:(?P<port>\d+) \(service (?P<ms>[\d.]+) ms\)\n"
)


@contextlib.contextmanager
def demo(*args: str) -> Iterator[subprocess.Popen[str]]:
    """``python -m loadbench.demo --port 0 ARGS`` as a child process; killed if still running."""
    with subprocess.Popen(
        [sys.executable, "-m", "loadbench.demo", "--port", "0", *args],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as proc:  # fmt: skip
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def announced(proc: subprocess.Popen[str], count: int) -> list[re.Match[str]]:
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(count)]
    matches = [LINE.fullmatch(line) for line in lines]
    assert all(matches), lines
    return [m for m in matches if m is not None]


class Answer(NamedTuple):
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def request(port: int, method: str, path: str, body: str | None = None) -> Answer:
    """One request on a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body, headers)
        response = conn.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        conn.close()


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.send_signal(signal.SIGTERM)
    return proc.communicate(timeout=20)


def test_each_replica_names_itself_and_takes_its_own_service_time() -> None:
    with demo("--replicas", "3", "--service-ms", "10,20,40", "--replica-names", "a,b,c") as proc:
        lines = announced(proc, 3)
        assert [(m["name"], float(m["ms"])) for m in lines] == [("a", 10.0), ("b", 20.0), ("c", 40.0)]
        ports = [int(m["port"]) for m in lines]
        assert len(set(ports)) == 3
        for name, service_ms, port in zip("abc", (10.0, 20.0, 40.0), ports, strict=True):
            predicted = request(port, "POST", "/predict", BODY)
            assert predicted.status == 200, predicted.body
            assert predicted.headers["X-Served-By"] == name
            assert float(predicted.headers["X-Service-Time-Ms"]) >= service_ms
            assert len(json.loads(predicted.body)["predictions"]) == 1
            health = request(port, "GET", "/health")
            assert health.status == 200 and json.loads(health.body) == {"status": "ok"}
            assert health.headers["X-Served-By"] == name
            # Errors too, and answers written outside send_json (a streamed completion).
            missing = request(port, "GET", "/no/such/route")
            assert missing.status == 404 and missing.headers["X-Served-By"] == name
        chat = {"model": MODEL_ID, "messages": [{"role": "user", "content": "hi"}], "stream": True}
        streamed = request(ports[0], "POST", "/v1/chat/completions", json.dumps(chat))
        assert streamed.status == 200 and streamed.headers["X-Served-By"] == "a"
        assert streamed.headers["Content-Type"].startswith("text/event-stream")
        stdout, stderr = stop(proc)
    assert proc.returncode == 0, stderr
    assert stderr == "" and stdout == ""
    for port in ports:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_without_replicas_one_server_and_no_served_by_header() -> None:
    # --service-ms of one value sets the one server's service time; nothing else changes.
    with demo("--service-ms", "5") as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("loadbench demo: serving a digits classifier on http://127.0.0.1:"), line
        match = re.search(r"http://127\.0\.0\.1:(\d+) ", line)
        assert match is not None
        port = int(match[1])
        predicted = request(port, "POST", "/predict", BODY)
        assert predicted.status == 200
        assert "X-Served-By" not in predicted.headers
        assert float(predicted.headers["X-Service-Time-Ms"]) >= 5.0
        assert "X-Served-By" not in request(port, "GET", "/health").headers
        stdout, stderr = stop(proc)
    assert proc.returncode == 0 and stderr == "" and stdout == ""


def test_default_names_one_service_time_for_all_and_consecutive_ports() -> None:
    # Two free ports in a row; another process may take one meanwhile: then try other ones.
    for _ in range(5):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first >= 65535:
            continue
        with demo("--port", str(first), "--replicas", "2", "--service-ms", "3") as proc:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line:  # could not bind: the other port was taken
                proc.communicate(timeout=20)
                continue
            lines = [LINE.fullmatch(line), *announced(proc, 1)]
            assert all(lines), line
            named = [(m["name"], int(m["port"]), float(m["ms"])) for m in lines if m is not None]
            assert named == [("replica-1", first, 3.0), ("replica-2", first + 1, 3.0)]
            assert request(first + 1, "GET", "/health").headers["X-Served-By"] == "replica-2"
            stop(proc)
        assert proc.returncode == 0
        return
    pytest.skip("found no two free ports in a row")


def test_one_named_replica_names_itself() -> None:
    with demo("--replica-names", "solo", "--latency-ms", "2") as proc:
        (line,) = announced(proc, 1)
        assert (line["name"], float(line["ms"])) == ("solo", 2.0)
        assert request(int(line["port"]), "GET", "/health").headers["X-Served-By"] == "solo"
        stop(proc)
    assert proc.returncode == 0


PARENT = """
import subprocess, sys
demo = subprocess.Popen([sys.executable, "-m", "loadbench.demo", "--port", "0", "--replicas", "2", "--parent-pid", str(__import__("os").getpid())], stdout=subprocess.PIPE, text=True)
demo.stdout.readline(), demo.stdout.readline()
print(demo.pid, flush=True)
"""


def test_replicas_stop_when_their_parent_is_gone() -> None:
    parent = subprocess.run(
        [sys.executable, "-c", PARENT], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert parent.returncode == 0, parent.stderr
    demo_pid = int(parent.stdout)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and psutil.pid_exists(demo_pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            if psutil.Process(demo_pid).status() == psutil.STATUS_ZOMBIE:
                break
        time.sleep(0.1)
    else:
        assert not psutil.pid_exists(demo_pid), "the orphaned replicas kept serving"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--replicas", "0"], "argument --replicas: 0: must be 1 or more replicas"),
        (["--replicas", "2", "--service-ms", "1,2,3"], "--service-ms has 3 values for 2 replica(s)"),
        (["--replicas", "2", "--replica-names", "a"], "--replica-names gives 1 name(s) for 2 replica(s)"),
        (["--service-ms", "-1"], "argument --service-ms: -1: must be a finite number"),
        (["--service-ms", "1,x"], "argument --service-ms: 'x' is not a number"),
        (["--replicas", "2", "--replica-names", "a,a"], "names a replica twice"),
        (["--replica-names", "a b"], "is not a replica name"),
        (["--replicas", "2", "--grpc-port", "0"], "--grpc-port serves a single demo"),
        (["--replicas", "3", "--port", "65534"], "would pass port 65535"),
    ],
)
def test_bad_replica_options_are_one_line_exit_2(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "loadbench.demo", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("loadbench: error: ") and result.stderr.count("\n") == 1
    assert message in result.stderr and "Traceback" not in result.stderr


def test_the_loadbench_command_refuses_the_same() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "loadbench", "demo", "--replicas", "2", "--service-ms", "1,2,3"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "--service-ms has 3 values for 2 replica(s)" in result.stderr


def test_the_plan() -> None:
    def plan(*argv: str) -> list[Replica]:
        return replica_plan(demo_parser().parse_args(list(argv)))

    assert plan() == [Replica(None, 0.0)]
    assert plan("--latency-ms", "7") == [Replica(None, 7.0)]
    assert plan("--service-ms", "4") == [Replica(None, 4.0)]
    assert plan("--replicas", "2", "--latency-ms", "7") == [
        Replica("replica-1", 7.0),
        Replica("replica-2", 7.0),
    ]
    assert plan("--replicas", "2", "--service-ms", "1.5") == [
        Replica("replica-1", 1.5),
        Replica("replica-2", 1.5),
    ]
    assert plan("--replicas", "2", "--service-ms", "1,2", "--replica-names", "x,y") == [
        Replica("x", 1.0),
        Replica("y", 2.0),
    ]
