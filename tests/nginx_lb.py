"""nginx as a real HTTP load balancer on loopback, in front of upstream servers a test started.

``nginx_balancer(upstreams, method)`` writes a one-worker nginx config into a temporary
directory (its own prefix, pid file, temp paths and error log: nothing under /etc or /var is
read or written), starts ``nginx`` in the foreground on a free port of 127.0.0.1, waits until
the port answers, yields its base URL and stops it again. Tests that need it skip without nginx
(``apt-get install nginx-light``), and fail under CI, like every `require_executable` command.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest
from helpers import free_port, require_executable

# The ``upstream`` block's balancing directive for each method ("" is nginx's default).
METHODS = {"round-robin": "", "least_conn": "least_conn;", "random": "random;"}

READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
# free_port() is free "a moment ago": another process may bind it before nginx does.
PORT_ATTEMPTS = 3

NGINX_CONF = """\
# Written by tests/nginx_lb.py: nginx as a load balancer in front of a test's upstream servers.
daemon off;
master_process on;
# One worker: nginx's round-robin state is per worker, so with one it is exact across connections.
worker_processes 1;
{user}pid "{prefix}/nginx.pid";
error_log "{prefix}/error.log" warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_max_body_size 64m;
    client_body_temp_path "{prefix}/client_body";
    proxy_temp_path "{prefix}/proxy";
    fastcgi_temp_path "{prefix}/fastcgi";
    uwsgi_temp_path "{prefix}/uwsgi";
    scgi_temp_path "{prefix}/scgi";
    upstream backends {{
{balancing}{servers}
        # Idle HTTP/1.1 connections to the upstreams kept open per worker (after the method:
        # nginx requires the balancing directive before keepalive).
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backends;
            # HTTP/1.1 with no "Connection: close", so the upstream connections are kept alive.
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 30s;
            # A dead upstream's connection errors (and timeouts) go to the next upstream, as nginx
            # does by default; an upstream's own error answers (5xx) reach the client as they are.
            proxy_next_upstream error timeout;
            # The upstream's response headers unchanged: nginx otherwise replaces these two.
            proxy_pass_header Server;
            proxy_pass_header Date;
        }}
    }}
}}
"""


def _server_line(url: str) -> str:
    """``server HOST:PORT;`` for an upstream given as ``http://HOST:PORT``."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.port is None or parts.path not in ("", "/"):
        raise ValueError(f"an upstream must be http://HOST:PORT, not {url!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"        server {host}:{parts.port};"


def _user_directive() -> str:
    """As root, workers would switch to ``nobody`` and lose the temp dir: keep them as this user."""
    if os.geteuid() != 0:
        return ""  # nginx ignores ``user`` (with a warning) when it is not started as root
    user = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(os.getegid()).gr_name
    return f"user {user} {group};\n"


def _logs(prefix: Path) -> str:
    parts = []
    for name in ("error.log", "nginx.out"):
        path = prefix / name
        text = path.read_text(encoding="utf-8", errors="replace").strip() if path.exists() else ""
        parts.append(f"--- {name} ---\n{text or '(empty)'}")
    return "\n".join(parts)


def _children(process: subprocess.Popen[bytes]) -> list[psutil.Process]:
    try:
        return psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGQUIT (graceful), then SIGTERM, then SIGKILL; then any worker left behind is killed."""
    workers: dict[int, psutil.Process] = {}
    for sig in (signal.SIGQUIT, signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            break
        workers.update((child.pid, child) for child in _children(process))
        process.send_signal(sig)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            continue
    process.wait()
    # A master that is killed before its worker exits leaves the worker to init.
    for worker in workers.values():
        with suppress(psutil.NoSuchProcess):
            worker.kill()
    psutil.wait_procs(list(workers.values()), timeout=STOP_TIMEOUT_S)


def _wait_listening(port: int, process: subprocess.Popen[bytes], prefix: Path, last_try: bool) -> bool:
    """Whether nginx listens on ``port``; False when another process took the port first (then
    the caller tries another, unless ``last_try``); fails the test otherwise."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    pid_file = prefix / "nginx.pid"
    while True:
        # nginx writes its pid file once it has bound its port (an answer before that may come
        # from whichever process took the port first), then starts its worker.
        if pid_file.exists() and pid_file.read_text().strip() == str(process.pid) and _children(process):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return True
            except OSError:
                pass
        if process.poll() is not None:
            if not last_try and "Address already in use" in _logs(prefix):
                return False
            pytest.fail(f"nginx exited with code {process.returncode} at start-up:\n{_logs(prefix)}")
        if time.monotonic() > deadline:
            pytest.fail(
                f"nginx did not listen on 127.0.0.1:{port} within {READY_TIMEOUT_S:g} s:\n{_logs(prefix)}"
            )
        time.sleep(0.02)


@contextmanager
def nginx_balancer(
    upstreams: Sequence[str], method: str = "round-robin", workdir: Path | None = None
) -> Iterator[str]:
    """nginx on 127.0.0.1:<free port> proxying to ``upstreams`` (http://HOST:PORT each) with
    ``method``: "round-robin" (nginx's default), "least_conn", or "random"; yields its base URL.

    HTTP/1.1 keep-alive to the upstreams (``keepalive 32``), request bodies (up to 64 MiB) and
    response headers passed through unchanged, one worker process. Its config, error log and
    temp files go to a new directory under ``workdir`` (kept) or to a temporary one (removed).
    Skips the test when nginx is not installed; fails it, with nginx's error log, when nginx
    does not listen within 10 s. On exit nginx and its worker are stopped.
    """
    if method not in METHODS:
        raise ValueError(f"unknown balancing method {method!r}: one of {', '.join(METHODS)}")
    if not upstreams:
        raise ValueError("nginx_balancer needs at least one upstream")
    servers = "\n".join(_server_line(url) for url in upstreams)
    # /usr/sbin is not on every user's PATH; without nginx, require_executable skips (CI: fails).
    nginx = (
        shutil.which("nginx") or shutil.which("/usr/sbin/nginx") or require_executable("nginx", "nginx-light")
    )

    with ExitStack() as stack:
        if workdir is None:
            prefix = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nginx-lb-")))
        else:
            workdir.mkdir(parents=True, exist_ok=True)
            prefix = Path(tempfile.mkdtemp(prefix="nginx-lb-", dir=workdir))
        if '"' in str(prefix) or "\\" in str(prefix):
            raise ValueError(f"nginx_balancer cannot quote the directory {prefix} in its config")
        for attempt in range(1, PORT_ATTEMPTS + 1):
            port = free_port()
            for stale in ("error.log", "nginx.pid"):
                (prefix / stale).unlink(missing_ok=True)
            conf = prefix / "nginx.conf"
            conf.write_text(
                NGINX_CONF.format(
                    user=_user_directive(),
                    prefix=prefix,
                    balancing=f"        {METHODS[method]}\n" if METHODS[method] else "",
                    servers=servers,
                    port=port,
                ),
                encoding="utf-8",
            )
            # -e: the start-up error log too (else nginx first opens /var/log/nginx/error.log).
            command = [nginx, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)]
            with open(prefix / "nginx.out", "wb") as out:
                process = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
                )
            stack.callback(_stop, process)
            if _wait_listening(port, process, prefix, last_try=attempt == PORT_ATTEMPTS):
                break
        yield f"http://127.0.0.1:{port}"
