"""In-process targets: a model called inside loadbench's own process, with no server or network between.

    python://package.module:callable   a function taking a request row (a ``--data`` line as a dict,
                                       without its ``_`` keys such as ``_expected``) and returning
                                       a prediction
    onnx://PATH/model.onnx             an ONNX Runtime session (CPU); each row becomes its inputs

Consumes the target (checked in form by `loadbench.values.check_inprocess_target`) and the request
rows; produces an `InProcessTarget`: the record's name (``package.module:callable``, or the model
file's name) and method (``CALL``, ``ONNX``), ``prepare(row)`` (once per row, at set-up: an ONNX row
becomes its arrays there, so a request times the model's call and nothing else) and ``call``.
Bad input is one line (`UsageError`): a module that does not import, an attribute that is not
callable, a file ONNX Runtime does not load, a row whose fields or shapes do not fit the model.

A row becomes an ONNX model's inputs by name (each input the row's field of that name), or, for a
model of one input, from the row's numbers: its one field (``{"inputs": [[64 numbers]]}``, as
loadbench/data/digits.jsonl holds) or an Open Inference Protocol v2 tensor (``{"inputs": [{"shape",
"data", ...}]}``), as the input's element type; a missing leading batch dimension is added.

The prediction (`prediction_text`) is the answer's label as quality compares it: ``--extract PATH``
on the answer as JSON (an ONNX answer: ``{output name: values}``); else a scalar answer itself, a list
or array its first element (``model.predict([row])`` gives ``[7]``), a mapping at the first of
`loadbench.protocols.extract.DEFAULT_PATHS`; an ONNX answer's first output's first element, or the
index of its largest value where that output is a row of float scores per class.

Pure: imports neither locust nor gevent (`loadbench.scenario.inprocess` calls in gevent's threads);
onnxruntime only for an ``onnx://`` target.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from loadbench.errors import UsageError
from loadbench.protocols.extract import DEFAULT_PATHS, Extractor, label_text

CALL_METHOD = "CALL"
ONNX_METHOD = "ONNX"
# ONNX Runtime's element types, as numpy's.
_ONNX_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int16)": np.int16,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}
_MAX_SAID = 200  # a one-line message quotes at most this much of a library's words


@dataclass(frozen=True)
class InProcessTarget:
    """A model loadbench calls itself (module docstring)."""

    name: str  # requests.csv name
    method: str  # requests.csv method: CALL or ONNX
    described: str  # what was loaded, for the line said at start
    prepare: Callable[[Any], Any]  # a request row -> what `call` takes; UsageError when it cannot
    call: Callable[[Any], Any]  # the model's call: what a request times
    answer: Callable[[Any], Any]  # the call's result as JSON values (for --extract)


def _said(exc: BaseException) -> str:
    words = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {words[:_MAX_SAID]}"


def open_target(url: str) -> InProcessTarget:
    """The target a ``python://`` or ``onnx://`` URL names, loaded; `UsageError` when it cannot be."""
    scheme, rest = url.split("://", 1)
    if scheme.lower() == "onnx":
        return onnx_target(rest)
    return python_target(rest)


def python_target(spec: str) -> InProcessTarget:
    """``package.module:callable`` imported (the current directory first on the import path, as a
    locustfile's directory is); its attribute may be dotted (``module:Model.predict``)."""
    module_name, _, attribute = spec.partition(":")
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # anything its import raises: the user's code
        raise UsageError(
            f"target python://{spec}: module {module_name} does not import: {_said(exc)}"
        ) from None
    function: Any = module
    for part in attribute.split("."):
        if not hasattr(function, part):
            raise UsageError(f"target python://{spec}: {module_name} has no attribute {attribute!r}")
        function = getattr(function, part)
    if not callable(function):
        raise UsageError(
            f"target python://{spec}: {attribute} is not callable (a {type(function).__name__}): "
            "name a function taking one request row"
        )
    return InProcessTarget(
        name=spec,
        method=CALL_METHOD,
        described=f"python://{spec}, called with each row",
        prepare=lambda row: row,
        call=function,
        answer=json_values,
    )


@dataclass(frozen=True)
class OnnxInput:
    """One input of an ONNX model: its name, numpy type and shape (None for a free dimension)."""

    name: str
    dtype: Any
    shape: tuple[int | None, ...]

    def shape_text(self) -> str:
        return "[" + ", ".join("N" if d is None else str(d) for d in self.shape) + "]"


def onnx_target(path: str) -> InProcessTarget:
    """An ONNX Runtime session on the model file (CPU, one thread per call: the users are the
    concurrency)."""
    try:
        import onnxruntime
    except ImportError:
        raise UsageError("onnx:// targets need ONNX Runtime: pip install onnxruntime") from None
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"target onnx://{path}: no such file")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: its warnings are not ours to print
    try:
        session = onnxruntime.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime raises its own types for a file it cannot load
        raise UsageError(f"target onnx://{path} does not load: {_said(exc)}") from None
    inputs = [onnx_input(spec.name, spec.type, spec.shape) for spec in session.get_inputs()]
    outputs = [spec.name for spec in session.get_outputs()]
    said = ", ".join(f"{i.name} {i.shape_text()}" for i in inputs)

    def run(feeds: dict[str, np.ndarray]) -> Any:
        return session.run(None, feeds)

    return InProcessTarget(
        name=file.name,
        method=ONNX_METHOD,
        described=f"onnx://{path} (ONNX Runtime {onnxruntime.__version__}, CPU; inputs {said})",
        prepare=lambda row: onnx_feeds(inputs, row),
        call=run,
        answer=lambda result: {
            name: json_values(value) for name, value in zip(outputs, result, strict=False)
        },
    )


def onnx_input(name: str, type_name: str, shape: Sequence[Any]) -> OnnxInput:
    """An input as ONNX Runtime describes it (``tensor(float)``, ``[None, 64]`` or ``['N', 64]``)."""
    dtype = _ONNX_TYPES.get(type_name)
    if dtype is None:
        raise UsageError(f"the ONNX model's input {name!r} is a {type_name}: only numeric tensors are fed")
    return OnnxInput(name, dtype, tuple(d if isinstance(d, int) and d > 0 else None for d in shape))


def _row_numbers(row: Mapping[str, Any]) -> tuple[Any, tuple[int, ...] | None]:
    """A one-input model's numbers in a row: its one field, or a v2 tensor's data and shape."""
    if len(row) != 1:
        raise UsageError(
            f"the row has fields {sorted(row)}, and the model one input: give rows of one field, or name "
            "the field as the input"
        )
    value = next(iter(row.values()))
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict) and "data" in value[0]:
        shape = value[0].get("shape")
        return value[0]["data"], tuple(shape) if isinstance(shape, list) else None
    return value, None


def onnx_feeds(inputs: Sequence[OnnxInput], row: Any) -> dict[str, np.ndarray]:
    """A request row as the model's input arrays (module docstring); `UsageError` when it does not fit."""
    if not isinstance(row, Mapping):
        raise UsageError(f"an ONNX model's row is a JSON object, not a {type(row).__name__}")
    names = [spec.name for spec in inputs]
    given: dict[str, tuple[Any, tuple[int, ...] | None]]
    if all(name in row for name in names):
        given = {spec.name: (row[spec.name], None) for spec in inputs}
    elif len(inputs) == 1:
        given = {names[0]: _row_numbers(row)}
    else:
        raise UsageError(f"the row has fields {sorted(row)}, and the model's inputs are {names}")
    feeds = {}
    for spec in inputs:
        value, shape = given[spec.name]
        try:
            array = np.asarray(value, dtype=spec.dtype)
            if shape is not None:
                array = array.reshape(shape)
        except (ValueError, TypeError) as exc:
            raise UsageError(
                f"input {spec.name!r}: the row's values are not {spec.shape_text()} numbers: {exc}"
            ) from None
        if array.ndim == len(spec.shape) - 1:
            array = array[np.newaxis]  # one row: the batch dimension the model has
        fits = array.ndim == len(spec.shape) and all(
            want is None or want == have for want, have in zip(spec.shape, array.shape, strict=True)
        )
        if not fits:
            raise UsageError(
                f"input {spec.name!r}: the row gives shape {list(array.shape)}, the model takes {spec.shape_text()}"
            )
        feeds[spec.name] = array
    return feeds


def json_values(value: Any) -> Any:
    """An answer as JSON values: numpy arrays as lists, numpy scalars as numbers, tuples as lists."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): json_values(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_values(v) for v in value]
    return value


def _first(value: Any) -> Any:
    for _ in range(8):  # a first element's first element, boundedly
        if not isinstance(value, list) or not value:
            break
        value = value[0]
    return value


def prediction_text(target: InProcessTarget, result: Any, extractor: Extractor | None = None) -> str:
    """The label an answer gives (module docstring), as `loadbench.protocols.extract.label_text`."""
    answer = target.answer(result)
    if extractor is not None and extractor.explicit:
        return extractor(answer)
    if target.method == ONNX_METHOD:
        first = np.asarray(result[0]) if result else np.asarray([])
        if first.dtype.kind == "f" and first.ndim == 2 and first.shape[1] > 1:
            return label_text(int(first[0].argmax()))  # scores per class: the class
        return label_text(_first(json_values(first)))
    if isinstance(answer, Mapping):
        return Extractor(None, DEFAULT_PATHS)(answer)
    return label_text(_first(answer))
