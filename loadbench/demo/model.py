"""The demo's digits classifier and the checks of what clients send it.

Consumes JSON-decoded request bodies (``/predict`` rows or an Open Inference Protocol v2 request);
produces (N, 64) float arrays, or a `BadRequest` naming what is wrong with them. Also the name
every protocol serves the model under and `HTTPError`, the non-400 answers the route modules
(`loadbench.demo.server`, `loadbench.demo.routes_v1`) share.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

N_FEATURES = 64
MODEL_NAME = "digits"
MODEL_VERSION = "1"
_V2_NUMERIC_TYPES = frozenset(
    {"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
)


class BadRequest(ValueError):
    """A request the client got wrong; becomes a 400 with this message."""


class HTTPError(Exception):
    """A non-400 answer (404, 405, 411, 413) out of a route: ``{"error": message}`` unless
    ``payload`` gives the protocol's own error shape (TorchServe's, TF Serving's)."""

    def __init__(
        self, status: int, message: str, headers: dict[str, str] | None = None, payload: Any = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}
        self.payload = {"error": message} if payload is None else payload


def allow(method: str, allowed: str) -> None:
    """Refuse (405, with ``Allow``) a known route asked with the wrong method."""
    if method != allowed:
        raise HTTPError(405, f"method {method} not allowed here; use {allowed}", {"Allow": allowed})


@dataclass(frozen=True)
class DemoModel:
    """A fitted digits classifier and the number of features it expects."""

    estimator: Pipeline
    n_features: int = N_FEATURES


def split_digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The deterministic digits split shared by training and the payload file."""
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    return x_train, x_test, y_train, y_test


def build_model() -> DemoModel:
    """Train the demo classifier on the training split (about 0.1 s once sklearn is imported)."""
    x_train, _, y_train, _ = split_digits()
    estimator = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    estimator.fit(x_train, y_train)
    return DemoModel(estimator=estimator, n_features=N_FEATURES)


def _is_number(value: object) -> bool:
    # bool is an int subclass and numpy would happily coerce "1"; neither is a pixel value.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _to_matrix(rows: Any, n_features: int) -> np.ndarray:
    """Validate one row or a list of rows of numbers into an (N, n_features) float array."""
    if isinstance(rows, np.ndarray):
        matrix = rows.astype(np.float64, copy=False)
        if matrix.ndim == 1:
            matrix = matrix.reshape(1, -1)
    else:
        if not isinstance(rows, Sequence) or isinstance(rows, str | bytes) or len(rows) == 0:
            raise BadRequest('"inputs" must be a non-empty list of rows of numbers')
        if all(_is_number(v) for v in rows):
            rows = [rows]
        for i, row in enumerate(rows):
            if not isinstance(row, Sequence) or isinstance(row, str | bytes):
                raise BadRequest(f"row {i} is not a list of numbers")
            if not all(_is_number(v) for v in row):
                raise BadRequest(f"row {i} holds a value that is not a number")
            if len(row) != n_features:
                raise BadRequest(f"row {i} has {len(row)} features, expected {n_features}")
        matrix = np.asarray(rows, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != n_features:
        raise BadRequest(f"inputs have shape {list(matrix.shape)}, expected [N, {n_features}]")
    if matrix.shape[0] == 0:
        raise BadRequest("inputs hold no rows")
    if not np.isfinite(matrix).all():
        raise BadRequest("inputs hold a non-finite number")
    return matrix


def predict(model: DemoModel, rows: Any) -> tuple[list[int], list[list[float]]]:
    """Classify rows of 64 pixel values; returns (labels, per-class probabilities).

    Raises ``BadRequest`` (a ``ValueError``) when rows are not N x 64 finite numbers.
    """
    matrix = _to_matrix(rows, model.n_features)
    probabilities = model.estimator.predict_proba(matrix)
    classes = model.estimator.classes_
    labels = [int(classes[i]) for i in probabilities.argmax(axis=1)]
    return labels, probabilities.tolist()


def _flatten(data: Any) -> list[Any]:
    """Flatten a v2 ``data`` field, which clients send either flat or nested row-major."""
    if not isinstance(data, list):
        raise BadRequest('v2 input "data" must be a list')
    flat: list[Any] = []
    stack: list[Any] = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def v2_rows(body: Any) -> np.ndarray:
    """Turn a v2 inference request into an (N, 64) array, checking shape, datatype and data."""
    if not isinstance(body, dict):
        raise BadRequest("v2 inference request must be a JSON object")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise BadRequest('v2 inference request must have "inputs" holding exactly one tensor object')
    tensor = inputs[0]
    datatype = tensor.get("datatype", "FP32")
    if datatype not in _V2_NUMERIC_TYPES:
        raise BadRequest(f"unsupported datatype {datatype!r}, expected a numeric type such as FP32")
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        or len(shape) not in (1, 2)
        or shape[-1] != N_FEATURES
    ):
        raise BadRequest(f"input shape {shape!r} is not [N, {N_FEATURES}]")
    flat = _flatten(tensor.get("data"))
    expected = math.prod(shape)
    if len(flat) != expected:
        raise BadRequest(f"input data has {len(flat)} elements but shape {shape} needs {expected}")
    if not all(_is_number(v) for v in flat):
        raise BadRequest("input data holds a value that is not a number")
    return np.asarray(flat, dtype=np.float64).reshape(-1, N_FEATURES)
