"""Tests of loadbench.protocols.probe against real HTTP servers on loopback (the demo and tiny stand-ins)."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from helpers import serving

from loadbench.errors import TargetError
from loadbench.protocols import bodies, probe, probehttp

Routes = dict[tuple[str, str], tuple[int, Any]]


def tiny_server(
    routes: Routes, seen: list[tuple[str, str, dict[str, str]]] | None = None, port: int = 0
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

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server


@pytest.fixture
def tiny() -> Iterator[Callable[..., str]]:
    """tiny(routes) -> base URL of a running tiny server; all are stopped after the test."""
    with_stack: list[Any] = []

    def start(routes: Routes, seen: list[Any] | None = None, port: int = 0) -> str:
        cm = serving(tiny_server(routes, seen, port))
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


# --- discovery: the model and what a request must hold -------------------------------------

V2_META = {"name": "m", "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}]}


def test_find_v2_model_takes_the_first_ready_one(tiny: Callable[..., str]) -> None:
    index = [{"name": "a", "state": "UNAVAILABLE"}, {"name": "b", "state": "READY"}, {"name": "c"}]
    found = probe.find_v2_model(tiny({("POST", "/v2/repository/index"): (200, index)}))
    assert found == probe.Found("b", "model b from POST /v2/repository/index (2 READY of 3 listed)")


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ((200, []), "POST /v2/repository/index lists no model; pass --model NAME"),
        ((200, [{"name": "a", "state": "UNAVAILABLE"}]), "lists no READY model (a (UNAVAILABLE)); pass --model NAME"),
        ((401, {"error": "unauthorized"}), "is restricted (HTTP 401: unauthorized); pass --model NAME"),
    ],
)  # fmt: skip
def test_find_v2_model_says_why_none_was_found(tiny: Callable[..., str], answer: Any, why: str) -> None:
    with pytest.raises(TargetError, match=re.escape(why)):
        probe.find_v2_model(tiny({("POST", "/v2/repository/index"): answer}))


@pytest.mark.parametrize(
    "metadata", [{"name": "m", "inputs": []}, {"name": "m"}, {"name": "m", "inputs": [{}]}]
)
def test_v2_metadata_without_inputs_names_what_to_pass(tiny: Callable[..., str], metadata: Any) -> None:
    url = tiny({("GET", "/v2/models/m"): (200, metadata)})
    with pytest.raises(TargetError, match=r"lists no inputs, .* pass --payload '\{\"inputs\": \[") as info:
        probe.v2_model_metadata(url, "m")
    assert "\n" not in str(info.value)
    assert probe.v2_model_metadata(tiny({("GET", "/v2/models/m"): (200, V2_META)}), "m") == V2_META


def test_management_candidates() -> None:
    assert probe.management_candidates("http://h:8080") == ["http://h:8080", "http://h:8081"]
    assert probe.management_candidates("https://u:p@h:9000/x/") == [
        "https://u:p@h:9000/x",
        "https://u:p@h:9001",
        "https://u:p@h:8081",
    ]
    assert probe.management_candidates("http://[::1]") == [
        "http://[::1]",
        "http://[::1]:81",
        "http://[::1]:8081",
    ]


def test_torchserve_management_found_on_the_next_port(tiny: Callable[..., str]) -> None:
    describe = [
        {
            "minWorkers": 1,
            "maxWorkers": 1,
            "batchSize": 4,
            "maxBatchDelay": 5,
            "workers": [{"status": "READY"}],
        }
    ]
    routes: Routes = {
        ("GET", "/models"): (200, {"models": [{"modelName": "r"}]}),
        ("GET", "/models/r"): (200, describe),
    }
    for _ in range(20):  # the inference port is the one below a free management port
        management = tiny(routes)
        port = int(management.rsplit(":", 1)[1])
        try:
            url = tiny({("GET", "/ping"): (200, {"status": "Healthy"})}, port=port - 1)
        except OSError:
            continue
        found = probe.find_torchserve_model(url)
        assert found.model == "r"
        assert found.note == f"model r from {management}/models (1 listed); " + (
            "workers 1/1 READY (min 1, max 1), batchSize 4, maxBatchDelay 5 ms"
        )
        return
    pytest.skip("no free pair of neighbouring ports")


def test_torchserve_without_management_api(tiny: Callable[..., str], closed_port: int) -> None:
    url = tiny({})
    found = probe.find_torchserve_model(url, model="r")
    assert (
        found.model == "r"
        and "workers and batch settings unknown (--management URL shows them)" in found.note
    )
    with pytest.raises(
        TargetError, match=r"no TorchServe model list at .*pass --management URL .* or --model NAME"
    ):
        probe.find_torchserve_model(url)
    with pytest.raises(TargetError, match=rf"^--management http://127.0.0.1:{closed_port}: .*unreachable"):
        probe.find_torchserve_model(url, management_url=f"http://127.0.0.1:{closed_port}", model="r")


def test_torchserve_model_not_served_stops_with_its_words(tiny: Callable[..., str]) -> None:
    not_found = {"code": 404, "type": "ModelNotFoundException", "message": "Model not found: nope"}
    routes: Routes = {
        ("GET", "/models"): (200, {"models": [{"modelName": "r"}]}),
        ("GET", "/models/nope"): (404, not_found),
    }
    url = tiny(routes)
    with pytest.raises(TargetError) as raised:
        probe.find_torchserve_model(url, model="nope")
    assert str(raised.value) == (
        f"TorchServe's management API at {url} does not serve model nope (GET /models/nope HTTP 404: "
        "Model not found: nope); it lists r: pass --model NAME of a served model"
    )
    # A listed model whose description is missing is still tried: the list says it is served.
    assert probe.find_torchserve_model(url, model="r").model == "r"


def test_tfserving_signature_and_example(tiny: Callable[..., str]) -> None:
    info = {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [{"size": "-1"}, {"size": "3"}]}}
    signatures = {"serving_default": {"inputs": {"x": info}}}
    metadata = {"metadata": {"signature_def": {"signature_def": signatures}}}
    url = tiny({("GET", "/v1/models/m/metadata"): (200, metadata)})
    signature = probe.tfserving_signature(url, "/v1/models/m")
    assert signature == ("serving_default", [("x", "DT_FLOAT", [-1, 3])])
    assert bodies.describe_tensors(signature[1]) == "x DT_FLOAT [-1, 3]"
    assert bodies.tfserving_example(signature[1]) == '{"instances": [[0, 0, 0]]}'
    two = [("a", "DT_STRING", [-1]), ("b", "DT_INT64", None)]
    assert bodies.tfserving_example(two) == '{"instances": [{"a": "", "b": 0}]}'
    image = [("img", "DT_FLOAT", [-1, 224, 224, 3])]
    assert bodies.tfserving_example(image) == '{"instances": [ROW, ...]} with each ROW shaped [224, 224, 3]'
    assert (
        probe.tfserving_signature(url, "/v1/models/n")
        == "GET /v1/models/n/metadata gave no signature (HTTP 404)"
    )


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


def padded_models_server(padding: int, written: list[int]) -> ThreadingHTTPServer:
    """``GET /v1/models``: an OpenAI model list after ``padding`` bytes of JSON whitespace (valid
    JSON of any size), sent in 64 KiB writes; ``written`` gets the bytes the client took."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            tail = json.dumps({"object": "list", "data": [{"id": "padded"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(padding + len(tail)))
            self.end_headers()
            sent, block = 0, b" " * 65536
            try:
                while sent < padding:
                    self.wfile.write(block[: padding - sent])
                    sent += min(len(block), padding - sent)
                self.wfile.write(tail)
                sent += len(tail)
            except OSError:  # the client hung up: it read no further
                pass
            written.append(sent)

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def test_discovery_reads_no_answer_beyond_its_bound() -> None:
    # Valid JSON just under the bound is read and used; the same list behind 64 MiB of padding is
    # not read to its end (a runaway or hostile server cannot make discovery hold it) and is
    # reported as no model list, with what to pass.
    under: list[int] = []
    with serving(padded_models_server(probehttp.PROBE_MAX_BODY_BYTES - 200, under)) as url:
        assert probe.discover_openai_model(url) == "padded"
    over: list[int] = []
    with serving(padded_models_server(64 * 1024 * 1024, over)) as url:
        with pytest.raises(TargetError, match="--model"):
            probe.discover_openai_model(url)
        deadline = time.monotonic() + 10
        while not over and time.monotonic() < deadline:
            time.sleep(0.05)
    assert over and over[0] < 64 * 1024 * 1024
