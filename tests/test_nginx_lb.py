"""The nginx load balancer test helper (tests/nginx_lb.py), against real upstream servers.

Three threaded HTTP/1.1 servers on loopback answer ``POST /predict`` and ``GET /health`` with
JSON and ``X-Served-By: a|b|c``; one nginx with one worker balances over them.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import psutil
import pytest
from helpers import free_port, serving
from nginx_lb import nginx_balancer

NAMES = ("a", "b", "c")


@contextmanager
def upstream(name: str) -> Iterator[tuple[str, set[int]]]:
    """A server that says who it is; yields its URL and the client ports of its connections."""
    ports: set[int] = set()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, payload: dict[str, Any]) -> None:
            with lock:
                ports.add(self.client_address[1])
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Served-By", name)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/health":
                self._answer(200, {"status": "ok", "server": name})
            else:
                self._answer(404, {"error": "not found"})

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/predict":
                self._answer(200, {"server": name, "echo": json.loads(body)})
            else:
                self._answer(404, {"error": "not found"})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with serving(server) as url:
        yield url, ports


@contextmanager
def upstreams() -> Iterator[list[tuple[str, set[int]]]]:
    with ExitStack() as stack:
        yield [stack.enter_context(upstream(name)) for name in NAMES]


def refuses(url: str) -> bool:
    port = int(url.rsplit(":", 1)[1])
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def nginx_processes() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if p.name() == "nginx"]


def post_predictions(base: str, n: int) -> Counter[str]:
    """``n`` sequential ``POST /predict`` on one keep-alive client; who served how many."""
    served: Counter[str] = Counter()
    with httpx.Client(base_url=base, timeout=10) as client:
        for i in range(n):
            response = client.post("/predict", json={"inputs": [i, i + 1]})
            assert response.status_code == 200, response.text
            name = response.headers["X-Served-By"]
            assert response.json() == {"server": name, "echo": {"inputs": [i, i + 1]}}
            served[name] += 1
    return served


def test_round_robin_is_exact_and_passes_headers_and_bodies_through(tmp_path: Any) -> None:
    with upstreams() as servers, nginx_balancer([url for url, _ in servers], workdir=tmp_path) as base:
        assert base.startswith("http://127.0.0.1:")
        processes = nginx_processes()
        assert len(processes) == 2  # the master and its one worker

        assert post_predictions(base, 30) == {name: 10 for name in NAMES}
        # One kept-alive connection from nginx to each upstream served all of its 10 requests.
        assert [len(ports) for _, ports in servers] == [1, 1, 1]

        response = httpx.get(base + "/health", timeout=10)
        assert response.status_code == 200
        assert response.headers["X-Served-By"] in NAMES
        assert response.json() == {"status": "ok", "server": response.headers["X-Served-By"]}
        # The upstream's own headers, not nginx's.
        assert response.headers["Server"].startswith("BaseHTTP/")
        assert httpx.get(base + "/nope", timeout=10).status_code == 404

    assert refuses(base)
    psutil.wait_procs(processes, timeout=5)
    assert not any(p.is_running() for p in processes)
    # The config and error log stay in the given directory.
    (kept,) = tmp_path.glob("nginx-lb-*")
    assert "worker_processes 1;" in (kept / "nginx.conf").read_text()


def test_least_conn_and_random_reach_every_upstream() -> None:
    with upstreams() as servers:
        urls = [url for url, _ in servers]
        # Sequential requests all see 0 active connections: each upstream gets its turn.
        with nginx_balancer(urls, method="least_conn") as base:
            served = post_predictions(base, 30)
        assert set(served) == set(NAMES)
        assert sum(served.values()) == 30
        with nginx_balancer(urls, method="random") as base:
            served = post_predictions(base, 30)
        assert set(served) <= set(NAMES)
        assert sum(served.values()) == 30
    assert refuses(base)
    assert not nginx_processes()


def test_a_dead_upstream_is_skipped() -> None:
    """``proxy_next_upstream error``: a refused connection goes on to the next upstream."""
    dead = f"http://127.0.0.1:{free_port()}"
    with upstreams() as servers, nginx_balancer([servers[0][0], dead, servers[1][0]]) as base:
        served = post_predictions(base, 12)
    assert set(served) == {"a", "b"}
    assert sum(served.values()) == 12


@pytest.mark.parametrize(
    ("urls", "method"),
    [
        (["http://127.0.0.1:8000"], "ip_hash"),
        (["https://127.0.0.1:8000"], "round-robin"),
        (["http://127.0.0.1"], "round-robin"),
        (["http://127.0.0.1:8000/v1"], "round-robin"),
        ([], "round-robin"),
    ],
)
def test_bad_arguments(urls: list[str], method: str) -> None:
    with pytest.raises(ValueError), nginx_balancer(urls, method=method):
        pass
