"""A warm ``loadbench`` for the tests: `run_cli` runs the real command in a child forked from a
process that has already imported what a run imports.

A short ``python -m loadbench run`` spends about 2 CPU-s importing pandas, Locust and gevent,
matplotlib, the analyzer and the report before it sends its first request, and `make test` makes
hundreds of such calls on two cores. The zygote (one per pytest process, started on first use)
imports them once; each call forks a child that runs `loadbench.cli.main.main` as ``python -m
loadbench`` does: its own process, argv, working directory, environment, stdout and stderr (pipes
the test reads), and exit status. Python reseeds `random` in a forked child by itself.

The zygote imports under the caller's environment (a module may read a variable at import), and
is started again when a call comes with another one (pytest's ``PYTEST_CURRENT_TEST`` aside). A
call runs as a plain subprocess when the zygote is busy (a test running two commands at once) or
with ``LOADBENCH_TEST_SUBPROCESS=1``. Tests that signal the process or watch it start
(`start_cli`) always start ``python -m loadbench`` itself.

Run as a script, this file is the zygote: ``python tests/cli_zygote.py FD`` serves the socket FD.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, NoReturn

REPO = Path(__file__).resolve().parent.parent
MAIN = str(REPO / "loadbench" / "__main__.py")  # sys.argv[0] of ``python -m loadbench``
OFF = "LOADBENCH_TEST_SUBPROCESS"
# Imported once by the zygote: every module a run, a report, a sweep or a compare imports lazily.
# Imported, never used: no DuckDB connection (its threads would not survive the fork), no gRPC
# (its fork support wants care: a child that needs it imports it itself).
WARM = (
    "loadbench.cli.main",
    "loadbench.cli.run",
    "loadbench.cli.summary",
    "loadbench.drive.runner",
    "loadbench.analyze.analyzer",
    "loadbench.analyze.bounded",
    "duckdb",
    "pyarrow.parquet",
    "loadbench.report.report",
    "loadbench.compare.rundata",
    "loadbench.sweep.sweep",
)
MESSAGE = 1 << 20
# The standard library's own calls, taken before Locust's import lets gevent patch them: the
# zygote blocks on its socket and its child without ever starting gevent's hub (whose `os.close`
# of a pipe would wait for that hub to run), so each child starts gevent as a fresh process does.
_fork, _waitpid, _close, _recv_fds = os.fork, os.waitpid, os.close, socket.recv_fds


def _warm() -> None:
    import importlib
    import io

    for name in WARM:
        importlib.import_module(name)
    # matplotlib reads its font list and builds the Agg renderer on the first drawing.
    from matplotlib.figure import Figure

    figure = Figure(layout="constrained")
    figure.add_subplot().plot([0.0, 1.0])
    figure.savefig(io.BytesIO(), format="png")


def _child(request: dict[str, Any], out: int, err: int) -> NoReturn:
    """Become ``python -m loadbench ARGV`` in this forked process: its exit, exception and
    interpreter shutdown (atexit, flushing, joining threads) are the interpreter's own, as the
    `SystemExit` or exception leaves the zygote's code."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out, 1)
    os.dup2(err, 2)
    for fd in (devnull, out, err):
        _close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = [MAIN, *request["argv"]]
    if "gevent" in sys.modules:
        sys.modules["gevent"].reinit()
    from loadbench.cli.main import main

    raise SystemExit(main())


def serve(fd: int) -> None:
    """The zygote: warm up, then fork a child per request until the socket closes."""
    sock = socket.socket(fileno=fd)
    _warm()
    # What the imports made is never freed: the children's collections need not walk it (nor copy
    # its pages by touching them).
    gc.collect()
    gc.freeze()
    sock.send(b"ready")
    while True:
        try:
            message, fds, _, _ = _recv_fds(sock, MESSAGE, 2)
        except OSError:
            return
        if not message:
            return
        request = json.loads(message)
        pid = _fork()
        if pid == 0:
            sock.close()
            _child(request, *fds)
        for descriptor in fds:
            _close(descriptor)
        sock.send(json.dumps({"pid": pid}).encode())
        _, status = _waitpid(pid, 0)
        sock.send(json.dumps({"status": os.waitstatus_to_exitcode(status)}).encode())


class Zygote:
    """The client side: one zygote process, one command at a time."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env  # what its imports saw
        self.lock = threading.Lock()
        self.served = 0  # commands run from the zygote
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.process = subprocess.Popen(
            [sys.executable, __file__, str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=REPO,
        )
        theirs.close()
        self.sock = ours
        if self.sock.recv(16) != b"ready":
            raise RuntimeError("the loadbench test zygote did not start")

    def usable(self, env: dict[str, str]) -> bool:
        return self.process.poll() is None and _settled(env) == _settled(self.env)

    def run(
        self, argv: list[str], cwd: Path, env: dict[str, str], timeout: float
    ) -> subprocess.CompletedProcess[str]:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        request = json.dumps({"argv": argv, "cwd": str(cwd), "env": env}).encode()
        try:
            socket.send_fds(self.sock, [request], [out_w, err_w])
        finally:
            os.close(out_w)
            os.close(err_w)
        pid = json.loads(self.sock.recv(MESSAGE))["pid"]
        self.served += 1
        chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
        readers = [threading.Thread(target=_drain, args=(fd, chunks[fd]), daemon=True) for fd in chunks]
        for reader in readers:
            reader.start()
        deadline = time.monotonic() + timeout
        self.sock.settimeout(timeout)
        try:
            status = json.loads(self.sock.recv(MESSAGE))["status"]
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)
            self.sock.settimeout(None)
            self.sock.recv(MESSAGE)
            for reader in readers:
                reader.join()
            raise subprocess.TimeoutExpired([sys.executable, "-m", "loadbench", *argv], timeout) from None
        finally:
            self.sock.settimeout(None)
        for reader in readers:
            reader.join(max(deadline - time.monotonic(), 1.0))
        # As ``text=True`` reads them: UTF-8, universal newlines.
        stdout, stderr = (
            b"".join(chunks[fd]).decode(errors="replace").replace("\r\n", "\n").replace("\r", "\n")
            for fd in (out_r, err_r)
        )
        return subprocess.CompletedProcess([sys.executable, "-m", "loadbench", *argv], status, stdout, stderr)

    def close(self) -> None:
        self.sock.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _settled(env: dict[str, str]) -> dict[str, str]:
    """``env`` less what pytest changes from test to test (the child gets it all the same)."""
    return {k: v for k, v in env.items() if k != "PYTEST_CURRENT_TEST"}


def _drain(fd: int, into: list[bytes]) -> None:
    with open(fd, "rb", buffering=0, closefd=True) as pipe:
        while chunk := pipe.read(1 << 16):
            into.append(chunk)


_zygote: Zygote | None = None
_starting = threading.Lock()


def started() -> Zygote | None:
    """This process's zygote, once a command has started it."""
    return _zygote


def run_loadbench(
    argv: list[str], cwd: Path, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """``python -m loadbench ARGV`` to completion, from the zygote when it can (module docstring)."""
    global _zygote
    if os.environ.get(OFF) != "1":
        with _starting:
            # Started under the caller's environment; started again when it changed for good (an
            # import may set a variable: loadbench's gRPC module sets GRPC_VERBOSITY).
            if _zygote is None or (not _zygote.usable(env) and not _zygote.lock.locked()):
                if _zygote is not None:
                    _zygote.close()
                _zygote = Zygote(env)
            zygote = _zygote
        if zygote.usable(env) and zygote.lock.acquire(blocking=False):
            try:
                return zygote.run(argv, cwd, env, timeout)
            finally:
                zygote.lock.release()
    return run_afresh(argv, cwd, env, timeout)


def run_afresh(
    argv: list[str], cwd: Path, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """``python -m loadbench ARGV`` in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "loadbench", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
    )


if __name__ == "__main__":
    serve(int(sys.argv[1]))
