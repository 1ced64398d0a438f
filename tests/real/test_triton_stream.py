"""``kserve_v2_grpc --stream`` against a real Triton's ``ModelStreamInfer``: a decoupled PyTriton
model answering each request several times (tests/real/server_triton_stream.py). Each answer is
timed into TTFT / ITL; a request Triton refuses inside the stream is a failure in its words.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import read_json, run_cli
from realserver import records
from server_triton_stream import ANSWERS, GAP_S, MODEL, StreamingTriton, streaming_triton

pytestmark = [pytest.mark.real, pytest.mark.real_heavy, pytest.mark.e2e]

LOAD = ("--users", "2", "--duration", "3s", "--warmup", "0s", "--no-sampler")
ROW = {"inputs": [{"name": "inputs", "shape": [1, 64], "datatype": "FP32", "data": [0.5] * 64}]}
WRONG_SHAPE = {"inputs": [{"name": "inputs", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StreamingTriton]:
    with streaming_triton(tmp_path_factory.mktemp("triton-stream")) as started:
        yield started


def stream_run(
    server: StreamingTriton, out: Path, payload: dict[str, object], *extra: str
) -> list[dict[str, str]]:
    args = ("--target", server.grpc, "--scenario", "kserve_v2_grpc", "--model", MODEL, "--stream")
    result = run_cli("run", *args, "--payload", json.dumps(payload), *LOAD, *extra, "--out", str(out))
    assert result.returncode in (0, 3), result.stderr[-3000:]
    return records(out)


def test_every_answer_of_a_decoupled_model_is_timed(server: StreamingTriton, tmp_path: Path) -> None:
    out = tmp_path / "run"
    rows = stream_run(server, out, ROW, "--extract", "outputs.0.data.0")
    assert rows and all(row["ok"] == "1" and row["status"] == "200" for row in rows), rows[:1]
    assert {row["name"] for row in rows} == {"/inference.GRPCInferenceService/ModelStreamInfer"}
    for row in rows:
        gaps = [float(g) for g in row["itl_ms"].split()]
        assert row["output_tokens"] == str(ANSWERS) and len(gaps) == ANSWERS - 1
        # The last answer leaves Triton after every gap the model slept.
        assert float(row["ttft_ms"]) + sum(gaps) >= (ANSWERS - 1) * GAP_S * 1000
        assert row["predicted"] == str(ANSWERS - 1)  # --extract outputs.0.data.0 of the last answer
    summary = read_json(out / "summary.json")
    assert summary["tokens"]["output_total"] == ANSWERS * summary["tokens"]["requests"] > 0


def test_a_request_triton_refuses_in_the_stream_is_a_failure_in_its_words(
    server: StreamingTriton, tmp_path: Path
) -> None:
    rows = stream_run(server, tmp_path / "run", WRONG_SHAPE, "--no-preflight")
    assert rows and all(row["ok"] == "0" and row["status"] == "200" for row in rows), rows[:1]
    words = rows[0]["server_message"]
    assert "unexpected shape for input 'inputs'" in words, rows[0]
    assert all(row["error"] == f"StreamErrorMessage: {words}" for row in rows)
