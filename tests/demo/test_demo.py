"""Tests of the embedded demo endpoint (loadbench.demo.server) against a real server on an ephemeral port."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import math
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
from helpers import serving

import loadbench
from loadbench.demo import embeddings
from loadbench.demo.model import split_digits
from loadbench.demo.server import (
    PAYLOAD_PATH,
    DemoModel,
    build_model,
    make_server,
    predict,
    write_payload_file,
)
from loadbench.errors import TargetError
from loadbench.protocols import probe
from loadbench.protocols.bodies import embedding_problem, usage_tokens

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serving(make_server(port=0)) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=10) as c:
        yield c


def _sample_rows(n: int) -> list[list[int]]:
    lines = PAYLOAD_PATH.read_text().splitlines()[:n]
    return [json.loads(line)["inputs"][0] for line in lines]


def _assert_json(response: httpx.Response, status: int) -> object:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert float(response.headers["x-service-time-ms"]) >= 0.0
    return response.json()


def test_predict_function_and_model() -> None:
    model = build_model()
    assert isinstance(model, DemoModel)
    assert model.n_features == 64
    labels, probabilities = predict(model, _sample_rows(3))
    assert len(labels) == 3 and all(isinstance(label, int) for label in labels)
    assert all(len(p) == 10 and abs(sum(p) - 1.0) < 1e-6 for p in probabilities)
    with pytest.raises(ValueError, match="63 features"):
        predict(model, [[0] * 63])


def test_cached_model_predicts_what_the_fitted_pipeline_does(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_train, x_test, y_train, _ = split_digits()
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x_train, y_train)
    cache = tmp_path / "model.npz"
    trained = build_model(cache)
    assert cache.is_file()
    cached = build_model(cache)  # read back, not trained again
    for model in (trained, cached):
        np.testing.assert_allclose(
            model.predict_proba(x_test), pipeline.predict_proba(x_test), rtol=1e-9, atol=1e-12
        )
    labels, _ = predict(cached, x_test)
    assert labels == pipeline.predict(x_test).tolist()
    cache.write_bytes(b"not an npz")  # a damaged cache means training again, never a crash
    assert predict(build_model(cache), x_test)[0] == labels
    (tmp_path / "file").touch()  # a cache that cannot be written means serving without one
    assert predict(build_model(tmp_path / "file" / "model.npz"), x_test)[0] == labels


def test_health(client: httpx.Client) -> None:
    assert _assert_json(client.get("/health"), 200) == {"status": "ok"}


def test_predict_batch_and_flat(client: httpx.Client) -> None:
    rows = _sample_rows(4)
    body = _assert_json(client.post("/predict", json={"inputs": rows, "_expected": 1, "extra": "x"}), 200)
    assert isinstance(body, dict)
    assert body["model"] == "digits"
    assert len(body["predictions"]) == 4 and all(isinstance(p, int) for p in body["predictions"])
    assert len(body["probabilities"]) == 4 and all(len(p) == 10 for p in body["probabilities"])
    flat = _assert_json(client.post("/predict", json={"inputs": rows[0]}), 200)
    assert isinstance(flat, dict)
    assert flat["predictions"] == body["predictions"][:1]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "empty"),
        (json.dumps({"inputs": [[0] * 63]}).encode(), "63 features, expected 64"),
        (json.dumps({"inputs": [["a"] * 64]}).encode(), "not a number"),
        (json.dumps({"inputs": []}).encode(), "non-empty"),
        (json.dumps({"rows": [[0] * 64]}).encode(), '"inputs"'),
        (json.dumps([1, 2]).encode(), '"inputs"'),
    ],
)
def test_predict_bad_requests(client: httpx.Client, content: bytes, message: str) -> None:
    body = _assert_json(
        client.post("/predict", content=content, headers={"Content-Type": "application/json"}), 400
    )
    assert isinstance(body, dict)
    assert message in body["error"]


def test_unknown_route_and_wrong_method(client: httpx.Client) -> None:
    assert "error" in _assert_json(client.get("/nope"), 404)  # type: ignore[operator]
    assert "error" in _assert_json(client.post("/nope", json={}), 404)  # type: ignore[operator]
    wrong = client.get("/predict")
    _assert_json(wrong, 405)
    assert wrong.headers["allow"] == "POST"
    assert _assert_json(client.put("/health"), 501) == {"error": "Unsupported method ('PUT')"}


def test_v2_metadata_routes(client: httpx.Client) -> None:
    assert _assert_json(client.get("/v2"), 200) == {
        "name": "loadbench-demo",
        "version": loadbench.__version__,
        "extensions": [],
    }
    assert _assert_json(client.get("/v2/health/live"), 200) == {"live": True}
    assert _assert_json(client.get("/v2/health/ready"), 200) == {"ready": True}
    metadata = {
        "name": "digits",
        "versions": ["1"],
        "platform": "sklearn",
        "inputs": [{"name": "input-0", "datatype": "FP32", "shape": [-1, 64]}],
        "outputs": [{"name": "output-0", "datatype": "INT64", "shape": [-1]}],
    }
    assert _assert_json(client.get("/v2/models/digits"), 200) == metadata
    assert _assert_json(client.get("/v2/models/digits/versions/1"), 200) == metadata
    assert _assert_json(client.get("/v2/models/digits/ready"), 200) == {"name": "digits", "ready": True}
    # digits first (the model a client picks from the index), then its variants (test_demo_variants.py)
    assert _assert_json(client.post("/v2/repository/index", json={}), 200) == [
        {"name": name, "version": "1", "state": "READY"}
        for name in ("digits", "digits-int8", "digits-pruned", "digits-distilled")
    ]


def test_v2_unknown_model(client: httpx.Client) -> None:
    assert _assert_json(client.get("/v2/models/x"), 404) == {"error": "model 'x' not found"}
    assert _assert_json(client.get("/v2/models/x/ready"), 404) == {"error": "model 'x' not found"}
    infer = client.post("/v2/models/x/infer", json={"inputs": []})
    assert _assert_json(infer, 404) == {"error": "model 'x' not found"}
    assert _assert_json(client.get("/v2/models/digits/versions/7"), 404) is not None


def test_v2_infer_flat_and_nested(client: httpx.Client) -> None:
    rows = _sample_rows(3)
    expected = _assert_json(client.post("/predict", json={"inputs": rows}), 200)
    assert isinstance(expected, dict)
    flat = [v for row in rows for v in row]
    for data in (flat, rows):
        request = {
            "id": "req-1",
            "inputs": [{"name": "input-0", "shape": [3, 64], "datatype": "FP32", "data": data}],
        }
        body = _assert_json(client.post("/v2/models/digits/infer", json=request), 200)
        assert body == {
            "model_name": "digits",
            "model_version": "1",
            "id": "req-1",
            "outputs": [
                {"name": "output-0", "shape": [3], "datatype": "INT64", "data": expected["predictions"]}
            ],
        }
    no_id = {"inputs": [{"name": "input-0", "shape": [1, 64], "datatype": "FP32", "data": flat[:64]}]}
    body = _assert_json(client.post("/v2/models/digits/versions/1/infer", json=no_id), 200)
    assert isinstance(body, dict)
    assert "id" not in body
    assert body["outputs"][0]["shape"] == [1]


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        ({"name": "input-0", "shape": [1, 63], "datatype": "FP32", "data": [0] * 63}, "not [N, 64]"),
        ({"name": "input-0", "shape": [2, 64], "datatype": "FP32", "data": [0] * 64}, "needs 128"),
        ({"name": "input-0", "shape": [1, 64], "datatype": "BYTES", "data": ["a"] * 64}, "datatype"),
        ({"name": "input-0", "shape": [1, 64], "datatype": "FP32", "data": ["a"] * 64}, "not a number"),
    ],
)
def test_v2_infer_bad_requests(client: httpx.Client, tensor: dict[str, object], message: str) -> None:
    body = _assert_json(client.post("/v2/models/digits/infer", json={"inputs": [tensor]}), 400)
    assert isinstance(body, dict)
    assert message in body["error"]


# --- TF Serving REST and KServe v1 ------------------------------------------------------------


def test_v1_model_list_speaks_to_openai_and_kserve_clients(base_url: str, client: httpx.Client) -> None:
    listed = _assert_json(client.get("/v1/models"), 200)
    assert isinstance(listed, dict)
    assert [m["id"] for m in listed["data"]] == [probe.SIMULATOR_MODEL] and listed["models"] == ["digits"]
    # Each scenario's discovery reads its own key of the one list.
    assert probe.discover_v1_model(base_url) == probe.discover_tfserving_model(base_url) == "digits"
    assert probe.discover_openai_model(base_url) == probe.SIMULATOR_MODEL
    assert probe.discover_torchserve_model(base_url) == "digits"
    # The probe still benchmarks the demo's digits over v2 when no scenario is named.
    assert probe.probe_target(base_url).scenario == "kserve_v2"


def test_v1_model_status_and_metadata(base_url: str, client: httpx.Client) -> None:
    status = _assert_json(client.get("/v1/models/digits"), 200)
    assert status == _assert_json(client.get("/v1/models/digits/versions/1"), 200)
    assert isinstance(status, dict) and status["name"] == "digits" and status["ready"] is True
    assert probe.tfserving_model_status(base_url, "digits") == [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]
    metadata = _assert_json(client.get("/v1/models/digits/metadata"), 200)
    assert isinstance(metadata, dict) and metadata["model_spec"]["name"] == "digits"
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["inputs"]["input-0"]["tensor_shape"]["dim"][1]["size"] == "64"
    unknown = {"error": "Could not find any versions of model x"}
    assert _assert_json(client.get("/v1/models/x"), 404) == unknown
    assert _assert_json(client.get("/v1/models/digits/versions/7"), 404) is not None
    missing = client.post("/v1/models/x:predict", json={"instances": _sample_rows(1)})
    assert _assert_json(missing, 404) == {"error": "Servable not found for request: Latest(x)"}
    with pytest.raises(TargetError, match="no TF Serving model status"):
        probe.tfserving_model_status(base_url, "x")


def test_v1_predict_row_and_columnar_formats(client: httpx.Client) -> None:
    rows = _sample_rows(3)
    expected = _assert_json(client.post("/predict", json={"inputs": rows}), 200)
    assert isinstance(expected, dict)
    labels = expected["predictions"]
    for path in ("/v1/models/digits:predict", "/v1/models/digits/versions/1:predict"):
        assert _assert_json(client.post(path, json={"instances": rows}), 200) == {"predictions": labels}
    named = {"instances": [{"pixels": row} for row in rows], "signature_name": "serving_default"}
    assert _assert_json(client.post("/v1/models/digits:predict", json=named), 200) == {"predictions": labels}
    # Columnar requests are answered under "outputs", as TF Serving and loadbench's scenarios have it.
    for columnar in ({"inputs": rows}, {"inputs": {"input-0": rows}}):
        answer = client.post("/v1/models/digits:predict", json=columnar)
        assert _assert_json(answer, 200) == {"outputs": labels}
    wrong = client.get("/v1/models/digits:predict")
    assert _assert_json(wrong, 405) is not None and wrong.headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"rows": [[0] * 64]}, 'one of "instances"'),
        ({"instances": [[0] * 64], "inputs": [[0] * 64]}, 'one of "instances"'),
        ({"inputs": {"a": [[0] * 64], "b": [[0] * 64]}}, "names 2 input tensors"),
        ({"instances": [[0] * 63]}, "63 features"),
        ({"instances": []}, "non-empty"),
    ],
)
def test_v1_predict_bad_requests(client: httpx.Client, body: dict[str, object], message: str) -> None:
    answer = _assert_json(client.post("/v1/models/digits:predict", json=body), 400)
    assert isinstance(answer, dict) and message in answer["error"]


# --- TorchServe ---------------------------------------------------------------------------------


def test_torchserve_inference_and_management(client: httpx.Client) -> None:
    assert _assert_json(client.get("/ping"), 200) == {"status": "Healthy"}
    assert _assert_json(client.get("/models"), 200) == {
        "models": [{"modelName": "digits", "modelUrl": "digits.mar"}]
    }
    described = _assert_json(client.get("/models/digits"), 200)
    assert isinstance(described, list) and described[0]["modelName"] == "digits"
    assert described[0]["modelVersion"] == "1.0" and described[0]["workers"][0]["status"] == "READY"
    assert _assert_json(client.get("/models/digits/all"), 200) == described
    rows = _sample_rows(2)
    expected = _assert_json(client.post("/predict", json={"inputs": rows}), 200)
    for path in ("/predictions/digits", "/predictions/digits/1.0"):
        for body in ({"inputs": rows}, {"instances": rows}, {"data": rows}, rows):
            assert _assert_json(client.post(path, json=body), 200) == expected
    not_found = {"code": 404, "type": "ModelNotFoundException", "message": "Model not found: x"}
    assert _assert_json(client.post("/predictions/x", json=rows), 404) == not_found
    assert _assert_json(client.get("/models/x"), 404) == not_found
    version = _assert_json(client.post("/predictions/digits/2.0", json=rows), 404)
    assert isinstance(version, dict) and version["type"] == "ModelVersionNotFoundException"
    bad = _assert_json(client.post("/predictions/digits", json={"pixels": rows}), 400)
    assert isinstance(bad, dict) and '"inputs"' in bad["error"]
    assert _assert_json(client.get("/predictions/digits"), 405) is not None


# --- OpenAI embeddings ------------------------------------------------------------------------


def test_embeddings_answer_as_openai_does(base_url: str, client: httpx.Client) -> None:
    model = probe.discover_openai_model(base_url)
    body = {"model": model, "input": "loadbench measures how fast this sentence is embedded."}
    answer = _assert_json(client.post("/v1/embeddings", json=body), 200)
    assert isinstance(answer, dict)
    assert embedding_problem(answer) is None and usage_tokens(answer) == 8
    assert answer["object"] == "list" and answer["model"] == model
    assert answer["usage"] == {"prompt_tokens": 8, "total_tokens": 8}
    vector = answer["data"][0]["embedding"]
    assert answer["data"][0]["index"] == 0 and len(vector) == embeddings.EMBEDDING_DIM
    assert abs(math.fsum(v * v for v in vector) - 1.0) < 1e-5
    again = _assert_json(client.post("/v1/embeddings", json={"input": body["input"]}), 200)
    assert isinstance(again, dict) and again["data"][0]["embedding"] == vector  # deterministic
    many = {"input": ["a b", "c", [1, 2, 3]], "dimensions": 8, "encoding_format": "base64"}
    batch = _assert_json(client.post("/v1/embeddings", json=many), 200)
    assert isinstance(batch, dict) and [d["index"] for d in batch["data"]] == [0, 1, 2]
    assert batch["usage"]["prompt_tokens"] == 6
    packed = struct.unpack("<8f", base64.b64decode(batch["data"][0]["embedding"]))
    assert abs(math.fsum(v * v for v in packed) - 1.0) < 1e-5
    tokens = _assert_json(client.post("/v1/embeddings", json={"input": [5, 6]}), 200)
    assert isinstance(tokens, dict) and tokens["usage"]["prompt_tokens"] == 2


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"model": "gpt-x", "input": "a"}, 404, "does not exist"),
        ({"input": ""}, 400, "is empty"),
        ({"input": []}, 400, '"input" must be'),
        ({"input": [{"text": "a"}]}, 400, "neither a string"),
        ({"input": "a", "dimensions": 65}, 400, '"dimensions"'),
        ({"input": "a", "encoding_format": "int8"}, 400, '"encoding_format"'),
        (["a"], 400, "JSON object"),
    ],
)
def test_embeddings_bad_requests(client: httpx.Client, body: object, status: int, message: str) -> None:
    answer = _assert_json(client.post("/v1/embeddings", json=body), status)
    assert isinstance(answer, dict) and message in answer["error"]["message"]  # OpenAI's error shape


def test_every_protocol_gives_predict_answers_on_the_shipped_payloads(client: httpx.Client) -> None:
    records = [json.loads(line) for line in PAYLOAD_PATH.read_text().splitlines()]
    rows = [record["inputs"][0] for record in records]
    expected = _assert_json(client.post("/predict", json={"inputs": rows}), 200)
    assert isinstance(expected, dict)
    labels = expected["predictions"]
    assert _assert_json(client.post("/v1/models/digits:predict", json={"inputs": rows}), 200) == {
        "outputs": labels
    }
    torchserve = _assert_json(client.post("/predictions/digits", json={"inputs": rows}), 200)
    assert isinstance(torchserve, dict) and torchserve["predictions"] == labels
    # What --demo sends these scenarios: each shipped line as it is, one request per line.
    for i, record in enumerate(records[:20]):
        line = {"inputs": record["inputs"]}
        for path, key in (("/v1/models/digits:predict", "outputs"), ("/predictions/digits", "predictions")):
            predicted = _assert_json(client.post(path, json=line), 200)
            assert isinstance(predicted, dict) and predicted[key] == [labels[i]]


def test_keep_alive_over_one_connection(base_url: str) -> None:
    port = int(base_url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/health")
        first = conn.getresponse()
        assert first.status == 200 and json.loads(first.read()) == {"status": "ok"}
        sock = conn.sock
        # A 400 must not cost the connection either.
        conn.request("POST", "/predict", body=b"{bad", headers={"Content-Type": "application/json"})
        second = conn.getresponse()
        assert second.status == 400 and "error" in json.loads(second.read())
        conn.request("POST", "/predict", body=json.dumps({"inputs": _sample_rows(1)}))
        third = conn.getresponse()
        assert third.status == 200 and json.loads(third.read())["model"] == "digits"
        assert conn.sock is sock  # same socket: the server kept the connection open
    finally:
        conn.close()


def test_service_time_includes_latency() -> None:
    with (
        serving(make_server(port=0, latency_ms=20.0, jitter_ms=5.0)) as url,
        httpx.Client(base_url=url) as c,
    ):
        predicted = c.post("/predict", json={"inputs": _sample_rows(1)})
        assert predicted.status_code == 200
        assert float(predicted.headers["x-service-time-ms"]) >= 20.0
        tensor = {"name": "input-0", "shape": [1, 64], "datatype": "FP32", "data": _sample_rows(1)[0]}
        inferred = c.post("/v2/models/digits/infer", json={"inputs": [tensor]})
        assert float(inferred.headers["x-service-time-ms"]) >= 20.0
        # So do the other protocols' predictions, and embeddings.
        for path, body in (
            ("/v1/models/digits:predict", {"instances": _sample_rows(1)}),
            ("/predictions/digits", {"inputs": _sample_rows(1)}),
            ("/v1/embeddings", {"input": "a b"}),
        ):
            answered = c.post(path, json=body)
            assert answered.status_code == 200 and float(answered.headers["x-service-time-ms"]) >= 20.0
        # Health and metadata routes must stay fast: they are not predictions.
        for path in ("/health", "/v1/models/digits", "/ping", "/models"):
            assert float(c.get(path).headers["x-service-time-ms"]) < 20.0


def test_unexpected_exception_is_500_and_server_survives() -> None:
    server = make_server(port=0)
    broken = np.array(None)  # arithmetic on it raises TypeError: a bug, not the client's fault
    server.model = DemoModel(broken, broken, broken, broken, broken)  # type: ignore[attr-defined]
    with serving(server) as url, httpx.Client(base_url=url) as c:
        body = _assert_json(c.post("/predict", json={"inputs": _sample_rows(1)}), 500)
        assert isinstance(body, dict)
        assert "internal error" in body["error"]
        assert _assert_json(c.get("/health"), 200) == {"status": "ok"}


def test_model_accuracy_on_shipped_payloads(client: httpx.Client) -> None:
    records = [json.loads(line) for line in PAYLOAD_PATH.read_text().splitlines()]
    rows = [record["inputs"][0] for record in records]
    body = _assert_json(client.post("/predict", json={"inputs": rows}), 200)
    assert isinstance(body, dict)
    correct = sum(p == r["_expected"] for p, r in zip(body["predictions"], records, strict=True))
    assert correct / len(records) > 0.9


def test_shipped_payload_file_matches_generator(tmp_path: Path) -> None:
    shipped = PAYLOAD_PATH.read_text()
    assert len(shipped.splitlines()) == 360
    regenerated = tmp_path / "sub" / "digits.jsonl"
    assert write_payload_file(regenerated) == 360
    assert regenerated.read_text() == shipped
    first = json.loads(shipped.splitlines()[0])
    assert set(first) == {"inputs", "_expected"}
    assert len(first["inputs"]) == 1 and len(first["inputs"][0]) == 64
    assert all(isinstance(v, int) for v in first["inputs"][0])


def test_module_entry_point_serves_and_stops_cleanly_on_sigterm() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "loadbench.demo.server", "--port", "0"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.startswith("loadbench demo: serving a digits classifier on http://127.0.0.1:")
            assert line.rstrip("\n").endswith(
                "(POST /predict, Open Inference Protocol v2 at /v2/models/digits)"
            )
            match = re.search(r"http://\S+", line)
            assert match is not None
            assert httpx.get(f"{match.group(0)}/health", timeout=10).json() == {"status": "ok"}
            proc.send_signal(signal.SIGTERM)
            stdout, stderr = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0
    assert stderr == ""
    assert stdout == ""


def test_a_busy_port_is_one_line_exit_2() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = subprocess.run(
            [sys.executable, "-m", "loadbench.demo.server", "--port", str(busy.getsockname()[1])],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "Address already in use" in result.stderr


PARENT = """
import subprocess, sys
demo = subprocess.Popen([sys.executable, "-m", "loadbench", "demo", "--port", "0", "--parent-pid", str(__import__("os").getpid())], stdout=subprocess.PIPE, text=True)
demo.stdout.readline()
print(demo.pid, flush=True)
"""


def test_demo_stops_by_itself_when_its_parent_is_gone() -> None:
    # The parent prints the serving demo's pid and exits without stopping it.
    parent = subprocess.run(
        [sys.executable, "-c", PARENT], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert parent.returncode == 0, parent.stderr
    demo_pid = int(parent.stdout)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and psutil.pid_exists(demo_pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            if psutil.Process(demo_pid).status() == psutil.STATUS_ZOMBIE:
                break
        time.sleep(0.1)
    else:
        assert not psutil.pid_exists(demo_pid), "the orphaned demo kept serving"


@pytest.mark.parametrize("module", ["loadbench.demo", "loadbench.demo.server"])
def test_stand_alone_entry_points_are_the_demo_command(module: str) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", *args]
        return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)

    assert run(module, "--help").stdout == run("loadbench", "demo", "--help").stdout
    bad = run(module, "--port", "99999")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr == run("loadbench", "demo", "--port", "99999").stderr
    assert (
        bad.stderr.startswith("loadbench: error: argument --port: port 99999") and bad.stderr.count("\n") == 1
    )


def test_the_spawner_checks_timing_and_loads_no_driver() -> None:
    from loadbench.demo.spawn import DemoTiming, demo_command
    from loadbench.errors import UsageError

    with pytest.raises(UsageError, match="--demo-latency-ms"):
        DemoTiming(latency_ms=float("inf")).check()
    with pytest.raises(UsageError, match="--demo-llm-ttft-ms"):
        DemoTiming(llm_ttft_ms=-1).check()
    command = demo_command(2.0, None, (None, 5.0))
    assert command[1:5] == ["-m", "loadbench.demo", "--port", "0"] and command[-2:] == ["--llm-itl-ms", "5.0"]
    code = "import sys, loadbench.demo.spawn, loadbench.demo.args; print(sorted(set(sys.modules) & {'locust', 'gevent', 'loadbench.cli', 'sklearn'}))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stderr


def test_demo_runs_give_the_digits_to_the_scenarios_that_need_bodies() -> None:
    from loadbench.demo.spawn import demo_scenario_args

    for scenario in ("json_post", "tfserving", "kserve_v1", "torchserve", "scenarios/torchserve.py"):
        assert demo_scenario_args(scenario, ["-x"]) == ["-x", "--data", str(PAYLOAD_PATH)]
    # Told what to send, or a scenario that builds its own bodies: left alone.
    assert demo_scenario_args("tfserving", ["--payload", "[1]"]) == ["--payload", "[1]"]
    assert demo_scenario_args("kserve_v1", ["--data=x.jsonl"]) == ["--data=x.jsonl"]
    for scenario in ("kserve_v2", "embeddings", "asr", "json_template", None):
        assert demo_scenario_args(scenario, []) == []
