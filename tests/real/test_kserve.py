"""Conformance against KServe's Python model server (`server_kserve`): both protocols (v2
``infer`` and v1 ``:predict``), the zero-config command, accuracy under load against the model's
offline answers, and what a bad input shows. One server for the module; load runs in
``python -m loadbench`` child processes.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import read_json, run_cli
from server_kserve import KServe, start_kserve
from server_mlserver import (
    RUN,
    Labelled,
    assert_offline_accuracy,
    failed_with_servers_words,
    one_line_error,
    one_row_per_label,
    write_jsonl,
)

from loadbench.record.columnar import read_run_requests

pytestmark = [pytest.mark.real, pytest.mark.e2e]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KServe]:
    with start_kserve(tmp_path_factory.mktemp("kserve")) as started:
        yield started


@pytest.fixture(scope="module")
def labelled(server: KServe) -> Labelled:
    return one_row_per_label(server.predictions)


def loadbench(server: KServe, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("run", "--target", server.url, "--out", str(out), *RUN, *args)


@pytest.fixture(scope="module")
def zero_config(server: KServe, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``loadbench run --target URL`` and nothing else that shapes the requests: (run dir, stderr)."""
    out = tmp_path_factory.mktemp("zero") / "run"
    result = loadbench(server, out)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result.stderr


def test_zero_config_runs_without_an_error(zero_config: tuple[Path, str]) -> None:
    # The model declares its input in the v2 metadata, so loadbench fills it with random values.
    out, _ = zero_config
    requests = read_run_requests(out)
    assert len(requests) >= 10
    assert requests["ok"].all(), requests.loc[requests["ok"] == 0, "error"].unique()
    assert set(requests["name"]) == {"/v2/models/digits/infer"}
    assert read_json(out / "meta.json")["status"] == "complete"


def test_discovery_says_what_the_server_serves(zero_config: tuple[Path, str]) -> None:
    out, stderr = zero_config
    assert (
        "chosen by probing the target: GET /v2 answered Open Inference Protocol server metadata (kserve)"
        in stderr
    )
    # KServe has no repository index: the model comes from its list, the input from its metadata.
    found = (
        "model digits from GET /v2/models (1 listed); random input-0 FP32 [1, 64] from GET /v2/models/digits"
    )
    assert f"loadbench: kserve_v2: {found}" in stderr
    assert read_json(out / "meta.json")["scenario"] == "kserve_v2"


def test_v2_labelled_data_under_load_has_the_offline_accuracy(
    server: KServe, labelled: Labelled, tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "digits-v2.jsonl", labelled.v2_bodies())
    result = loadbench(server, tmp_path / "run", "--data", str(data))
    assert result.returncode == 0, result.stderr[-3000:]
    assert_offline_accuracy(tmp_path / "run", labelled, "/v2/models/digits/infer")


def test_v1_labelled_data_under_load_has_the_offline_accuracy(
    server: KServe, labelled: Labelled, tmp_path: Path
) -> None:
    # loadbench/data/digits.jsonl's rows ({"inputs": [row]}): KServe answers them with
    # "predictions", where TF Serving answers a columnar request with "outputs".
    data = write_jsonl(tmp_path / "digits-v1.jsonl", labelled.v1_bodies())
    result = loadbench(server, tmp_path / "run", "--scenario", "kserve_v1", "--data", str(data))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "loadbench: kserve_v1: model digits from GET /v1/models; v1 lists no inputs" in result.stderr
    assert_offline_accuracy(tmp_path / "run", labelled, "/v1/models/digits:predict")


def test_unknown_model_is_refused_with_the_servers_words(server: KServe, tmp_path: Path) -> None:
    result = loadbench(server, tmp_path / "run", "--scenario", "kserve_v2", "--model", "nosuch")
    line = one_line_error(result.stderr)
    assert result.returncode == 2
    assert (
        "/v2/models/nosuch gave no model metadata (HTTP 404): Model with name nosuch does not exist." in line
    )


def test_unknown_v1_model_with_data_shows_the_servers_words(
    server: KServe, labelled: Labelled, tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "digits-v1.jsonl", labelled.v1_bodies())
    args = ("--scenario", "kserve_v1", "--model", "nosuch", "--data", str(data))
    result = loadbench(server, tmp_path / "run", *args)
    failed_with_servers_words(
        result.returncode, result.stderr, tmp_path / "run", "Model with name nosuch does not exist."
    )


def test_wrong_feature_count_shows_the_servers_words_in_the_error_table(
    server: KServe, labelled: Labelled, tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "short.jsonl", [{"instances": [row[:10]]} for row in labelled.rows])
    args = ("--scenario", "kserve_v1", "--data", str(data), "--no-preflight")
    result = loadbench(server, tmp_path / "run", *args)
    words = "ValueError : X has 10 features, but StandardScaler is expecting 64 features as input."
    assert (
        failed_with_servers_words(result.returncode, result.stderr, tmp_path / "run", words)
        == "every request failed"
    )
    requests = read_run_requests(tmp_path / "run")
    refused = requests[requests["status"] == 500]
    assert len(refused) > 0 and refused["server_message"].astype(str).str.contains(words, regex=False).all()
    # KServe closes the connection after each 500 without saying so: the next request on it is
    # reset (no answer, status 0), and counted as what it is.
    reset = requests[requests["status"] != 500]
    assert (reset["status"] == 0).all() and reset["error"].astype(str).str.contains("connection").all()
