"""Triton conformance: loadbench against a real Triton 2.51 run by PyTriton 0.7 (tests/real/server_triton.py).

One server per module: a numpy digits classifier bound as ``digits`` (input ``inputs`` FP32
``[-1, 64]``), HTTP, gRPC and metrics on free ports of 127.0.0.1, the model-repository API
(the index) restricted to a header token, as PyTriton does by default. Each test runs the real
`loadbench` command.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import DIGITS, read_json, run_cli
from realserver import only_error_line, records
from server_triton import TritonServer, triton

# nvidia-pytriton ships the whole Triton server: the matrix (`make test-real`) runs it, `make test` does not.
pytestmark = [pytest.mark.real, pytest.mark.real_heavy]

LOAD = ("--users", "2", "--duration", "3s", "--warmup", "0s")
RESTRICTED = "This API is restricted, expecting header 'triton-access-token'"
SHAPE_WORDS = "unexpected shape for input 'inputs' for model 'digits'. Expected [-1,64], got [1,3]"
WRONG_SHAPE = json.dumps(
    {"inputs": [{"name": "inputs", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    with triton(tmp_path_factory.mktemp("triton"), DIGITS) as started:
        yield started


def labelled_rows(server: TritonServer, path: Path) -> Path:
    """The ten offline-predicted rows as infer bodies (FP32 ``[1, 64]``), labelled, one a line."""
    bodies = [
        {"inputs": [{"name": "inputs", "shape": [1, 64], "datatype": "FP32", "data": row["inputs"]}]}
        | {"_expected": row["label"]}
        for row in server.offline["rows"]
    ]
    path.write_text("".join(json.dumps(body) + "\n" for body in bodies))
    return path


def all_ok(out: Path) -> list[dict[str, str]]:
    rows = records(out)
    assert rows and all(row["ok"] == "1" and row["status"] == "200" for row in rows), rows[:1]
    assert {row["name"] for row in rows} == {"/v2/models/digits/infer"}
    return rows


def test_zero_config_stops_quoting_the_restricted_index(server: TritonServer, tmp_path: Path) -> None:
    out = tmp_path / "run"
    line = only_error_line(run_cli("run", "--target", server.url, *LOAD, "--out", str(out)))
    assert f"POST /v2/repository/index is restricted (HTTP 403: {RESTRICTED})" in line
    assert "pass --model NAME, or give the index its token with --header 'triton-access-token: TOKEN'" in line
    assert not out.exists()


def test_with_its_token_pytritons_index_lists_no_model(server: TritonServer, tmp_path: Path) -> None:
    # PyTriton loads its models through the repository API, not from the repository's folder,
    # so the index it answers with the token is an empty list: only --model helps.
    out = tmp_path / "run"
    header = f"triton-access-token: {server.token}"
    result = run_cli("run", "--target", server.url, "--header", header, *LOAD, "--out", str(out))
    line = only_error_line(result)
    assert line.endswith(f"{server.url}: POST /v2/repository/index lists no model; pass --model NAME")
    assert not out.exists()


@pytest.mark.e2e
def test_the_model_named_its_metadata_fills_the_inputs_and_the_token_stays_secret(
    server: TritonServer, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    header = f"triton-access-token: {server.token}"
    args = ("--model", "digits", "--header", header, *LOAD, "--out", str(out))
    result = run_cli("run", "--target", server.url, *args)
    assert result.returncode == 0, result.stderr
    said = (
        "kserve_v2: model digits (--model); random inputs FP32 [1, 64] from GET /v2/models/digits "
        "(--payload or --data for real inputs)"
    )
    assert read_json(out / "meta.json")["discovery"] == said
    assert f"loadbench: {said}\n" in result.stderr
    all_ok(out)
    assert server.token not in result.stderr + result.stdout
    assert not [path.name for path in out.iterdir() if server.token.encode() in path.read_bytes()]


@pytest.mark.e2e
def test_the_batch_dimension_takes_batch(server: TritonServer, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run_cli(
        "run", "--target", server.url, "--model", "digits", "--batch", "4", *LOAD, "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert (
        "random inputs FP32 [4, 64] from GET /v2/models/digits" in read_json(out / "meta.json")["discovery"]
    )
    all_ok(out)


@pytest.mark.e2e
def test_labelled_rows_under_load_get_their_offline_predictions(server: TritonServer, tmp_path: Path) -> None:
    data = labelled_rows(server, tmp_path / "digits10.jsonl")
    out = tmp_path / "run"
    result = run_cli(
        "run", "--target", server.url, "--model", "digits", "--data", str(data), *LOAD, "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    rows = all_ok(out)
    # One row per digit, so a row's label names it; half are rows the model gets wrong offline.
    offline = {str(row["label"]): str(row["predicted"]) for row in server.offline["rows"]}
    assert len(offline) == 10 and server.offline["accuracy"] == 0.5
    assert all(row["predicted"] == offline[row["expected"]] for row in rows)
    summary = read_json(out / "summary.json")
    quality: dict[str, Any] = summary["quality"]
    right = sum(offline[row["expected"]] == row["expected"] for row in rows)
    assert (quality["n"], quality["answered"], quality["correct"]) == (len(rows), len(rows), right)
    assert summary["errors"] == []


def test_an_unknown_model_stops_with_tritons_words(server: TritonServer, tmp_path: Path) -> None:
    out = tmp_path / "run"
    line = only_error_line(
        run_cli("run", "--target", server.url, "--model", "nosuch", *LOAD, "--out", str(out))
    )
    assert (
        "/v2/models/nosuch gave no model metadata (HTTP 404): Request for unknown model: 'nosuch' is not found"
        in line
    )
    assert not out.exists()


@pytest.mark.e2e
def test_a_wrong_shape_is_refused_in_tritons_words(server: TritonServer, tmp_path: Path) -> None:
    args = ("--model", "digits", "--payload", WRONG_SHAPE, *LOAD)
    refused = run_cli("run", "--target", server.url, *args, "--out", str(tmp_path / "refused"))
    assert refused.returncode == 2, refused.stderr
    assert "POST /v2/models/digits/infer -> 400 in " in refused.stderr and SHAPE_WORDS in refused.stderr
    assert not (tmp_path / "refused").exists()
    # Past the preflight, every request fails with the same words, in requests.csv and the summary.
    out = tmp_path / "run"
    loaded = run_cli("run", "--target", server.url, *args, "--no-preflight", "--out", str(out))
    assert loaded.returncode == 3, loaded.stderr
    rows = records(out)
    assert rows and all(row["ok"] == "0" and row["status"] == "400" for row in rows)
    assert all(SHAPE_WORDS in row["server_message"] for row in rows), rows[0]["server_message"]
    errors = read_json(out / "summary.json")["errors"]
    assert [e["kind"] for e in errors] == ["HTTP 400"] and SHAPE_WORDS in errors[0]["server_message"]


# --- the same server over gRPC: GRPCInferenceService on its gRPC port -------------------------

GRPC_RESTRICTED = "This protocol is restricted, expecting header 'triton-grpc-protocol-triton-access-token'"


def grpc_url(server: TritonServer) -> str:
    return f"grpc://127.0.0.1:{server.grpc_port}"


def test_grpc_zero_config_quotes_the_restricted_index_and_names_its_header(
    server: TritonServer, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    line = only_error_line(run_cli("run", "--target", grpc_url(server), *LOAD, "--out", str(out)))
    assert f"refused RepositoryIndex (UNAVAILABLE: {GRPC_RESTRICTED})" in line
    hint = "pass --model NAME, or give the index its token with --header 'triton-grpc-protocol-triton-access-token: TOKEN'"
    assert line.endswith(hint)
    assert not out.exists()
    # The header named works: the index answers, and is as empty as over HTTP (PyTriton lists
    # no model there), so --model it is.
    header = f"triton-grpc-protocol-triton-access-token: {server.token}"
    result = run_cli("run", "--target", grpc_url(server), "--header", header, *LOAD, "--out", str(out))
    line = only_error_line(result)
    assert GRPC_RESTRICTED not in line and "pass --model NAME" in line
    assert server.token not in result.stderr + result.stdout


@pytest.mark.e2e
def test_grpc_labelled_rows_get_their_offline_predictions_and_the_batch_dimension(
    server: TritonServer, tmp_path: Path
) -> None:
    data = labelled_rows(server, tmp_path / "digits10.jsonl")
    out = tmp_path / "run"
    args = ("--model", "digits", "--data", str(data), *LOAD, "--out", str(out))
    result = run_cli("run", "--target", grpc_url(server), *args)
    assert result.returncode == 0, result.stderr
    meta = read_json(out / "meta.json")
    assert meta["scenario"] == "kserve_v2_grpc"  # chosen by probing the grpc:// target
    rows = records(out)
    assert rows and all(row["ok"] == "1" and row["status"] == "200" for row in rows), rows[:1]
    assert {row["name"] for row in rows} == {"/inference.GRPCInferenceService/ModelInfer"}
    offline = {str(row["label"]): str(row["predicted"]) for row in server.offline["rows"]}
    assert all(row["predicted"] == offline[row["expected"]] for row in rows)
    quality = read_json(out / "summary.json")["quality"]
    right = sum(offline[row["expected"]] == row["expected"] for row in rows)
    assert (quality["n"], quality["correct"]) == (len(rows), right)
    # Synthetic inputs from ModelMetadata, the -1 batch dimension taken from --batch.
    batched = tmp_path / "batched"
    args = ("--model", "digits", "--batch", "4", *LOAD, "--out", str(batched))
    result = run_cli("run", "--target", grpc_url(server), *args)
    assert result.returncode == 0, result.stderr
    assert "random inputs FP32 [4, 64]" in read_json(batched / "meta.json")["discovery"]
    assert all(row["ok"] == "1" for row in records(batched))


@pytest.mark.e2e
def test_grpc_a_wrong_shape_is_refused_with_the_grpc_status_and_tritons_words(
    server: TritonServer, tmp_path: Path
) -> None:
    args = ("--model", "digits", "--payload", WRONG_SHAPE, *LOAD)
    refused = run_cli("run", "--target", grpc_url(server), *args, "--out", str(tmp_path / "refused"))
    assert refused.returncode == 2, refused.stderr
    first = refused.stderr.splitlines()[0]
    # A gRPC answer travels as HTTP 200: the line names the call's own status, once.
    assert "ModelInfer -> INVALID_ARGUMENT in " in first and SHAPE_WORDS in first, first
    assert "INVALID_ARGUMENT: INVALID_ARGUMENT" not in first and "-> 200" not in first
    out = tmp_path / "run"
    loaded = run_cli("run", "--target", grpc_url(server), *args, "--no-preflight", "--out", str(out))
    assert loaded.returncode == 3, loaded.stderr
    rows = records(out)
    assert rows and all(row["ok"] == "0" and row["error"].startswith("INVALID_ARGUMENT") for row in rows)
    assert all(SHAPE_WORDS in row["server_message"] for row in rows), rows[0]["server_message"]


# --- the server's own time: Triton's counters around the window (issue 19, part 4) ------------


def triton_counters(server: TritonServer) -> dict[str, float]:
    """Triton's own counters of ``digits`` now, read from its metrics port."""
    import httpx

    from loadbench.protocols.triton_stats import counters_from_metrics

    counters = counters_from_metrics(httpx.get(f"{server.metrics}/metrics", timeout=10).text, "digits")
    assert counters is not None
    return counters


@pytest.mark.e2e
def test_processing_time_is_the_deltas_of_tritons_own_counters(server: TritonServer, tmp_path: Path) -> None:
    data = labelled_rows(server, tmp_path / "digits10.jsonl")
    out = tmp_path / "run"
    stats_url = f"{server.url}/v2/models/digits/stats"  # restricted by PyTriton: the metrics port instead
    result = run_cli(
        "run", "--target", server.url, "--model", "digits", "--data", str(data), *LOAD, "--out", str(out),
        "--server-stats", f"{server.metrics}/metrics", "--scrape", f"{server.metrics}/metrics",
        "--scrape-match", "nv_inference_", "--scrape-interval", "0.5s",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    after = triton_counters(server)  # nothing was served since the run's own "after" reading
    stats = read_json(out / "server_stats.json")
    assert stats["source"] == "triton-metrics" and stats["after"]["counters"] == after
    rows = all_ok(out)
    before = stats["before"]["counters"]
    # Every request of the window (no warmup) and no other: the preflight came before "before".
    # A request in flight when the load stopped may be served and not recorded: one per user at most.
    served = after["success"] - before["success"]
    assert served == stats["per_request"]["requests"] and 0 <= served - len(rows) <= 2
    expected_ms = (after["request"] - before["request"]) / served / 1000
    breakdown = read_json(out / "summary.json")["latency_breakdown"]
    assert breakdown["processing_source"] == "triton-metrics"
    assert breakdown["processing_ms"]["mean"] == pytest.approx(expected_ms, abs=1e-3)
    assert breakdown["request_ms"]["mean"] > 0 and breakdown["realtime_ratio"]["mean"] > 0
    # The same figure from the scraped counters alone (loadbench report without server_stats.json):
    # within one scrape interval's worth of requests at each end of the window.
    (out / "server_stats.json").unlink()
    assert run_cli("report", str(out)).returncode == 0
    scraped = read_json(out / "summary.json")["latency_breakdown"]
    assert scraped["processing_source"] == "triton-metrics" and "scrape" in scraped["processing_method"]
    assert scraped["processing_ms"]["mean"] == pytest.approx(expected_ms, rel=0.25)
    # The statistics API itself is restricted by PyTriton: refused, said, and the run goes on.
    out2 = tmp_path / "restricted"
    result = run_cli(
        "run", "--target", server.url, "--model", "digits", "--data", str(data), "--users", "1",
        "--duration", "1s", "--warmup", "0s", "--out", str(out2), "--no-sampler", "--server-stats", stats_url,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    refused = read_json(out2 / "server_stats.json")["refused"]
    assert refused and RESTRICTED in refused[0]["error"]
