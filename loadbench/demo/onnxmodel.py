"""The demo's full-precision digits model as an ONNX file, built node by node with ``onnx.helper``.

Consumes a `loadbench.demo.model.DemoModel`; produces a model of one input, ``pixels`` (float,
``[N, 64]``), and two outputs, ``label`` (int64, ``[N]``: the class) and ``probabilities`` (float,
``[N, 10]``): Sub (the scaler's mean), Div (its scale), MatMul, Add, Softmax, ArgMax. The same
arithmetic as the demo's HTTP routes, in float32. For ``loadbench run --target onnx://digits.onnx``
(``python -m loadbench.demo.onnxmodel digits.onnx``), the in-process tests and the overhead benchmark.
Needs the ``onnx`` package (``pip install onnx``), imported only here.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from loadbench.demo.model import DemoModel, build_model
from loadbench.errors import UsageError

OPSET = 13


def write_onnx(model: DemoModel, path: str | Path) -> Path:
    """Write ``model`` as an ONNX file at ``path``; its path."""
    try:
        from onnx import TensorProto, checker, helper, numpy_helper, save
    except ImportError:
        raise UsageError(
            "writing the demo's model as ONNX needs the onnx package: pip install onnx"
        ) from None

    def constant(name: str, values: np.ndarray) -> Any:
        return numpy_helper.from_array(np.asarray(values, dtype=np.float32), name)

    classes = len(model.classes)
    graph = helper.make_graph(
        [
            helper.make_node("Sub", ["pixels", "mean"], ["centred"]),
            helper.make_node("Div", ["centred", "scale"], ["standard"]),
            helper.make_node("MatMul", ["standard", "weights"], ["product"]),
            helper.make_node("Add", ["product", "intercept"], ["scores"]),
            helper.make_node("Softmax", ["scores"], ["probabilities"], axis=1),
            helper.make_node("ArgMax", ["scores"], ["label"], axis=1, keepdims=0),
        ],
        "digits",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", model.n_features])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", classes]),
        ],
        initializer=[
            constant("mean", model.mean),
            constant("scale", model.scale),
            constant("weights", model.coef.T),
            constant("intercept", model.intercept),
        ],
    )
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx_model.ir_version = 8  # what ONNX Runtimes of the last years all read
    checker.check_model(onnx_model)
    target = Path(path)
    save(onnx_model, str(target))
    return target


def main(argv: list[str] | None = None) -> int:
    """``python -m loadbench.demo.onnxmodel PATH``: write the demo's model there."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m loadbench.demo.onnxmodel PATH.onnx", file=sys.stderr)
        return 2
    print(write_onnx(build_model(), args[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
