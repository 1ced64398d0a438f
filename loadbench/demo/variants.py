"""The demo's model variants: the full-precision digits model and three cheaper versions of it.

Consumes the full-precision `loadbench.demo.model.DemoModel` (and, to train the pruned and
distilled variants, the training split of `loadbench.demo.model.split_digits`); produces the
models the demo serves under ``/v2/models/<name>`` (`loadbench.demo.routes_v2`), each a
`loadbench.demo.model.Classifier` computed for real with numpy (and scipy's sparse matmul):

    digits            the full-precision model: standardize, float64 matmul, softmax
    digits-int8       weights quantized per class to int8 with a scale; each input row quantized
                      to int8 on the fly (its own scale); an int8 x int8 matmul accumulated in
                      int32, then rescaled to float for the softmax
    digits-pruned     the 80% smallest weights (by magnitude) zeroed, the kept ones fine-tuned on
                      the training split, served as a scipy.sparse CSR matmul
    digits-distilled  a student: 16 PCA components of the pixels and a logistic regression on them,
                      trained (scikit-learn) on the full model's predicted labels, not the true ones

A variant is built on its first use (any of its v2 routes), not at start-up: the demo starts as
fast as before. The pruned and distilled ones need scikit-learn (about a second to import) and are
kept in the user's cache beside the full model's arrays (`loadbench.demo.model.model_cache`).
Their accuracy on the 360 held-out rows (``loadbench/data/digits.jsonl``) is in README.md.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from loadbench.demo.model import MODEL_NAME, N_FEATURES, Classifier, DemoModel, model_cache, split_digits

INT8 = f"{MODEL_NAME}-int8"
PRUNED = f"{MODEL_NAME}-pruned"
DISTILLED = f"{MODEL_NAME}-distilled"
PRUNED_SPARSITY = 0.8  # the share of weights zeroed
DISTILLED_COMPONENTS = 16
_FINE_TUNE_STEPS = 300  # full-batch gradient steps on the kept weights: recovers most of the loss
_FINE_TUNE_RATE = 0.5
_INT8_MAX = 127  # symmetric quantization: -127..127, so that a scale maps both signs alike


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax of decision values (N, classes), as scikit-learn's ``predict_proba``."""
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return np.asarray(exp / exp.sum(axis=1, keepdims=True))


@dataclass(frozen=True)
class Int8Model:
    """The full model's weights as int8 with one float scale per class; inputs quantized per row."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray  # int8, (classes, features)
    weight_scale: np.ndarray  # float, (classes,): weight = int8 value x scale
    intercept: np.ndarray
    classes: np.ndarray
    n_features: int = N_FEATURES

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        """Standardize, quantize each row to int8, int32 matmul, rescale, softmax."""
        standard = (matrix - self.mean) / self.scale
        row_scale = np.abs(standard).max(axis=1) / _INT8_MAX
        row_scale[row_scale == 0] = 1.0  # an all-zero row quantizes to zeros with any scale
        quantized = np.clip(np.rint(standard / row_scale[:, None]), -_INT8_MAX, _INT8_MAX).astype(np.int8)
        # int8 products summed over 64 features overflow int16: accumulate in int32, as int8 kernels do.
        accumulated = quantized.astype(np.int32) @ self.weights.T.astype(np.int32)
        scores = accumulated * row_scale[:, None] * self.weight_scale[None, :] + self.intercept
        return softmax(scores)


@dataclass(frozen=True)
class PrunedModel:
    """The full model with most weights zeroed, the rest fine-tuned, multiplied as a sparse matrix."""

    mean: np.ndarray
    scale: np.ndarray
    weights: Any  # scipy.sparse.csr_matrix, (classes, features)
    intercept: np.ndarray
    classes: np.ndarray
    n_features: int = N_FEATURES

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        """Standardize, sparse matmul over the kept weights, softmax."""
        standard = (matrix - self.mean) / self.scale
        scores = np.asarray(self.weights @ standard.T).T + self.intercept
        return softmax(scores)


@dataclass(frozen=True)
class DistilledModel:
    """A smaller student: a PCA projection to a few components and a logistic regression on them."""

    pca_mean: np.ndarray
    components: np.ndarray  # (components, features)
    coef: np.ndarray  # (classes, components)
    intercept: np.ndarray
    classes: np.ndarray
    n_features: int = N_FEATURES

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        """Project onto the components, then the student's softmax."""
        projected = (matrix - self.pca_mean) @ self.components.T
        return softmax(projected @ self.coef.T + self.intercept)


def quantize_int8(base: DemoModel) -> Int8Model:
    """Per-class symmetric int8 quantization of the full model's weights (no training)."""
    weight_scale = np.abs(base.coef).max(axis=1) / _INT8_MAX
    weight_scale[weight_scale == 0] = 1.0
    weights = np.clip(np.rint(base.coef / weight_scale[:, None]), -_INT8_MAX, _INT8_MAX).astype(np.int8)
    return Int8Model(base.mean, base.scale, weights, weight_scale, base.intercept, base.classes)


def prune_arrays(base: DemoModel, sparsity: float = PRUNED_SPARSITY) -> dict[str, np.ndarray]:
    """Zero the ``sparsity`` share of smallest weights, then fine-tune the kept ones (and the
    intercepts) by gradient descent on the training split's cross-entropy, L2 as scikit-learn's
    default (C=1): the pruned model's dense weights and intercepts."""
    x_train, _, y_train, _ = split_digits()
    standard = (x_train - base.mean) / base.scale
    onehot = (y_train[:, None] == base.classes[None, :]).astype(np.float64)
    kept = round(base.coef.size * (1 - sparsity))
    threshold = np.sort(np.abs(base.coef).ravel())[::-1][kept - 1]
    mask = np.abs(base.coef) >= threshold
    weights, intercept = base.coef * mask, base.intercept.astype(np.float64).copy()
    rows = len(standard)
    for _ in range(_FINE_TUNE_STEPS):
        gradient = (softmax(standard @ weights.T + intercept) - onehot) / rows
        weights -= _FINE_TUNE_RATE * (gradient.T @ standard + weights / rows) * mask
        intercept -= _FINE_TUNE_RATE * gradient.sum(axis=0)
    return {"weights": weights, "intercept": intercept}


def distill_arrays(base: DemoModel, components: int = DISTILLED_COMPONENTS) -> dict[str, np.ndarray]:
    """Fit the student on the training pixels and the full model's labels for them (not the truth)."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression

    x_train, _, _, _ = split_digits()
    teacher = base.classes[base.predict_proba(x_train).argmax(axis=1)]
    pca = PCA(components, random_state=0).fit(x_train)
    student = LogisticRegression(max_iter=1000).fit(pca.transform(x_train), teacher)
    return {
        "pca_mean": pca.mean_,
        "components": pca.components_,
        "coef": student.coef_,
        "intercept": student.intercept_,
        "classes": student.classes_,
    }


def _cached(name: str, train: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """A variant's trained arrays, read from the user's cache or trained and written there (an
    unreadable or unwritable cache only means training again, as for the full model)."""
    path = model_cache(name)
    try:
        with np.load(path) as stored:
            return {key: stored[key] for key in stored.files}
    except (OSError, ValueError):
        pass
    arrays = train()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as tmp:
            np.savez(tmp, **dict[str, Any](arrays))
        os.replace(tmp.name, path)
    except OSError:
        pass
    return arrays


def build_pruned(base: DemoModel) -> PrunedModel:
    """The pruned variant (trained once, then from the cache)."""
    from scipy.sparse import csr_matrix

    arrays = _cached(f"{PRUNED}{int(PRUNED_SPARSITY * 100)}", lambda: prune_arrays(base))
    return PrunedModel(
        base.mean, base.scale, csr_matrix(arrays["weights"]), arrays["intercept"], base.classes
    )


def build_distilled(base: DemoModel) -> DistilledModel:
    """The distilled variant (trained once, then from the cache)."""
    arrays = _cached(f"{DISTILLED}{DISTILLED_COMPONENTS}", lambda: distill_arrays(base))
    return DistilledModel(
        arrays["pca_mean"], arrays["components"], arrays["coef"], arrays["intercept"], arrays["classes"]
    )


# name -> (its v2 metadata's platform, how to build it from the full model)
_VARIANTS: dict[str, tuple[str, Callable[[DemoModel], Classifier]]] = {
    MODEL_NAME: ("sklearn", lambda base: base),
    INT8: ("numpy-int8", quantize_int8),
    PRUNED: ("scipy-sparse", build_pruned),
    DISTILLED: ("sklearn", build_distilled),
}
VARIANTS = tuple(_VARIANTS)


def build_variant(name: str, base: DemoModel) -> Classifier:
    """The variant called ``name`` of ``base`` (KeyError for another name)."""
    return _VARIANTS[name][1](base)


def accuracy(model: Classifier, matrix: np.ndarray, labels: np.ndarray) -> float:
    """The share of rows the model labels right: its offline accuracy."""
    predicted = model.classes[model.predict_proba(np.asarray(matrix, dtype=np.float64)).argmax(axis=1)]
    return float(np.mean(predicted == np.asarray(labels)))


class Repository:
    """The demo's models by name; a variant is built on its first use, once, whichever thread asks."""

    def __init__(self, base: DemoModel) -> None:
        self._base = base
        self._models: dict[str, Classifier] = {MODEL_NAME: base}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """Every model the demo serves, the full-precision one first."""
        return list(VARIANTS)

    def platform(self, name: str) -> str:
        """What the model's v2 metadata calls its platform."""
        return _VARIANTS[name][0]

    def get(self, name: str) -> Classifier:
        """The model called ``name`` (KeyError for another name)."""
        model = self._models.get(name)  # built ones: no lock, so a build never stalls other models
        if model is None:
            with self._lock:
                model = self._models.get(name) or build_variant(name, self._base)
                self._models[name] = model
        return model
