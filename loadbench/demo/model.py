"""The demo's digits classifier and the checks of what clients send it.

Consumes JSON-decoded request bodies (``/predict`` rows or an Open Inference Protocol v2 request);
produces (N, 64) float arrays, or a `BadRequest` naming what is wrong with them. Also the name
every protocol serves the model under and `HTTPError`, the non-400 answers the route modules
(`loadbench.demo.server`, `loadbench.demo.routes_v1`, `loadbench.demo.routes_v2`) share.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from loadbench.protocols.bodies import flatten_nested

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


class Classifier(Protocol):
    """What serving a digits model needs (`predict`): the demo's model and its variants
    (`loadbench.demo.variants`) alike."""

    @property
    def classes(self) -> np.ndarray: ...

    @property
    def n_features(self) -> int: ...

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        """(N, n_features) floats -> (N, classes) probabilities."""
        ...


@dataclass(frozen=True)
class DemoModel:
    """A fitted digits classifier: ``StandardScaler`` then multinomial ``LogisticRegression``,
    held as their fitted arrays so that serving needs numpy only."""

    mean: np.ndarray  # StandardScaler.mean_
    scale: np.ndarray  # StandardScaler.scale_ (1 where a pixel never varies)
    coef: np.ndarray  # LogisticRegression.coef_, (classes, features)
    intercept: np.ndarray
    classes: np.ndarray
    n_features: int = N_FEATURES

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        """What the fitted pipeline's ``predict_proba`` gives: a softmax of the decision values."""
        scores = ((matrix - self.mean) / self.scale) @ self.coef.T + self.intercept
        scores -= scores.max(axis=1, keepdims=True)
        exp = np.exp(scores)
        return np.asarray(exp / exp.sum(axis=1, keepdims=True))


def split_digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The deterministic digits split shared by training and the payload file."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    return x_train, x_test, y_train, y_test


def train_model() -> DemoModel:
    """Train the demo classifier on the training split with scikit-learn."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_train, _, y_train, _ = split_digits()
    scaler, classifier = StandardScaler(), LogisticRegression(max_iter=1000)
    make_pipeline(scaler, classifier).fit(x_train, y_train)
    return DemoModel(
        scaler.mean_, scaler.scale_, classifier.coef_, classifier.intercept_, classifier.classes_
    )


def model_cache(name: str = MODEL_NAME) -> Path:
    """Where a model's fitted arrays are kept (the full model's, or a variant's:
    `loadbench.demo.variants`), keyed by the versions that trained them."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = f"sklearn{version('scikit-learn')}-numpy{version('numpy')}"
    return base / "loadbench" / f"demo-{name}-{key}.npz"


def build_model(cache: Path | None = None) -> DemoModel:
    """The demo classifier, trained on first use and then read from its cache.

    Importing scikit-learn takes about a second on these machines, more than the training, and
    the demo is started by every `make bench` and many tests: the fitted arrays are kept in the
    user's cache directory and the demo serves with numpy alone. An unreadable or unwritable
    cache only means training again.
    """
    path = cache or model_cache()
    try:
        with np.load(path) as arrays:
            return DemoModel(*(arrays[name] for name in _ARRAYS))
    except (OSError, KeyError, ValueError):
        pass
    model = train_model()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as tmp:
            np.savez(tmp, **{name: getattr(model, name) for name in _ARRAYS})
        os.replace(tmp.name, path)  # atomic: a demo starting beside us reads all or nothing
    except OSError:
        pass
    return model


def write_payload_file(path: str | os.PathLike[str], v2: bool = False) -> int:
    """Write the held-out test split as JSONL request bodies with ``_expected`` labels; returns lines.
    ``v2``: Open Inference Protocol v2 bodies (``kserve_v2``'s), one ``[1, 64]`` FP32 tensor each."""
    _, x_test, _, y_test = split_digits()
    lines = []
    for row, label in zip(x_test, y_test, strict=True):
        pixels = [int(v) for v in row]
        inputs: list[Any] = [pixels]
        if v2:
            inputs = [{"name": "input-0", "shape": [1, N_FEATURES], "datatype": "FP32", "data": pixels}]
        lines.append(json.dumps({"inputs": inputs, "_expected": int(label)}, separators=(",", ":")))
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)


_ARRAYS = ("mean", "scale", "coef", "intercept", "classes")


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


def predict(model: Classifier, rows: Any) -> tuple[list[int], list[list[float]]]:
    """Classify rows of 64 pixel values; returns (labels, per-class probabilities).

    Raises ``BadRequest`` (a ``ValueError``) when rows are not N x 64 finite numbers.
    """
    matrix = _to_matrix(rows, model.n_features)
    probabilities = model.predict_proba(matrix)
    classes = model.classes
    labels = [int(classes[i]) for i in probabilities.argmax(axis=1)]
    return labels, probabilities.tolist()


def _flatten(data: Any) -> list[Any]:
    """Flatten a v2 ``data`` field, which clients send either flat or nested row-major."""
    if not isinstance(data, list):
        raise BadRequest('v2 input "data" must be a list')
    return flatten_nested(data)


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


def v2_metadata(name: str = MODEL_NAME, platform: str = "sklearn") -> dict[str, Any]:
    """A model's Open Inference Protocol metadata, over HTTP and gRPC alike."""
    return {
        "name": name,
        "versions": [MODEL_VERSION],
        "platform": platform,
        "inputs": [{"name": "input-0", "datatype": "FP32", "shape": [-1, N_FEATURES]}],
        "outputs": [{"name": "output-0", "datatype": "INT64", "shape": [-1]}],
    }
