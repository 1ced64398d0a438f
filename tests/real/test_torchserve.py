"""TorchServe conformance: loadbench against a real TorchServe 0.12 (tests/real/server_torchserve.py).

One server per module: a TorchScript digits classifier behind a tiny handler, one worker,
batchSize 4, token authorization off, inference on port P, management on P + 1 (found by
loadbench's guess, not told), metrics on P + 2. Each test runs the real `loadbench` command.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import DIGITS, read_json, run_cli
from realserver import only_error_line, records
from server_torchserve import BATCH_SIZE, MAX_BATCH_DELAY_MS, TorchServe, torchserve

pytestmark = [pytest.mark.real, pytest.mark.real_heavy]

LOAD = ("--users", "2", "--duration", "3s", "--warmup", "0s")
SHAPE_WORDS = "row 0 has 3 values, expected 64"  # the handler's PredictionException, relayed


@pytest.fixture(scope="module")
def ts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TorchServe]:
    with torchserve(tmp_path_factory.mktemp("torchserve"), DIGITS) as server:
        yield server


@pytest.fixture(scope="module")
def data(ts: TorchServe, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ten offline-predicted rows as TorchServe bodies, labelled."""
    path = tmp_path_factory.mktemp("data") / "digits10.jsonl"
    rows = [{"inputs": [row["inputs"]], "_expected": row["label"]} for row in ts.offline["rows"]]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def labelled(
    ts: TorchServe, data: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The zero-config command with a data file: probed, discovered, loaded."""
    out = tmp_path_factory.mktemp("labelled") / "run"
    return run_cli("run", "--target", ts.inference, "--data", str(data), *LOAD, "--out", str(out)), out


def test_zero_config_stops_before_the_load_with_the_model_and_what_to_pass(
    ts: TorchServe, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    line = only_error_line(run_cli("run", "--target", ts.inference, *LOAD, "--out", str(out)))
    # Probed as TorchServe (/ping), the model found through the management API on P + 1; only
    # the body is missing, which TorchServe cannot describe.
    assert f"scenario torchserve: model digits from {ts.management}/models (1 listed)" in line
    assert "TorchServe cannot say what its handler takes: pass --payload JSON, --data FILE.jsonl" in line
    assert not out.exists()


@pytest.mark.e2e
def test_labelled_rows_under_load_get_their_offline_predictions(
    ts: TorchServe, labelled: tuple[subprocess.CompletedProcess[str], Path]
) -> None:
    result, out = labelled
    assert result.returncode == 0, result.stderr
    assert read_json(out / "meta.json")["scenario"] == "torchserve"  # chosen by probing
    rows = records(out)
    assert all(row["ok"] == "1" and row["status"] == "200" for row in rows), rows[0]
    # One row per digit, so a row's label names it; half are rows the model gets wrong offline.
    offline = {str(row["label"]): str(row["predicted"]) for row in ts.offline["rows"]}
    assert len(offline) == 10 and ts.offline["accuracy"] == 0.5
    assert all(row["predicted"] == offline[row["expected"]] for row in rows)
    summary = read_json(out / "summary.json")
    quality: dict[str, Any] = summary["quality"]
    right = sum(offline[row["expected"]] == row["expected"] for row in rows)
    assert (quality["n"], quality["answered"], quality["correct"]) == (len(rows), len(rows), right)
    assert summary["errors"] == []


@pytest.mark.e2e
def test_discovery_finds_the_management_api_and_the_workers_and_batching(
    ts: TorchServe, labelled: tuple[subprocess.CompletedProcess[str], Path]
) -> None:
    result, out = labelled
    said = (
        f"torchserve: model digits from {ts.management}/models (1 listed); workers 1/1 READY "
        f"(min 1, max 1), batchSize {BATCH_SIZE}, maxBatchDelay {MAX_BATCH_DELAY_MS} ms"
    )
    assert f"loadbench: {said}\n" in result.stderr
    assert read_json(out / "meta.json")["discovery"] == said


def test_a_management_url_without_a_model_list_stops_naming_it(
    ts: TorchServe, data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    # The metrics port answers HTTP, but not TorchServe's model list.
    args = ("--scenario", "torchserve", "--management", ts.metrics, "--data", str(data))
    line = only_error_line(run_cli("run", "--target", ts.inference, *args, *LOAD, "--out", str(out)))
    assert f"no TorchServe model list at {ts.metrics}/models (HTTP 404)" in line
    assert "pass --management URL" in line and "or --model NAME" in line
    assert not out.exists()


def test_an_unknown_model_stops_with_torchserves_words(ts: TorchServe, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ("--model", "nosuch", "--data", str(data), *LOAD, "--out", str(out))
    line = only_error_line(run_cli("run", "--target", ts.inference, *args))
    assert "GET /models/nosuch HTTP 404: Model not found: nosuch" in line
    assert "it lists digits: pass --model NAME" in line
    assert not out.exists()


@pytest.mark.e2e
def test_a_wrong_shape_is_refused_in_the_servers_words(ts: TorchServe, tmp_path: Path) -> None:
    args = ("--scenario", "torchserve", "--payload", '{"inputs": [[1, 2, 3]]}', *LOAD)
    refused = run_cli("run", "--target", ts.inference, *args, "--out", str(tmp_path / "refused"))
    assert refused.returncode == 2, refused.stderr
    assert "-> 400 in " in refused.stderr and f'the server said: "{SHAPE_WORDS}"' in refused.stderr
    assert not (tmp_path / "refused").exists()
    # Past the preflight, every request fails with the same words, in requests.csv and the summary.
    out = tmp_path / "run"
    loaded = run_cli("run", "--target", ts.inference, *args, "--no-preflight", "--out", str(out))
    assert loaded.returncode == 3, loaded.stderr
    rows = records(out)
    assert rows and all(row["ok"] == "0" and row["status"] == "400" for row in rows)
    assert {row["server_message"] for row in rows} == {SHAPE_WORDS}
    errors = read_json(out / "summary.json")["errors"]
    assert [(e["kind"], e["server_message"]) for e in errors] == [("HTTP 400", SHAPE_WORDS)]
