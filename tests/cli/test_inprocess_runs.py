"""``loadbench run --target onnx://...`` end to end: the run's records, quality and summary as for a served
model, each call's answer the model's offline one; a target that does not import is one line, exit 2."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import DIGITS, read_json, run_cli

from loadbench.demo.model import build_model, predict
from loadbench.record.columnar import read_run_requests

ROWS = [json.loads(line) for line in DIGITS.read_text(encoding="utf-8").splitlines()]


@pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None,
    reason="onnx:// targets need onnxruntime, the test model the onnx package (pip install onnxruntime onnx)",
)
def test_an_onnx_model_is_measured_as_a_served_one(tmp_path: Path) -> None:
    from loadbench.demo.onnxmodel import write_onnx

    model = write_onnx(build_model(), tmp_path / "digits.onnx")
    out = tmp_path / "run"
    result = run_cli(
        "run", "--target", f"onnx://{model}", "--data", str(DIGITS), "-u", "1", "-d", "1s", "--warmup", "0",
        "--no-sampler", "-q", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    meta = read_json(out / "meta.json")
    assert meta["scenario"] == "inprocess" and "network" not in meta  # no round trip to measure
    requests = read_run_requests(out).sort_values("start_unix_s")
    assert set(requests["name"]) == {"digits.onnx"} and set(requests["method"]) == {"ONNX"}
    assert requests["ok"].all() and (requests["status"] == 200).all()
    # One user takes the rows in file order from the first: each answer is the model's offline one.
    offline = np.asarray(predict(build_model(), [row["inputs"][0] for row in ROWS])[0])
    expected = np.asarray([row["_expected"] for row in ROWS])
    sent = np.arange(len(requests)) % len(ROWS)
    assert requests["predicted"].astype(int).tolist() == offline[sent].tolist()
    assert requests["expected"].astype(int).tolist() == expected[sent].tolist()
    summary = read_json(out / "summary.json")
    assert list(summary["by_name"]) == ["digits.onnx"]
    assert summary["quality"]["accuracy"] == pytest.approx(
        float(np.mean(offline[sent] == expected[sent])), abs=5e-5
    )


def test_a_python_target_that_does_not_import_is_one_line(tmp_path: Path) -> None:
    result = run_cli(
        "run", "--target", "python://lb_no_such_module:predict", "--data", str(DIGITS), "-d", "1s",
        "--warmup", "0", "--out", str(tmp_path / "run"),
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "loadbench: error: target python://lb_no_such_module:predict: module lb_no_such_module does not "
        "import: ModuleNotFoundError: No module named 'lb_no_such_module'"
    ]
    assert not (tmp_path / "run").exists()
