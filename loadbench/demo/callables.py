"""The demo's models as in-process targets: ``loadbench run --target python://loadbench.demo.callables:NAME``.

Consumes a request row, as `loadbench.protocols.inprocess` passes it: a ``/predict`` body
(``{"inputs": [[64 numbers]]}``, loadbench/data/digits.jsonl's lines) or an Open Inference Protocol
v2 body (``{"inputs": [{"name", "shape", "datatype", "data"}]}``, what ``kserve_v2`` sends); produces
the first row's label, as the demo's HTTP routes compute it. One function per model the demo serves
(`loadbench.demo.variants`): `digits`, `digits_int8`, `digits_pruned`, `digits_distilled`; each model
is built on its first call, so the same rows served and called here compare the serving overhead.
"""

from __future__ import annotations

import threading
from typing import Any

from loadbench.demo.model import MODEL_NAME, Classifier, build_model, predict, v2_rows
from loadbench.demo.variants import DISTILLED, INT8, PRUNED, build_variant

_MODELS: dict[str, Classifier] = {}
_LOCK = threading.Lock()


def _model(name: str) -> Classifier:
    model = _MODELS.get(name)
    if model is None:
        with _LOCK:
            model = _MODELS.get(name) or build_variant(name, build_model())
            _MODELS[name] = model
    return model


def label(name: str, row: Any) -> int:
    """The label the demo's model ``name`` gives the row's first input row."""
    inputs = row.get("inputs") if isinstance(row, dict) else None
    is_v2 = isinstance(inputs, list) and bool(inputs) and isinstance(inputs[0], dict)
    labels, _ = predict(_model(name), v2_rows(row) if is_v2 else inputs)
    return labels[0]


def digits(row: Any) -> int:
    """The full-precision model (``/predict``, ``/v2/models/digits``)."""
    return label(MODEL_NAME, row)


def digits_int8(row: Any) -> int:
    """``/v2/models/digits-int8``."""
    return label(INT8, row)


def digits_pruned(row: Any) -> int:
    """``/v2/models/digits-pruned``."""
    return label(PRUNED, row)


def digits_distilled(row: Any) -> int:
    """``/v2/models/digits-distilled``."""
    return label(DISTILLED, row)
