"""Tests of loadbench.protocols.probe against real HTTP servers on loopback (the demo and tiny stand-ins)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from helpers import serving

from loadbench.errors import TargetError
from loadbench.protocols import probe

Routes = dict[tuple[str, str], tuple[int, Any]]


def tiny_server(
    routes: Routes, seen: list[tuple[str, str, dict[str, str]]] | None = None
) -> ThreadingHTTPServer:
    """A JSON server answering ``routes[(method, path)]``, else 404; records what it was asked."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length", "0") or 0)
            if length:
                self.rfile.read(length)
            if seen is not None:
                seen.append((self.command, self.path, dict(self.headers.items())))
            status, payload = routes.get((self.command, self.path), (404, {"error": "not found"}))
            body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = _answer
        do_POST = _answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    return server


@pytest.fixture
def tiny() -> Iterator[Callable[..., str]]:
    """tiny(routes) -> base URL of a running tiny server; all are stopped after the test."""
    with_stack: list[Any] = []

    def start(routes: Routes, seen: list[Any] | None = None) -> str:
        cm = serving(tiny_server(routes, seen))
        with_stack.append(cm)
        return cm.__enter__()

    yield start
    for cm in reversed(with_stack):
        cm.__exit__(None, None, None)


@pytest.fixture
def closed_port() -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return int(port)


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A listening socket that never accepts or answers: connections hang until the client gives up."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


OPENAI_MODELS = {"object": "list", "data": [{"id": "tiny", "object": "model"}, {"id": "other"}]}


# --- the demo server (Open Inference Protocol v2) -------------------------------------------


def test_probe_demo_is_kserve_v2(demo_url: str) -> None:
    result = probe.probe_target(demo_url)
    assert result.scenario == "kserve_v2"
    assert "GET /v2" in result.reason
    assert "loadbench-demo" in result.reason
    assert result.model is None


def test_discover_v2_model_on_demo(demo_url: str) -> None:
    assert probe.discover_v2_model(demo_url) == "digits"


def test_v2_model_metadata_on_demo(demo_url: str) -> None:
    meta = probe.v2_model_metadata(demo_url, "digits")
    assert meta["name"] == "digits"
    assert isinstance(meta["inputs"], list)
    assert meta["inputs"][0]["shape"] == [-1, 64]


def test_v2_model_metadata_of_an_unknown_model(demo_url: str) -> None:
    with pytest.raises(TargetError, match=r"/v2/models/nope gave no model metadata \(HTTP 404\)"):
        probe.v2_model_metadata(demo_url, "nope")


def test_discover_openai_model_on_demo_finds_its_simulator(demo_url: str, tiny: Callable[..., str]) -> None:
    assert probe.discover_openai_model(demo_url) == probe.SIMULATOR_MODEL
    with pytest.raises(TargetError, match=r"listed no model \(HTTP 404\); pass --model NAME"):
        probe.discover_openai_model(tiny({("GET", "/v2"): (200, {"name": "x"})}))


def test_check_reachable_returns_any_status(demo_url: str, tiny: Callable[..., str]) -> None:
    assert probe.check_reachable(demo_url) == 404  # the demo has no "/" route: still reachable
    assert probe.check_reachable(tiny({("GET", "/"): (200, {})})) == 200
    assert probe.check_reachable(tiny({("GET", "/"): (503, {})})) == 503


# --- stand-in servers ----------------------------------------------------------------------


def test_probe_openai_server(tiny: Callable[..., str]) -> None:
    url = tiny({("GET", "/v1/models"): (200, OPENAI_MODELS)})
    result = probe.probe_target(url)
    assert result.scenario == "openai_chat"
    assert result.model == "tiny"
    assert "2 OpenAI-style model(s)" in result.reason
    assert probe.discover_openai_model(url) == "tiny"


def test_probe_openai_wins_over_v2(tiny: Callable[..., str]) -> None:
    url = tiny({("GET", "/v1/models"): (200, OPENAI_MODELS), ("GET", "/v2"): (200, {"name": "triton"})})
    assert probe.probe_target(url).scenario == "openai_chat"


def test_probe_empty_openai_list_is_not_openai(tiny: Callable[..., str]) -> None:
    url = tiny({("GET", "/v1/models"): (200, {"object": "list", "data": []})})
    assert probe.probe_target(url).scenario == "json_post"


def test_probe_v2_ready_only(tiny: Callable[..., str]) -> None:
    url = tiny({("GET", "/v2/health/ready"): (200, b"")})  # e.g. Triton with metadata off: no JSON
    result = probe.probe_target(url)
    assert result.scenario == "kserve_v2"
    assert "/v2/health/ready" in result.reason


def test_probe_json_post_when_nothing_matches(tiny: Callable[..., str]) -> None:
    seen: list[Any] = []
    url = tiny({}, seen)
    result = probe.probe_target(url, headers={"Authorization": "Bearer t0k"})
    assert result.scenario == "json_post"
    assert "no OpenAI" in result.reason
    assert result.model is None
    assert [(m, p) for m, p, _ in seen] == [
        ("GET", "/v1/models"),
        ("GET", "/v2"),
        ("GET", "/v2/health/ready"),
        ("GET", "/ping"),  # TorchServe
        ("GET", f"/v1/models/{probe.PROBE_MODEL}"),  # TF Serving
    ]
    assert all(h.get("Authorization") == "Bearer t0k" for _, _, h in seen)  # headers go with every probe


def test_probe_non_json_answers_are_json_post(tiny: Callable[..., str]) -> None:
    url = tiny({("GET", "/v1/models"): (200, b"<html>hi</html>"), ("GET", "/v2"): (200, b"not json")})
    assert probe.probe_target(url).scenario == "json_post"


def test_discover_v2_model_from_kserve_model_list(tiny: Callable[..., str]) -> None:
    url = tiny({("GET", "/v2/models"): (200, {"models": ["resnet", "bert"]})})
    assert probe.discover_v2_model(url) == "resnet"


def test_discover_v2_model_when_none_is_listed(tiny: Callable[..., str]) -> None:
    with pytest.raises(TargetError, match="lists no Open Inference Protocol model; pass --model NAME"):
        probe.discover_v2_model(tiny({}))


# --- targets that do not answer ------------------------------------------------------------


def test_closed_port_is_unreachable(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    with pytest.raises(TargetError, match="is unreachable") as info:
        probe.probe_target(url, timeout_s=2.0)
    assert f"127.0.0.1:{closed_port}" in str(info.value)
    with pytest.raises(TargetError, match="is unreachable"):
        probe.check_reachable(url, timeout_s=2.0)


def test_silent_server_did_not_answer(silent_url: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(TargetError, match=r"did not answer GET /v1/models within") as info:
        probe.probe_target(silent_url, timeout_s=0.5)
    assert time.monotonic() - t0 < 4.0  # gave up after the timeout, not the default 5 s
    assert silent_url.removeprefix("http://") in str(info.value)


def test_silent_server_message_names_the_real_timeout(silent_url: str) -> None:
    with pytest.raises(TargetError, match=r"within 0\.5 s"):
        probe.check_reachable(silent_url, timeout_s=0.5)
