"""``kserve_v2_grpc`` end to end: ``python -m loadbench run`` against real gRPC servers on loopback
(the demo's gRPC side as a child process, test servers here), what its records hold, that every
later stage reads them unchanged, that its users overlap under gevent, and each bad input or
failing server as one line or truthful records. Locust stays in the child processes.
"""

from __future__ import annotations

import json
import shutil
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_servers import demo_grpc, demo_grpc_process, grpc_serving
from helpers import DIGITS, read_json, run_cli
from tls import self_signed_cert

from loadbench.demo.model import build_model, v2_metadata
from loadbench.protocols.v2grpc import grpc_predict_v2_pb2 as pb
from loadbench.record.columnar import read_run_requests

pytestmark = pytest.mark.e2e
INFER = "/inference.GRPCInferenceService/ModelInfer"
QUICK = ("-u", "2", "-d", "1s", "--warmup", "0s", "--no-sampler")
# The demos' service time where throughput is not the subject: 2 users then send a few hundred
# calls a second, plenty for every count below, instead of saturating both cores.
PACE_MS = 5


@pytest.fixture(scope="module")
def demo() -> Iterator[tuple[str, str]]:
    """The demo, serving HTTP and gRPC: (http://, grpc://)."""
    with demo_grpc_process(PACE_MS) as urls:
        yield urls


def loadbench(out: Path, *args: str) -> Any:
    return run_cli("run", "--out", str(out), *args)


def one_line_error(result: Any) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("loadbench: error: "), result.stderr[-2000:]
    return str(lines[0])


def one_row_per_label(http: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """One labelled v2 body per digit, two of them rows the demo's model gets wrong, and what the
    model answers (over HTTP) for each label's row: the answers every request must get."""
    lines = [json.loads(line) for line in DIGITS.read_text(encoding="utf-8").splitlines()]
    rows = [line["inputs"][0] for line in lines]
    body = {"inputs": [{"name": "input-0", "shape": [len(rows), 64], "datatype": "FP32", "data": rows}]}
    request = urllib.request.Request(f"{http}/v2/models/digits/infer", data=json.dumps(body).encode())
    with urllib.request.urlopen(request, timeout=60) as answer:
        predicted = json.loads(answer.read())["outputs"][0]["data"]
    bodies, offline = [], {}
    wrong = [i for i, line in enumerate(lines) if predicted[i] != line["_expected"]][:2]
    for label in range(10):
        chosen = [i for i in wrong if lines[i]["_expected"] == label]
        i = chosen[0] if chosen else next(i for i, line in enumerate(lines) if line["_expected"] == label)
        bodies.append(
            {"inputs": [{"name": "input-0", "shape": [1, 64], "datatype": "FP32", "data": rows[i]}]}
        )
        bodies[-1]["_expected"] = label
        offline[str(label)] = str(predicted[i])
    return bodies, offline


@pytest.fixture(scope="module")
def labelled(demo: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The labelled rows' file, and the model's answer (over HTTP) for each label's row."""
    bodies, offline = one_row_per_label(demo[0])
    data = tmp_path_factory.mktemp("labelled") / "digits-v2.jsonl"
    data.write_text("".join(json.dumps(b) + "\n" for b in bodies), encoding="utf-8")
    return data, offline


@pytest.fixture(scope="module")
def probed_run(
    demo: tuple[str, str], labelled: tuple[Path, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Any]:
    """A run of the labelled rows (typed contents) given no --scenario: the probe knows gRPC.
    Read by the tests of the recording and of the answers."""
    out = tmp_path_factory.mktemp("probed") / "run"
    return out, loadbench(out, "--target", demo[1], "--data", str(labelled[0]), *QUICK)


def test_a_grpc_run_is_recorded_as_http_runs_are_and_every_stage_reads_it(
    probed_run: tuple[Path, Any], tmp_path: Path
) -> None:
    out, result = probed_run
    assert result.returncode == 0, result.stderr[-3000:]
    assert "chosen by probing the target: a grpc:// target: ServerLive answered live=true" in result.stderr
    assert "kserve_v2_grpc: model digits from RepositoryIndex (1 READY of 1 listed)" in result.stderr
    requests = read_run_requests(out)
    assert len(requests) > 10
    assert set(requests["name"]) == {INFER} and set(requests["method"]) == {"gRPC"}
    assert requests["ok"].all() and (requests["status"] == 200).all()
    # The answer message's bytes: model name, version, one INT64 output.
    assert (requests["response_bytes"] > 20).all()
    assert read_json(out / "meta.json")["scenario"] == "kserve_v2_grpc"
    # Re-analysed and re-rendered from the directory alone, as for any run (a copy: another
    # test reads the run).
    again = Path(shutil.copytree(out, tmp_path / "again"))
    (again / "report.html").unlink()
    (again / "summary.json").unlink()
    report = run_cli("report", str(again))
    assert report.returncode == 0, report.stderr[-2000:]
    assert INFER in (again / "report.html").read_text(encoding="utf-8")
    summary = read_json(again / "summary.json")
    assert list(summary["by_name"]) == [INFER] and summary["requests"]["errors"] == 0


@pytest.mark.parametrize("contents", ["typed", "--raw-contents"])
def test_labelled_rows_get_the_models_answers_and_its_accuracy(
    request: pytest.FixtureRequest,
    demo: tuple[str, str],
    labelled: tuple[Path, dict[str, str]],
    tmp_path: Path,
    contents: str,
) -> None:
    data, offline = labelled
    if contents == "typed":  # the probed run's: the same rows, with the probe's choice
        out, result = request.getfixturevalue("probed_run")
    else:
        out = tmp_path / "run"
        args = ("--target", demo[1], "--scenario", "kserve_v2_grpc", "--data", str(data), contents)
        result = loadbench(out, *args, *QUICK)
    assert result.returncode == 0, result.stderr[-3000:]
    requests = read_run_requests(out)
    assert len(requests) >= 10 and requests["ok"].all()
    expected, predicted = requests["expected"].astype(str), requests["predicted"].astype(str)
    assert (predicted == expected.map(offline)).all()  # each row's answer over gRPC is its HTTP answer
    quality = read_json(out / "summary.json")["quality"]
    correct = expected.map(lambda label: offline[label] == label)
    assert quality["correct"] == correct.sum()
    assert 0 < quality["accuracy"] < 1  # two rows the model gets wrong: a real comparison


def test_32_users_overlap_under_gevent(tmp_path: Path) -> None:
    # Each call takes 200 ms on the server. Were a call to hold gevent's hub (no init_gevent),
    # the users would take turns: one call in flight at a time, 5 calls a second.
    service_s = 0.2
    with demo_grpc_process(latency_ms=service_s * 1000) as (_, target):
        out = tmp_path / "run"
        result = loadbench(
            out,
            "--target",
            target,
            "-u",
            "32",
            "-r",
            "1000",
            "-d",
            "4s",
            "--warmup",
            "1s",
            "--no-sampler",
            "-q",
        )
    assert result.returncode == 0, result.stderr[-3000:]
    requests = read_run_requests(out)
    assert requests["ok"].all()
    assert (requests["latency_ms"] >= service_s * 1000).all()
    # The most calls in flight at one instant: 32 when they overlap, 1 when they take turns.
    start = requests["start_unix_s"].to_numpy()
    edges = np.concatenate([start, start + requests["latency_ms"].to_numpy() / 1000])
    steps = np.concatenate([np.ones(len(start)), -np.ones(len(start))])
    in_flight = np.cumsum(steps[np.argsort(edges, kind="stable")]).max()
    assert in_flight >= 16, in_flight
    # 32 users each finishing a call per service time: ~160 calls/s; taking turns, 5 calls/s.
    throughput = read_json(out / "summary.json")["throughput_rps"]
    assert throughput >= 32 / service_s / 4, throughput


def test_an_open_loop_over_grpc_counts_from_each_due_time(demo: tuple[str, str], tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ("--rate", "20", "--arrival", "constant", *QUICK[2:], "-d", "2s", "-q")  # -d: the last one wins
    result = loadbench(out, "--target", demo[1], *args)
    assert result.returncode == 0, result.stderr[-3000:]
    requests = read_run_requests(out)
    assert 25 <= len(requests) <= 45  # 20/s for 2 s
    assert requests["intended_unix_s"].notna().all()
    assert (requests["start_unix_s"] >= requests["intended_unix_s"] - 0.001).all()


def test_deadline_exceeded_is_recorded_as_the_clients_own_status(tmp_path: Path) -> None:
    with demo_grpc_process(latency_ms=300) as (_, target):
        refused = loadbench(tmp_path / "refused", "--target", target, "--timeout", "50ms", *QUICK)
        out = tmp_path / "run"
        result = loadbench(out, "--target", target, "--timeout", "50ms", "--no-preflight", *QUICK)
    assert refused.returncode == 2
    first = refused.stderr.splitlines()[0]  # the call's own gRPC status, named once
    assert "ModelInfer -> DEADLINE_EXCEEDED in " in first and " ms: Deadline Exceeded" in first, first
    assert result.returncode == 3, result.stderr[-3000:]  # every request failed
    requests = read_run_requests(out)
    assert (requests["status"] == 0).all()  # no answer came: gRPC's client gave up at the deadline
    assert (requests["error"] == "DEADLINE_EXCEEDED: Deadline Exceeded").all()
    assert (requests["server_message"].fillna("") == "").all()
    assert read_json(out / "summary.json")["errors"][0]["kind"] == "DEADLINE_EXCEEDED"


def metadata(request: Any, context: grpc.ServicerContext) -> pb.ModelMetadataResponse:
    reply = pb.ModelMetadataResponse(name=request.name)
    for spec in v2_metadata()["inputs"]:
        reply.inputs.add(name=spec["name"], datatype=spec["datatype"], shape=spec["shape"])
    return reply


def test_a_server_without_model_infer_is_measured_with_its_own_words(tmp_path: Path) -> None:
    def live(request: Any, context: grpc.ServicerContext) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    with grpc_serving({"ServerLive": live, "ModelMetadata": metadata}) as target:
        asked = loadbench(tmp_path / "asked", "--target", target, *QUICK)
        out = tmp_path / "run"
        result = loadbench(out, "--target", target, "--model", "digits", "--no-preflight", *QUICK)
    assert "does not serve RepositoryIndex (UNIMPLEMENTED" in one_line_error(asked)
    assert "pass --model NAME" in asked.stderr
    assert result.returncode == 3, result.stderr[-3000:]
    requests = read_run_requests(out)
    assert (requests["status"] == 200).all()  # the server answered, with a gRPC status of its own
    assert (requests["error"] == "UNIMPLEMENTED: Method not found!").all()
    assert (requests["server_message"] == "Method not found!").all()
    errors = read_json(out / "summary.json")["errors"]
    assert errors[0]["kind"] == "UNIMPLEMENTED" and errors[0]["server_message"] == "Method not found!"


def test_a_message_over_the_servers_limit_is_its_refusal(demo: tuple[str, str], tmp_path: Path) -> None:
    # 1.06 million FP32 values: 4.24 MB, over gRPC's default 4 MiB the demo's server keeps.
    values = 1_060_000
    big = {"inputs": [{"name": "input-0", "shape": [1, values], "datatype": "FP32", "data": [0.5] * values}]}
    data = tmp_path / "big.jsonl"
    data.write_text(json.dumps(big) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    args = (
        "--target",
        demo[1],
        "--data",
        str(data),
        "--no-preflight",
        "-u",
        "1",
        "-d",
        "1s",
        "--warmup",
        "0s",
    )
    result = loadbench(out, *args, "--no-sampler")
    assert result.returncode == 3, result.stderr[-3000:]
    requests = read_run_requests(out)
    assert (
        requests["error"].str.startswith("RESOURCE_EXHAUSTED: SERVER: Received message larger than max").all()
    )
    assert requests["server_message"].str.contains("vs. 4194304", regex=False).all()


def fill(text: str, names: dict[str, str]) -> str:
    """``{name}`` placeholders filled (not str.format: JSON payloads hold braces of their own)."""
    for name, value in names.items():
        text = text.replace("{" + name + "}", value)
    return text


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--target", "{grpc}/v2"], "a grpc:// target is HOST:PORT without a path"),
        (["--target", "{grpc}", "--model", "nosuch"], "model nosuch: {grpc} answered ModelMetadata with NOT_FOUND"),
        (
            ["--target", "{grpc}", "--payload", '{"inputs": [{"name": "input-0", "shape": [1, 2], '
             '"datatype": "INT32", "data": [1, 2]}]}'],
            "payload 1: input input-0 is INT32, but the model's metadata says FP32",
        ),
        (["--target", "{grpc}", "--payload", '{"instances": [[1, 2]]}'], 'non-empty "inputs" list'),
        (["--target", "{http_as_grpc}"], "speaks HTTP/1.1, not gRPC (GET / answered HTTP 404): use --target {http}"),
        (["--target", "{grpc_as_http}"], "answers in gRPC, not HTTP/1.1 (ServerLive answered there): use --target {grpc}"),
        (["--target", "{grpc}", "--scenario", "kserve_v2"], "scenario kserve_v2 sends HTTP, and a grpc:// target"),
        (["--target", "{http}", "--scenario", "kserve_v2_grpc"], "kserve_v2_grpc speaks gRPC: give --target grpc://"),
        (["--target", "grpc://127.0.0.1:{closed}"], "is unreachable: failed to connect to all addresses"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_naming_the_fix(
    demo: tuple[str, str], tmp_path: Path, args: list[str], words: str
) -> None:
    http, target = demo
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    names = {
        "grpc": target,
        "http": http,
        "http_as_grpc": http.replace("http://", "grpc://"),
        "grpc_as_http": target.replace("grpc://", "http://"),
        "closed": str(closed),
    }
    out = tmp_path / "run"
    line = one_line_error(loadbench(out, *[fill(a, names) for a in args], *QUICK))
    assert fill(words, names) in line
    assert not out.exists()


def test_grpcs_is_verified_and_insecure_trusts_the_certificate(tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed")
    cert, key = self_signed_cert(openssl, tmp_path)
    credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    with demo_grpc(build_model(), PACE_MS, credentials=credentials) as target:
        refused = loadbench(tmp_path / "refused", "--target", target, *QUICK)
        out = tmp_path / "run"
        result = loadbench(out, "--target", target, "--insecure", *QUICK)
    assert "could not be verified; pass --insecure" in one_line_error(refused)
    assert result.returncode == 0, result.stderr[-3000:]
    requests = read_run_requests(out)
    assert len(requests) > 10 and requests["ok"].all()
    assert read_json(out / "meta.json")["target"].startswith("grpcs://127.0.0.1:")
