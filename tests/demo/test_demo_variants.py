"""The demo's model variants (loadbench.demo.variants): really computed, served under /v2/models/<variant>,
and as accurate under load as offline on the same rows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from helpers import DIGITS, run_cli, serving

from loadbench.data import DIGITS_V2_JSONL
from loadbench.demo import variants
from loadbench.demo.model import Classifier, build_model, predict
from loadbench.demo.server import make_server
from loadbench.record.columnar import read_run_requests

ROWS = [json.loads(line) for line in DIGITS.read_text(encoding="utf-8").splitlines()]
X = np.array([row["inputs"][0] for row in ROWS], dtype=np.float64)
Y = np.array([row["_expected"] for row in ROWS])


@pytest.fixture(scope="module")
def models() -> dict[str, Classifier]:
    base = build_model()
    return {name: variants.build_variant(name, base) for name in variants.VARIANTS}


@pytest.fixture(scope="module")
def demo(models: dict[str, Classifier]) -> Iterator[str]:
    server = make_server()
    for name in variants.VARIANTS:  # built once here: the tests below do not each pay the training
        server.models.get(name)  # type: ignore[attr-defined]
    with serving(server) as url:
        yield url


def test_the_variants_are_real_int8_sparse_and_smaller(models: dict[str, Classifier]) -> None:
    int8 = models[variants.INT8]
    assert isinstance(int8, variants.Int8Model)
    assert int8.weights.dtype == np.int8 and int8.weight_scale.shape == (10,)
    assert np.abs(int8.weights).max() == 127  # each class's largest weight spans the range
    pruned = models[variants.PRUNED]
    assert isinstance(pruned, variants.PrunedModel)
    assert pruned.weights.nnz == round(640 * (1 - variants.PRUNED_SPARSITY))  # scipy.sparse CSR
    distilled = models[variants.DISTILLED]
    assert isinstance(distilled, variants.DistilledModel)
    assert distilled.components.shape == (variants.DISTILLED_COMPONENTS, 64)
    full = models["digits"].predict_proba(X)
    for name in variants.VARIANTS[1:]:
        # Not the full model under another name: its probabilities differ, its labels mostly agree.
        probabilities = models[name].predict_proba(X)
        assert not np.allclose(probabilities, full), name
        assert np.mean(probabilities.argmax(axis=1) == full.argmax(axis=1)) > 0.9, name


def test_each_variant_keeps_its_accuracy_within_a_few_points(models: dict[str, Classifier]) -> None:
    full = variants.accuracy(models["digits"], X, Y)
    assert full > 0.95
    for name in variants.VARIANTS[1:]:
        assert variants.accuracy(models[name], X, Y) >= full - 0.03, name


def test_int8_quantizes_inputs_on_the_fly(models: dict[str, Classifier]) -> None:
    # A pixel moved by a tenth of its row's quantization step rounds to the same int8 value: the
    # int8 model's answer does not move at all, while the float model's does.
    int8, full = models[variants.INT8], models["digits"]
    assert isinstance(int8, variants.Int8Model)
    row = X[:1].copy()
    standard = (row - int8.mean) / int8.scale
    step = np.abs(standard).max() / 127
    steps = standard[0] / step
    # Not the largest pixel (it sets the step), nor one the model gives no weight (a constant pixel).
    off_grid = (
        np.abs(steps - np.round(steps)) + (np.abs(steps) > 120) + (np.abs(int8.weights).max(axis=0) == 0)
    )
    pixel = int(np.argmin(off_grid))
    moved = row.copy()
    moved[0, pixel] += 0.1 * step * int8.scale[pixel]
    assert np.array_equal(int8.predict_proba(moved), int8.predict_proba(row))
    assert not np.array_equal(full.predict_proba(moved), full.predict_proba(row))


def v2_body(rows: np.ndarray) -> dict[str, Any]:
    data = rows.astype(int).tolist()
    return {"inputs": [{"name": "input-0", "shape": [len(data), 64], "datatype": "FP32", "data": data}]}


def test_every_variant_is_served_under_v2(demo: str, models: dict[str, Classifier]) -> None:
    with httpx.Client(base_url=demo) as client:
        index = client.post("/v2/repository/index", json={}).json()
        assert [entry["name"] for entry in index] == list(variants.VARIANTS)
        for name, model in models.items():
            metadata = client.get(f"/v2/models/{name}").json()
            assert metadata["name"] == name and metadata["inputs"][0]["shape"] == [-1, 64]
            assert client.get(f"/v2/models/{name}/versions/1/ready").json() == {"name": name, "ready": True}
            answer = client.post(f"/v2/models/{name}/infer", json=v2_body(X)).json()
            assert answer["model_name"] == name
            served = answer["outputs"][0]["data"]
            assert served == predict(model, X)[0]  # what the variant computes offline, row for row
        missing = client.get("/v2/models/digits-fp4")
        assert missing.status_code == 404 and "digits-fp4" in missing.json()["error"]


def test_the_v2_rows_are_the_digits_rows() -> None:
    # loadbench/data/digits_v2.jsonl: `write_payload_file(path, v2=True)`, the rows of digits.jsonl.
    v2 = [json.loads(line) for line in DIGITS_V2_JSONL.read_text(encoding="utf-8").splitlines()]
    tensor = {"name": "input-0", "shape": [1, 64], "datatype": "FP32"}
    assert v2 == [
        {"inputs": [{**tensor, "data": row["inputs"][0]}], "_expected": row["_expected"]} for row in ROWS
    ]


def test_a_variants_accuracy_under_load_is_its_offline_accuracy(
    demo: str, models: dict[str, Classifier], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    result = run_cli(
        "run", "--target", demo, "--scenario", "kserve_v2", "--model", variants.PRUNED,
        "--data", str(DIGITS_V2_JSONL), "-u", "1", "-d", "1.5s", "--warmup", "0", "--no-sampler", "--quiet",
        "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    records = read_run_requests(out).sort_values("start_unix_s").to_dict("records")
    assert records and all(r["ok"] == 1 for r in records)
    # One user takes the rows in file order (from wherever the preflight left the cycle): the
    # offline predictions of the rows sent, found by their order.
    offline = np.asarray(predict(models[variants.PRUNED], X)[0])
    sent = next(
        [(start + k) % len(ROWS) for k in range(len(records))]
        for start in range(len(ROWS))
        if all(int(r["expected"]) == Y[(start + k) % len(ROWS)] for k, r in enumerate(records))
    )
    assert [int(r["predicted"]) for r in records] == offline[sent].tolist()
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    # summary.json rounds to 4 decimals
    assert summary["quality"]["accuracy"] == pytest.approx(float(np.mean(offline[sent] == Y[sent])), abs=5e-5)
