"""In-process targets (loadbench.protocols.inprocess): loading a python:// callable or an onnx:// model,
rows as an ONNX model's inputs, predictions as labels, and each bad input as one line."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import DIGITS

from loadbench.demo.model import build_model, predict
from loadbench.errors import TargetError, UsageError
from loadbench.protocols.extract import Extractor
from loadbench.protocols.inprocess import (
    ONNX_METHOD,
    InProcessTarget,
    OnnxInput,
    onnx_feeds,
    onnx_input,
    open_target,
    prediction_text,
    python_target,
)
from loadbench.values import check_target, is_inprocess_url

ROWS = [json.loads(line) for line in DIGITS.read_text(encoding="utf-8").splitlines()[:20]]


def body(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("_")}


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module of test callables in the current directory, which python:// imports from."""
    (tmp_path / "lb_targets_mod.py").write_text(
        "import numpy as np\n"
        "NOT_CALLABLE = 3\n"
        "def first(row):\n    return row['inputs'][0][0]\n"
        "def array(row):\n    return np.array([7])\n"
        "def mapping(row):\n    return {'predictions': [4], 'scores': [0.1]}\n"
        "class Model:\n    @staticmethod\n    def predict(row):\n        return 'cat'\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    return "lb_targets_mod"


def test_a_python_target_is_the_callable_called_with_the_row(module: str) -> None:
    target = python_target(f"{module}:first")
    assert (target.name, target.method) == (f"{module}:first", "CALL")
    row = body(ROWS[0])
    assert target.call(target.prepare(row)) == ROWS[0]["inputs"][0][0]
    assert open_target(f"python://{module}:Model.predict").call(row) == "cat"  # a dotted attribute


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ("lb_no_such_module:f", "module lb_no_such_module does not import: ModuleNotFoundError"),
        ("{module}:missing", "has no attribute 'missing'"),
        ("{module}:NOT_CALLABLE", "NOT_CALLABLE is not callable (a int)"),
    ],
)
def test_a_python_target_that_cannot_be_called_is_one_line(module: str, spec: str, said: str) -> None:
    with pytest.raises(UsageError, match=said.replace("(", r"\(").replace(")", r"\)")) as caught:
        python_target(spec.format(module=module))
    assert "\n" not in str(caught.value)


def test_in_process_targets_are_checked_in_form() -> None:
    assert is_inprocess_url("python://m:f") and is_inprocess_url("onnx://m.onnx")
    assert not is_inprocess_url("http://127.0.0.1:8000")
    assert check_target("onnx://models/m.onnx") == "onnx://models/m.onnx"
    for bad in ("python://m", "python://m:", "python://:f", "onnx://"):
        with pytest.raises(TargetError):
            check_target(bad)


def test_predictions_are_labels(module: str) -> None:
    call = python_target(f"{module}:first")
    assert prediction_text(call, 7) == "7"
    assert prediction_text(call, 7.0) == "7"
    assert prediction_text(call, np.array([3])) == "3"  # model.predict([row])
    assert prediction_text(call, np.int64(5)) == "5"
    assert prediction_text(call, [[2, 9]]) == "2"
    assert prediction_text(call, {"predictions": [4], "scores": [0.1]}) == "4"
    assert prediction_text(call, {"label": "cat", "p": 0.9}, Extractor("p")) == "0.9"


# --- ONNX -------------------------------------------------------------------------------------

needs_onnx = pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None,
    reason="onnx:// targets need onnxruntime, the test model the onnx package (pip install onnxruntime onnx)",
)


@pytest.fixture(scope="module")
def digits_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from loadbench.demo.onnxmodel import write_onnx

    return write_onnx(build_model(), tmp_path_factory.mktemp("onnx") / "digits.onnx")


@needs_onnx
def test_an_onnx_target_answers_as_the_demo_model(digits_onnx: Path) -> None:
    target = open_target(f"onnx://{digits_onnx}")
    assert (target.name, target.method) == ("digits.onnx", ONNX_METHOD)
    labels = [prediction_text(target, target.call(target.prepare(body(row)))) for row in ROWS]
    expected = predict(build_model(), [row["inputs"][0] for row in ROWS])[0]
    assert labels == [str(label) for label in expected]
    # A v2 tensor row and a row naming the input feed the same numbers.
    v2 = {"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP32", "data": ROWS[0]["inputs"][0]}]}
    named = {"pixels": ROWS[0]["inputs"][0]}  # one row: the batch dimension is added
    for row in (v2, named):
        assert prediction_text(target, target.call(target.prepare(row))) == labels[0]
    # --extract reads the answer by output name.
    result = target.call(target.prepare(body(ROWS[0])))
    assert prediction_text(target, result, Extractor("label.0")) == labels[0]


def test_scores_per_class_give_the_class() -> None:
    target = InProcessTarget("m.onnx", ONNX_METHOD, "", lambda r: r, lambda r: r, lambda r: r)
    assert prediction_text(target, [np.array([[0.1, 0.7, 0.2]], dtype=np.float32)]) == "1"


def test_rows_that_do_not_fit_the_model_are_one_line() -> None:
    pixels = onnx_input("pixels", "tensor(float)", ["N", 64])
    assert pixels == OnnxInput("pixels", np.float32, (None, 64))
    with pytest.raises(UsageError, match=r"the row gives shape \[1, 63\], the model takes \[N, 64\]"):
        onnx_feeds([pixels], {"inputs": [list(range(63))]})
    with pytest.raises(UsageError, match=r"the row has fields \['a', 'b'\], and the model one input"):
        onnx_feeds([pixels], {"a": [1], "b": [2]})
    with pytest.raises(UsageError, match="not \\[N, 64\\] numbers"):
        onnx_feeds([pixels], {"inputs": [["a"] * 64]})
    with pytest.raises(UsageError, match="only numeric tensors"):
        onnx_input("text", "tensor(string)", [1])


@needs_onnx
def test_an_onnx_file_that_does_not_load_is_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(UsageError, match=r"^target onnx://\S+broken.onnx does not load: \w+") as caught:
        open_target(f"onnx://{broken}")
    assert "\n" not in str(caught.value)
    with pytest.raises(UsageError, match="no such file"):
        open_target(f"onnx://{tmp_path / 'absent.onnx'}")
