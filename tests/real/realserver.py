"""Start a real third-party server on 127.0.0.1, wait for its own readiness check, stop it by PID.

Every server runs in its own session (process group), so stopping it takes its workers too
(TorchServe's Java frontend and Python backends, Triton's tritonserver, MLServer's inference
pool). Its output goes to a log file whose tail is quoted when it does not come up.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest
from venvs import ServerEnv, Unavailable, ensure

from loadbench.record.columnar import records_path, write_csv

START_TIMEOUT_S = 240.0  # importing torch or starting a JVM on a busy 2-core machine is slow


@dataclass
class Running:
    """A started server: its process, its log, and the base URL of its (first) HTTP port."""

    process: subprocess.Popen[bytes]
    log: Path
    url: str

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """``count`` free ports, consecutive when ``count > 1`` (TorchServe's management = inference + 1)."""
    for _ in range(50):
        first = free_port()
        ports = list(range(first, first + count))
        if all(_is_free(port) for port in ports[1:]):
            return ports
    raise RuntimeError(f"no {count} consecutive free ports on 127.0.0.1")


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def venv_or_skip(env: ServerEnv) -> Path:
    """The server's venv, or skip the test with the reason it cannot be installed here."""
    try:
        return ensure(env)
    except Unavailable as error:
        pytest.skip(str(error))


def http_ready(url: str, *, method: str = "GET", expect: int = 200) -> Callable[[], bool]:
    """A readiness check: ``url`` answers ``expect``."""

    def check() -> bool:
        request = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None)
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return bool(response.status == expect)
        except urllib.error.HTTPError as error:
            return error.code == expect
        except (OSError, ValueError):
            return False

    return check


@contextmanager
def running(
    command: Sequence[str | os.PathLike[str]],
    *,
    url: str,
    ready: Callable[[], bool],
    log: Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout_s: float = START_TIMEOUT_S,
) -> Iterator[Running]:
    """Run ``command`` until the block ends; fail with the log's tail if it is not ready in time."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(part) for part in command],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    server = Running(process, log, url)
    try:
        deadline = time.monotonic() + timeout_s
        while not ready():
            if process.poll() is not None:
                pytest.fail(
                    f"{command[0]} exited {process.returncode} before it was ready:\n{server.log_tail()}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"{command[0]} not ready after {timeout_s:.0f} s:\n{server.log_tail()}")
            time.sleep(0.5)
        yield server
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes], grace_s: float = 15.0) -> None:
    """SIGTERM the server's whole process group, then SIGKILL what is left."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace_s)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # workers that outlived their parent
    process.wait(timeout=grace_s)


# --- what a loadbench run against a real server left ------------------------------------------


def records(out: Path) -> list[dict[str, str]]:
    """The run's records as the rows of their CSV text, from whichever file holds them."""
    text = io.BytesIO()
    write_csv(records_path(out), text)
    return list(csv.DictReader(io.StringIO(text.getvalue().decode("utf-8"), newline="")))


def only_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused start prints (exit 2)."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("loadbench: error: "), result.stderr
    return lines[0]
