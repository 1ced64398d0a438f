"""Conformance against a real MLServer (`server_mlserver`): what loadbench discovers, the
zero-config command, accuracy under load against the model's offline answers, and what a bad
input shows; over HTTP, and over gRPC (the Open Inference Protocol on its gRPC port: discovery
through RepositoryIndex, the same labelled rows as over HTTP with no error and the same answers,
hence the same accuracy, and the server's own words when it refuses). One MLServer for the module
(it serves both; its start takes seconds); load runs in ``python -m loadbench`` child processes.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import read_json, run_cli
from server_mlserver import (
    RUN,
    Labelled,
    MLServer,
    assert_offline_accuracy,
    failed_with_servers_words,
    one_line_error,
    one_row_per_label,
    start_mlserver,
    v2_body,
    write_jsonl,
)

from loadbench.record.columnar import read_run_requests

pytestmark = [pytest.mark.real, pytest.mark.e2e]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLServer]:
    with start_mlserver(tmp_path_factory.mktemp("mlserver")) as started:
        yield started


@pytest.fixture(scope="module")
def labelled(server: MLServer) -> Labelled:
    return one_row_per_label(server.predictions)


def loadbench(server: MLServer, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("run", "--target", server.url, "--out", str(out), *RUN, *args)


@pytest.fixture(scope="module")
def labelled_run(
    server: MLServer, labelled: Labelled, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    """One run of the labelled rows as v2 infer bodies, the scenario chosen by probing: (run dir, stderr)."""
    tmp = tmp_path_factory.mktemp("labelled")
    data = write_jsonl(tmp / "digits-v2.jsonl", labelled.v2_bodies())
    result = loadbench(server, tmp / "run", "--data", str(data))
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp / "run", result.stderr


def test_zero_config_stops_before_the_load_and_names_what_to_pass(server: MLServer, tmp_path: Path) -> None:
    # MLServer's metadata for a model-settings.json without inputs lists none: no request can be
    # built, and sending an empty one would fail every request.
    result = loadbench(server, tmp_path / "run")
    line = one_line_error(result.stderr)
    assert result.returncode == 2
    assert "the metadata of model digits (GET /v2/models/digits) lists no inputs" in line
    assert "--payload" in line and "--data FILE.jsonl" in line
    assert not (tmp_path / "run").exists()


def test_labelled_data_under_load_has_the_offline_accuracy(
    labelled: Labelled, labelled_run: tuple[Path, str]
) -> None:
    assert_offline_accuracy(labelled_run[0], labelled, "/v2/models/digits/infer")


def test_discovery_says_what_the_server_serves(labelled_run: tuple[Path, str]) -> None:
    out, stderr = labelled_run
    probed = (
        "chosen by probing the target: GET /v2 answered Open Inference Protocol server metadata (mlserver)"
    )
    assert probed in stderr
    assert "loadbench: kserve_v2: model digits from POST /v2/repository/index (1 READY of 1 listed)" in stderr
    meta = read_json(out / "meta.json")
    assert meta["scenario"] == "kserve_v2" and meta["status"] == "complete"


def test_unknown_model_is_refused_with_the_servers_words(server: MLServer, tmp_path: Path) -> None:
    result = loadbench(server, tmp_path / "run", "--scenario", "kserve_v2", "--model", "nosuch")
    line = one_line_error(result.stderr)
    assert result.returncode == 2
    assert "/v2/models/nosuch gave no model metadata (HTTP 404): Model nosuch not found" in line
    assert "pass --model NAME" in line


@pytest.mark.parametrize("preflight", ["default", "--no-preflight"])
def test_wrong_feature_count_shows_the_servers_words(
    server: MLServer, labelled: Labelled, tmp_path: Path, preflight: str
) -> None:
    data = write_jsonl(tmp_path / "short.jsonl", [v2_body(row[:10]) for row in labelled.rows])
    args = ("--scenario", "kserve_v2", "--data", str(data), *([preflight] if preflight != "default" else []))
    result = loadbench(server, tmp_path / "run", *args)
    words = "X has 10 features, but StandardScaler is expecting 64 features as input."
    how = failed_with_servers_words(result.returncode, result.stderr, tmp_path / "run", words)
    if preflight == "--no-preflight":
        assert how == "every request failed"
        requests = read_run_requests(tmp_path / "run")
        assert (requests["status"] == 500).all()
        assert requests["server_message"].astype(str).str.contains(words, regex=False).all()


# --- the same server over gRPC ----------------------------------------------------------------

INFER = "/inference.GRPCInferenceService/ModelInfer"


def grpc_loadbench(server: MLServer, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("run", "--target", f"grpc://{server.grpc_target}", "--out", str(out), *RUN, *args)


def answers(out: Path) -> dict[str, str]:
    """Each label's row's answer in a run (every row answered the same way each time it was sent)."""
    requests = read_run_requests(out)
    pairs = set(zip(requests["expected"].astype(str), requests["predicted"].astype(str), strict=True))
    found = dict(pairs)
    assert len(found) == len(pairs), f"a row got two answers: {sorted(pairs)}"
    return found


def test_grpc_gets_the_http_runs_answers_and_accuracy_on_the_same_rows(
    server: MLServer, labelled: Labelled, labelled_run: tuple[Path, str], tmp_path: Path
) -> None:
    # The HTTP run: the labelled run above (the same rows as v2 infer bodies; kserve_v2, probed).
    http = labelled_run[0]
    data = write_jsonl(tmp_path / "digits-v2.jsonl", labelled.v2_bodies())
    grpc = grpc_loadbench(server, tmp_path / "grpc", "--data", str(data))  # probed
    assert grpc.returncode == 0, grpc.stderr[-3000:]
    assert "chosen by probing the target: a grpc:// target: ServerLive answered live=true" in grpc.stderr
    assert "kserve_v2_grpc: model digits from RepositoryIndex (1 READY of 1 listed)" in grpc.stderr
    # Zero errors, every answer the model's offline answer for its row, the accuracy those make.
    assert_offline_accuracy(tmp_path / "grpc", labelled, INFER)
    assert_offline_accuracy(http, labelled, "/v2/models/digits/infer")
    # Every row sent over both transports, answered alike: the same accuracy on the same rows.
    assert answers(tmp_path / "grpc") == answers(http) == labelled.offline
    accuracy = {
        transport: read_json(out / "summary.json")["quality"]["accuracy"]
        for transport, out in (("http", http), ("grpc", tmp_path / "grpc"))
    }
    per_row = sum(labelled.offline[str(y)] == str(y) for y in labelled.labels) / len(labelled.labels)
    assert 0 < per_row < 1
    for value in accuracy.values():  # each run sends the rows round-robin: at most one lap apart
        assert value == pytest.approx(per_row, abs=1 / len(labelled.labels))


def test_grpc_metadata_without_inputs_stops_the_zero_config_start(server: MLServer, tmp_path: Path) -> None:
    result = grpc_loadbench(server, tmp_path / "run")
    line = one_line_error(result.stderr)
    assert result.returncode == 2
    assert "the metadata of model digits (ModelMetadata) lists no inputs" in line
    assert "--payload" in line and "--data FILE.jsonl" in line
    assert not (tmp_path / "run").exists()


def test_grpc_unknown_model_is_refused_with_the_servers_words(server: MLServer, tmp_path: Path) -> None:
    result = grpc_loadbench(server, tmp_path / "run", "--model", "nosuch")
    line = one_line_error(result.stderr)
    assert result.returncode == 2
    assert f"model nosuch: grpc://{server.grpc_target} answered ModelMetadata with " in line
    assert "nosuch" in line.split("ModelMetadata with", 1)[1] and "pass --model NAME" in line


@pytest.mark.parametrize("preflight", ["default", "--no-preflight"])
def test_grpc_wrong_feature_count_shows_the_servers_words(
    server: MLServer, labelled: Labelled, tmp_path: Path, preflight: str
) -> None:
    data = write_jsonl(tmp_path / "short.jsonl", [v2_body(row[:10]) for row in labelled.rows])
    extra = [preflight] if preflight != "default" else []
    result = grpc_loadbench(server, tmp_path / "run", "--data", str(data), *extra)
    words = "X has 10 features, but StandardScaler is expecting 64 features as input."
    how = failed_with_servers_words(result.returncode, result.stderr, tmp_path / "run", words)
    if preflight == "default":
        # Every gRPC answer travels as HTTP 200: the refusal names the call's own gRPC status.
        first = result.stderr.splitlines()[0]
        assert re.search(r"ModelInfer -> [A-Z][A-Z_]+ in \d+ ms: ", first) and "-> OK" not in first, first
    if preflight == "--no-preflight":
        assert how == "every request failed"
        requests = read_run_requests(tmp_path / "run")
        assert (requests["status"] == 200).all()  # MLServer answered, with a gRPC error status
        assert requests["server_message"].astype(str).str.contains(words, regex=False).all()
        assert not requests["error"].str.startswith("UNAVAILABLE").any()
