"""End-to-end tests of the endpoint kinds: each scenario against its stand-in server
(`protocol_servers`), the probe choosing each kind, discovery failures, and ``--http2`` against a
real HTTP/2 server (hypercorn, h2c and TLS). Load runs in ``python -m loadbench`` child processes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO, read_json, run_cli
from protocol_servers import protocol_server

from loadbench.protocols import probe
from loadbench.record.columnar import read_run_requests

pytestmark = pytest.mark.e2e
# A saturated closed loop: where the users themselves are the subject (one HTTP/2 connection per
# user, GOAWAY after so many requests on one) or every record must fall in the measured window.
CLOSED = ("-u", "2", "-d", "1s", "--warmup", "0s", "--quiet", "--no-sampler")
# Elsewhere what each kind sends and records is the subject, not how fast: a steady 50 requests/s
# from two senders (open loop) instead of thousands a second, which cost the driver and the
# stand-in server (a thread of this process) a core each for nothing these tests check.
RUN = (*CLOSED, "--rate", "50", "--arrival", "constant", "--max-inflight", "2")
LOUD = tuple(arg for arg in RUN if arg != "--quiet")  # the start lines on stderr


def run_scenario(
    url: str, scenario: str, out: Path, *args: str, load: tuple[str, ...] = RUN
) -> subprocess.CompletedProcess[str]:
    return run_cli("run", "--target", url, "--scenario", scenario, "--out", str(out), *load, *args)


@dataclass
class SharedRun:
    """One `loadbench run` that several tests read (each asserts its own part): its result, its
    run directory and what the stand-in server saw."""

    result: subprocess.CompletedProcess[str]
    out: Path
    state: dict[str, Any]


def assert_all_ok(out: Path, name: str) -> Any:
    requests = read_run_requests(out)
    assert len(requests) > 10
    assert requests["ok"].all(), requests.loc[requests["ok"] == 0, "error"].unique()
    assert set(requests["name"]) == {name}
    assert (requests["status"] == 200).all()
    return requests


def posts(state: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(path, json.loads(body)) for method, path, body in state["seen"] if method == "POST"]


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("loadbench: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


# --- each scenario against its server --------------------------------------------------------


@pytest.fixture(scope="module")
def tfserving_run(tmp_path_factory: pytest.TempPathFactory) -> SharedRun:
    """Rows of each form, with the start line on (test_tfserving_says_what_its_signature_takes)."""
    tmp = tmp_path_factory.mktemp("tfserving")
    data = tmp / "rows.jsonl"
    data.write_text('1.0\n{"instances": [2.0, 5.0]}\n{"inputs": [4.0]}\n', encoding="utf-8")
    with protocol_server("tfserving") as (url, state):
        result = run_cli(
            "run", "--target", url, "--scenario", "tfserving", "--out", str(tmp / "run"), *LOUD,
            "--model", "half_plus_two", "--data", str(data),
        )  # fmt: skip
    return SharedRun(result, tmp / "run", state)


def test_tfserving(tfserving_run: SharedRun) -> None:
    result, state = tfserving_run.result, tfserving_run.state
    assert result.returncode == 0, result.stderr
    assert_all_ok(tfserving_run.out, "/v1/models/half_plus_two:predict")
    assert ("GET", "/v1/models/half_plus_two", b"") in state["seen"]  # the model's status, checked first
    sent = posts(state)
    assert {p for p, _ in sent} == {"/v1/models/half_plus_two:predict"}
    assert {"instances": [1.0]} in [b for _, b in sent]  # a bare row is one instance
    assert {"instances": [2.0, 5.0]} in [b for _, b in sent]  # a full body is sent as it is
    assert {"inputs": [4.0]} in [b for _, b in sent]  # columnar: the answer holds "outputs"


def test_kserve_v1_discovers_its_model(labelled_run: Callable[[str], SharedRun]) -> None:
    # The labelled kserve_v1 run names no --model either. (A bare --payload row wrapped into
    # "instances": test_http2_sends_over_h2c_with_the_same_records.)
    run = labelled_run("kserve_v1")
    assert run.result.returncode == 0, run.result.stderr
    assert_all_ok(run.out, "/v1/models/sklearn-iris:predict")
    assert {b["instances"][0][0] for _, b in posts(run.state)} == {5.1, 6.3, 5.9}


IMAGE = b"\xff\xd8\xff\xe0 not really a jpeg \x00\x01"


@pytest.fixture(scope="module")
def torchserve_bytes(tmp_path_factory: pytest.TempPathFactory) -> SharedRun:
    """A file's bytes as the body, --model on an inference port with no management API beside it
    (test_torchserve_json_and_bytes, and the "guessed" run of the management test)."""
    tmp = tmp_path_factory.mktemp("torchserve")
    image = tmp / "kitten.jpg"
    image.write_bytes(IMAGE)
    with protocol_server("torchserve_inference") as (url, state):
        result = run_scenario(url, "torchserve", tmp / "run", "--model", "resnet-18", "--data", str(image))
    return SharedRun(result, tmp / "run", state)


def test_torchserve_json_and_bytes(
    torchserve_bytes: SharedRun, labelled_run: Callable[[str], SharedRun]
) -> None:
    # JSON rows: the labelled torchserve run (no --scenario: the probe picked TorchServe).
    result, as_json = torchserve_bytes.result, labelled_run("torchserve")
    assert result.returncode == 0, result.stderr
    assert as_json.result.returncode == 0, as_json.result.stderr
    assert result.stderr == "" and as_json.result.stderr == ""  # --quiet: no start line
    assert_all_ok(torchserve_bytes.out, "/predictions/resnet-18")
    assert_all_ok(as_json.out, "/predictions/resnet-18")
    bodies = [body for method, path, body in torchserve_bytes.state["seen"] if method == "POST"]
    assert set(bodies) == {IMAGE}
    assert {"image": "a"} in [body for _, body in posts(as_json.state)]
    assert ("GET", "/models", b"") in as_json.state["seen"]  # discovered through the management API


# Labelled rows for each kind: (the row, what the stand-in server answers for it at the path).
# tfserving: half_plus_two answers x / 2 + 2, under "predictions" ("outputs" for "inputs");
# kserve_v1: 1 for every instance; torchserve: {"tabby": 0.41, "tiger_cat": 0.35}.
LABELLED = {
    "tfserving": (
        ("--model", "half_plus_two"),
        [
            ({"instances": [2.0], "_expected": 3}, "3"),  # right
            ({"instances": [4.0], "_expected": 5}, "4"),  # wrong
            ({"inputs": [8.0], "_expected": 6.0}, "6"),  # right, from "outputs" (the default path)
        ],
    ),
    "kserve_v1": (
        ("--extract", "predictions.0"),
        [
            ({"instances": [[5.1, 3.5, 1.4, 0.2]], "_expected": 1}, "1"),  # right
            ({"instances": [[6.3, 3.3, 6.0, 2.5]], "_expected": "2"}, "1"),  # wrong
            ({"instances": [[5.9, 3.0, 5.1, 1.8]], "_expected": "x"}, "1"),  # wrong
        ],
    ),
    "torchserve": (
        ("--extract", "tabby"),
        [
            ({"image": "a", "_expected": 0.41}, "0.41"),  # right
            ({"image": "b", "_expected": "tiger_cat"}, "0.41"),  # wrong
        ],
    ),
}


@pytest.fixture(scope="module")
def labelled_run(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], SharedRun]:
    """Each kind's labelled run, done once on first use: other tests read them too."""
    runs: dict[str, SharedRun] = {}

    def get(kind: str) -> SharedRun:
        if kind not in runs:
            args, rows = LABELLED[kind]
            tmp = tmp_path_factory.mktemp(f"labelled-{kind}")
            data = tmp / "rows.jsonl"
            data.write_text("".join(json.dumps(row) + "\n" for row, _ in rows), encoding="utf-8")
            # No --scenario for torchserve: test_run_without_scenario_probes_torchserve reads it.
            scenario = () if kind == "torchserve" else ("--scenario", kind)
            # The closed loop: the quality counts the measured window, which then holds every record.
            # Paced (5 ms an answer): hundreds of requests from the two users, not thousands.
            with protocol_server(kind, pace_ms=5) as (url, state):
                result = run_cli(
                    "run", "--target", url, *scenario, "--out", str(tmp / "run"), *CLOSED, *args,
                    "--data", str(data),
                )  # fmt: skip
            runs[kind] = SharedRun(result, tmp / "run", state)
        return runs[kind]

    return get


@pytest.mark.parametrize("kind", sorted(LABELLED))
def test_labelled_payloads_give_quality(labelled_run: Callable[[str], SharedRun], kind: str) -> None:
    _, rows = LABELLED[kind]
    run = labelled_run(kind)
    result, state = run.result, run.state
    assert result.returncode == 0, result.stderr
    requests = read_run_requests(run.out)
    assert len(requests) > 10 and requests["ok"].all()
    answers = {str(row["_expected"]).removesuffix(".0"): answer for row, answer in rows}
    # The reader types an all-numeric column as numbers: compare as text.
    expected, predicted = requests["expected"].astype(str), requests["predicted"].astype(str)
    assert set(expected) == set(answers)  # every row's label, as text
    assert (predicted == expected.map(answers)).all()
    assert all("_expected" not in body for _, body in posts(state))  # metadata is never sent
    # The known accuracy: the share of the records whose row is answered right.
    right = {label for label, answer in answers.items() if label == answer}
    counts = expected.value_counts()
    n = len(requests)
    quality = read_json(run.out / "summary.json")["quality"]
    assert quality["n"] == n and quality["answered"] == n
    assert quality["accuracy"] == round(sum(counts[label] for label in right) / n, 4)
    assert 0 < quality["accuracy"] < 1


def test_bad_media_duration_in_a_labelled_row_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "rows.jsonl"
    data.write_text('{"instances": [1.0]}\n{"instances": [2.0], "_media_s": -1}\n', encoding="utf-8")
    with protocol_server("kserve_v1") as (url, state):
        result = run_scenario(url, "kserve_v1", tmp_path / "run", "--data", str(data))
    assert_one_line_error(result, "payload 2: _media_s must be a positive number")
    assert posts(state) == []


def test_embeddings_records_usage_tokens(tmp_path: Path) -> None:
    with protocol_server("embeddings") as (url, state):
        result = run_scenario(url, "embeddings", tmp_path / "run", "--input", "one two three four")
    assert result.returncode == 0, result.stderr
    requests = assert_all_ok(tmp_path / "run", "/v1/embeddings")
    assert (requests["input_tokens"] == 4).all()
    # The count is of the input: its source says so (tokens_source is the output counts').
    assert set(requests["input_tokens_source"].astype(str)) == {"usage"}
    assert set(requests["tokens_source"].astype(str)) == {""}
    assert {json.dumps(b, sort_keys=True) for _, b in posts(state)} == {
        json.dumps({"input": "one two three four", "model": "e5-small"}, sort_keys=True)
    }


def test_embeddings_that_are_not_floats_fail(tmp_path: Path) -> None:
    with protocol_server("bad_embeddings") as (url, _):
        # --no-preflight: the preflight request would stop it before the load (exit 2).
        result = run_scenario(url, "embeddings", tmp_path / "run", "--no-preflight")
    assert result.returncode == 3, result.stderr  # the target failed every request
    requests = read_run_requests(tmp_path / "run")
    assert len(requests) > 0 and not requests["ok"].any()
    assert set(requests["error"].astype(str)) == {
        "CatchResponseError: invalid response: data[0].embedding is not a non-empty list"
    }


def test_json_template_fills_and_extracts(tmp_path: Path) -> None:
    data = tmp_path / "rows.jsonl"
    rows = [
        {"text": 'say "hi"\\ 7', "n": 2, "_expected": "7"},
        {"text": "line\nbreak 3", "n": [1], "_expected": "4"},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    template = '{"inputs": "{{text}}", "params": {"n": "{{n}}", "note": "n={{n}}"}}'
    with protocol_server("json_template") as (url, state):
        result = run_scenario(
            url, "json_template", tmp_path / "run", "--path", "/generate", "--data", str(data),
            "--template", template, "--extract", "predictions.0.label",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    requests = assert_all_ok(tmp_path / "run", "POST /generate")
    sent = [b for _, b in posts(state)]
    assert {"inputs": 'say "hi"\\ 7', "params": {"n": 2, "note": "n=2"}} in sent
    assert {"inputs": "line\nbreak 3", "params": {"n": [1], "note": "n=[1]"}} in sent
    assert all("_expected" not in b for b in sent)
    pairs = set(zip(requests["expected"].astype(str), requests["predicted"].astype(str), strict=True))
    assert pairs == {("7", "7"), ("4", "3")}


# --- discovery per server: what it finds, said in one line at start --------------------------


def start_line(result: subprocess.CompletedProcess[str], scenario: str) -> str:
    """The scenario's one line at start (stderr), after the driver's own two."""
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith(f"loadbench: {scenario}: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_kserve_v2_triton_index_picks_a_ready_model_and_fills_its_inputs(tmp_path: Path) -> None:
    with protocol_server("triton") as (url, state):
        result = run_cli("run", "--target", url, "--out", str(tmp_path / "run"), *LOUD, "--batch", "2")
    line = start_line(result, "kserve_v2")
    assert "model simple from POST /v2/repository/index (1 READY of 2 listed)" in line
    assert "random INPUT0 INT32 [2, 16], INPUT1 FP32 [2, 4] from GET /v2/models/simple" in line
    assert_all_ok(tmp_path / "run", "/v2/models/simple/infer")  # the stand-in checks every tensor
    assert {p for p, _ in posts(state)} == {"/v2/repository/index", "/v2/models/simple/infer"}


def test_kserve_v2_restricted_index_says_so_and_takes_model(tmp_path: Path) -> None:
    with protocol_server("pytriton") as (url, _):
        refused = run_scenario(url, "kserve_v2", tmp_path / "refused")
        result = run_cli(
            "run", "--target", url, "--scenario", "kserve_v2", "--out", str(tmp_path / "run"), *LOUD,
            "--model", "add",
        )  # fmt: skip
    assert_one_line_error(
        refused,
        "POST /v2/repository/index is restricted (HTTP 403: This API is restricted, expecting header "
        "'triton-access-token'); pass --model NAME, or give the index its token with "
        "--header 'triton-access-token: TOKEN'",
    )
    assert "model add (--model); random a FP32 [1, 1] from GET /v2/models/add" in start_line(
        result, "kserve_v2"
    )
    assert_all_ok(tmp_path / "run", "/v2/models/add/infer")


def test_kserve_v2_metadata_without_inputs_stops_at_start(tmp_path: Path) -> None:
    payload = '{"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}'
    with protocol_server("mlserver") as (url, state):
        refused = run_scenario(url, "kserve_v2", tmp_path / "refused")
        refused_posts = posts(state)
        result = run_scenario(url, "kserve_v2", tmp_path / "run", "--payload", payload)
    assert_one_line_error(
        refused,
        "the metadata of model iris (GET /v2/models/iris) lists no inputs",
        """pass --payload '{"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32\"""",
        "or --data FILE.jsonl",
    )
    assert refused_posts == [("/v2/repository/index", {})]  # no infer request was sent
    assert result.returncode == 0, result.stderr
    assert_all_ok(tmp_path / "run", "/v2/models/iris/infer")


def test_torchserve_management_api_on_its_own_port(tmp_path: Path, torchserve_bytes: SharedRun) -> None:
    with (
        protocol_server("torchserve_inference") as (url, _),
        protocol_server("torchserve_management") as (management, seen),
    ):
        result = run_cli(
            "run", "--target", url, "--scenario", "torchserve", "--out", str(tmp_path / "run"), *LOUD,
            "--management", management, "--payload", "{}",
        )  # fmt: skip
    line = start_line(result, "torchserve")
    assert f"model resnet-18 from {management}/models (1 listed)" in line
    assert "workers 1/2 READY (min 2, max 4), batchSize 8, maxBatchDelay 50 ms" in line
    assert_all_ok(tmp_path / "run", "/predictions/resnet-18")
    assert ("GET", "/models/resnet-18", b"") in seen["seen"]
    # --model, no --management: no management API is only a note (test_torchserve_json_and_bytes's run).
    guessed = torchserve_bytes.result
    assert guessed.returncode == 0, guessed.stderr
    assert_all_ok(torchserve_bytes.out, "/predictions/resnet-18")
    # What discovery found is kept in meta.json, --quiet or not.
    assert read_json(tmp_path / "run" / "meta.json")["discovery"] == line.removeprefix("loadbench: ")
    quiet = read_json(torchserve_bytes.out / "meta.json")["discovery"]
    assert quiet.startswith("torchserve: model resnet-18 (--model); no TorchServe management API at "), quiet


def test_tfserving_says_what_its_signature_takes(tmp_path: Path, tfserving_run: SharedRun) -> None:
    with protocol_server("tfserving") as (url, _):
        refused = run_scenario(url, "tfserving", tmp_path / "refused", "--model", "half_plus_two")
    assert_one_line_error(
        refused,
        "model half_plus_two's signature serving_default takes x DT_FLOAT [-1]",
        """pass --payload '{"instances": [0]}' or --data FILE.jsonl""",
    )
    # Said the same with a body given: test_tfserving's run (--data) has it.
    line = start_line(tfserving_run.result, "tfserving")
    assert line == (
        "loadbench: tfserving: model half_plus_two (version 1 AVAILABLE); "
        "signature serving_default takes x DT_FLOAT [-1]"
    )


# --- discovery failures: exit 2, one line ----------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "scenario", "args", "fragments"),
    [
        ("tfserving", "tfserving", ("--payload", "1"), ("does not list its models", "pass --model")),
        ("tfserving", "tfserving", ("--model", "nope", "--payload", "1"), ("Could not find any versions", "pass --model")),
        ("torchserve_no_list", "torchserve", ("--payload", "{}"), ("no TorchServe model list", "pass --management URL", "or --model NAME")),
        ("torchserve", "torchserve", (), ("model resnet-18 from", "TorchServe cannot say what its handler takes", "pass --payload JSON, --data FILE.jsonl")),
        ("torchserve", "kserve_v1", ("--payload", "1"), ("listed no KServe v1 model", "pass --model")),
        ("json_template", "json_template", ("--payload", "{}"), ("--template",)),
    ],
)  # fmt: skip
def test_discovery_failures_are_one_line(
    tmp_path: Path, kind: str, scenario: str, args: tuple[str, ...], fragments: tuple[str, ...]
) -> None:
    with protocol_server(kind) as (url, _):
        result = run_scenario(url, scenario, tmp_path / "run", *args)
    assert_one_line_error(result, *fragments)


# --- the probe picks each kind ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "model", "scenario", "found"),
    [
        ("kserve_v1", None, "kserve_v1", "sklearn-iris"),
        ("torchserve", None, "torchserve", None),
        ("tfserving", "half_plus_two", "tfserving", "half_plus_two"),
        ("tfserving", None, "tfserving", None),
        ("embeddings", None, "openai_chat", "e5-small"),  # embeddings look like chat: --scenario decides
        ("json_template", None, "json_post", None),
    ],
)
def test_probe_picks_each_kind(kind: str, model: str | None, scenario: str, found: str | None) -> None:
    with protocol_server(kind) as (url, _):
        result = probe.probe_target(url, model=model)
    assert result.scenario == scenario, result.reason
    assert result.model == found


def test_run_without_scenario_probes_torchserve(labelled_run: Callable[[str], SharedRun]) -> None:
    run = labelled_run("torchserve")  # run with no --scenario
    result, out = run.result, run.out
    assert result.returncode == 0, result.stderr
    meta = read_json(out / "meta.json")
    assert meta["scenario"] == "torchserve"
    assert "TorchServe" in meta["scenario_reason"]
    assert meta["network"]["samples"] > 0 and meta["network"]["rtt_ms_min"] > 0
    summary = read_json(out / "summary.json")
    breakdown = summary["latency_breakdown"]
    assert breakdown["network_rtt_ms"] == meta["network"]["rtt_ms_median"]
    assert breakdown["server_ms_p50"] == pytest.approx(
        summary["service_time_ms"]["p50"] - breakdown["network_rtt_ms"], abs=0.002
    )


# --- HTTP/2 ----------------------------------------------------------------------------------


@contextmanager
def h2_server(log: Path, tls: tuple[Path, Path] | None = None) -> Iterator[str]:
    """tests/h2_server.py (hypercorn) as a child process; yields its URL."""
    extra = ["--tls", str(tls[0]), str(tls[1])] if tls else []
    process = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "h2_server.py"), str(log), *extra],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        process.terminate()
        process.communicate(timeout=10)


def h2_log(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


PHASES_SCENARIO = """
import json, os
from locust import events
from scenarios.json_post import *  # noqa: F403 (the json_post scenario, plus a listener)

@events.request.add_listener
def _phases(context, **_):
    with open(os.environ["PHASES_LOG"], "a") as out:
        out.write(json.dumps(context.get("loadbench")) + "\\n")
"""


def test_http2_sends_over_h2c_with_the_same_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log, phases = tmp_path / "server.jsonl", tmp_path / "phases.jsonl"
    scenario = tmp_path / "json_post_phases.py"
    scenario.write_text(PHASES_SCENARIO, encoding="utf-8")
    monkeypatch.setenv("PHASES_LOG", str(phases))
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    with h2_server(log) as url:
        result = run_scenario(
            url, str(scenario), tmp_path / "run", "--http2", "--payload", '{"x": [1, 2]}', load=CLOSED
        )
        v1 = run_scenario(url, "kserve_v1", tmp_path / "v1", "--http2", "--payload", "[3]")
    assert result.returncode == 0, result.stderr
    assert v1.returncode == 0, v1.stderr
    requests = assert_all_ok(tmp_path / "run", "POST /predict")
    assert (requests["response_bytes"] == len('{"predictions": [12]}')).all()
    assert_all_ok(tmp_path / "v1", "/v1/models/m:predict")
    seen = [r for r in h2_log(log) if r["method"] == "POST"]
    assert len(seen) >= len(requests)
    assert {r["http_version"] for r in seen} == {"2"}  # every load request went over HTTP/2
    assert {r["body"] for r in seen if r["path"] == "/predict"} == {'{"x": [1, 2]}'}
    # A bare --payload row is one of the "instances".
    v1_bodies = [json.loads(r["body"]) for r in seen if r["path"] == "/v1/models/m:predict"]
    assert v1_bodies and all(body == {"instances": [[3]]} for body in v1_bodies)
    # Per-request phases from httpx's trace: a new connection per user, then reuse.
    timings = [json.loads(line) for line in phases.read_text().splitlines()]
    assert len(timings) == len(requests)
    assert all({"connect_ms", "ttfb_ms", "download_ms"} <= set(t) for t in timings)
    assert sum(1 for t in timings if t["connect_ms"] > 0) == 2  # two users, one connection each
    latency = dict(zip(requests["start_unix_s"], requests["latency_ms"], strict=True))
    assert all(0 < t["ttfb_ms"] <= max(latency.values()) for t in timings)


def test_http2_over_tls_negotiates_h2(tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    from tls import self_signed_cert

    cert, key = self_signed_cert(openssl, tmp_path)
    log = tmp_path / "server.jsonl"
    with h2_server(log, (cert, key)) as url:
        assert url.startswith("https://")
        result = run_scenario(url, "json_post", tmp_path / "run", "--http2", "--insecure", "--payload", "{}")
    assert result.returncode == 0, result.stderr
    assert_all_ok(tmp_path / "run", "POST /predict")
    assert {r["http_version"] for r in h2_log(log) if r["method"] == "POST"} == {"2"}


def test_http2_against_an_http1_server_stops_before_the_load(tmp_path: Path) -> None:
    # The reachability check speaks HTTP/2 too: an HTTP/1.1-only server is refused in one line.
    with protocol_server("json_template") as (url, state):
        result = run_scenario(
            url, "json_post", tmp_path / "run", "--http2", "--path", "/generate", "--payload", "{}"
        )
    assert_one_line_error(result, "does not speak HTTP/2", "drop --http2")
    assert not (tmp_path / "run").exists()
    assert state["seen"] == []


# Run in a child process: loadbench.scenario.http2 imports Locust, whose gevent monkey-patching
# must not reach this pytest worker (a worker patched so hangs in a later test's grpc threads).
GOAWAY_CHECK = r"""
from typing import Any

import h2.events
import httpx

from loadbench.scenario.http2 import Http2Session, unprocessed


def goaway(last_stream_id: int) -> Any:
    event = h2.events.ConnectionTerminated()
    event.error_code, event.last_stream_id = 0, last_stream_id
    return event


assert unprocessed(goaway(5), 7) and unprocessed(goaway(5), None)
assert not unprocessed(goaway(5), 5) and not unprocessed(goaway(5), 3)
calls: list[int] = []


def answer(request: httpx.Request) -> httpx.Response:
    calls.append(1)
    if len(calls) == 1:  # its headers never went out (no stream id): not processed
        raise httpx.RemoteProtocolError(goaway(5))
    return httpx.Response(200, json={"ok": True})


fired: list[dict[str, Any]] = []


class Event:
    def fire(self, **meta: Any) -> None:
        fired.append(meta)


session = Http2Session("http://h2.test", Event())
session.client = httpx.Client(base_url="http://h2.test", transport=httpx.MockTransport(answer))
assert session.post("/predict", json={}).status_code == 200
assert len(calls) == 2 and len(fired) == 1 and fired[0]["exception"] is None, (calls, fired)
print("ok")
"""


def test_http2_resends_a_request_a_goaway_left_unprocessed_once() -> None:
    result = subprocess.run([sys.executable, "-c", GOAWAY_CHECK], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_http2_goaway_on_a_processed_stream_is_a_closed_connection(tmp_path: Path) -> None:
    log = tmp_path / "server.jsonl"
    process = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "h2_server.py"), str(log), "--max-requests", "20"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        result = run_scenario(url, "json_post", tmp_path / "run", "--http2", "--payload", "{}", load=CLOSED)
    finally:
        process.terminate()
        process.communicate(timeout=10)
    assert result.returncode == 0, result.stderr
    requests = read_run_requests(tmp_path / "run")
    assert len(requests) > 50  # several connections' worth: GOAWAY after every 21st request
    failed = requests.loc[requests["ok"] == 0, "error"]
    # hypercorn names the request in flight as processed (it ran it) and never answers it.
    assert len(failed) >= 1
    assert all(e.startswith("GoawayConnectionClosedError: the server ended the connection") for e in failed)
    assert not any("RemoteProtocolError" in e for e in failed)


def test_http2_follows_redirects_only_when_asked_and_keeps_no_body_over_max_body(tmp_path: Path) -> None:
    # The --http2 client (httpx) under the same rules as the fast one: a 307 is an answer unless
    # --follow-redirects, each hop counted; a body over --max-body is counted, never parsed.
    from h2_server import BIG_BYTES

    log = tmp_path / "server.jsonl"
    with h2_server(log) as url:
        common = ("--http2", "--payload", "{}", "--no-preflight")
        refused = run_scenario(
            url, "json_post", tmp_path / "no", *common, "--path", "/redirect", "--keep-going"
        )
        # Closed loop: the summary's count (the measured window) is compared with every record.
        followed = run_scenario(
            url, "json_post", tmp_path / "yes", *common, "--path", "/redirect", "--follow-redirects",
            load=CLOSED,
        )  # fmt: skip
        big = run_scenario(
            url,
            "json_post",
            tmp_path / "big",
            *common,
            "--path",
            "/big",
            "--max-body",
            "1MiB",
            "--keep-going",
            # A few 3 MiB answers show it: each costs both ends real CPU, so fewer than RUN's.
            load=(*CLOSED, "--rate", "10", "--arrival", "constant", "--max-inflight", "2"),
        )
    assert refused.returncode == 3, refused.stderr
    records = read_run_requests(tmp_path / "no")
    assert len(records) >= 1 and (records["status"] == 307).all()
    assert (
        records["error"] == "RedirectError: HTTP 307 redirect to /predict (pass --follow-redirects)"
    ).all()
    assert followed.returncode == 0, followed.stderr
    records = assert_all_ok(tmp_path / "yes", "POST /redirect")
    assert (records["redirects"] == 1).all()
    assert read_json(tmp_path / "yes" / "summary.json")["requests"]["redirects"] == len(records)
    seen = [r["path"] for r in h2_log(log) if r["method"] == "POST"]
    assert seen.count("/predict") >= len(records)  # each hop really went out
    assert big.returncode == 3, big.stderr
    records = read_run_requests(tmp_path / "big")
    assert len(records) >= 1 and (records["response_bytes"] == BIG_BYTES).all()
    assert records["error"].str.startswith("CatchResponseError: body over --max-body").all()
