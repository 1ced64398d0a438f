"""Quality under load and real-time factor: pure math over request records. No I/O.

Consumes per-request arrays (the ``expected``, ``predicted``, ``ok``, ``latency_ms`` and
``media_s`` columns of ``requests.csv``); produces the ``quality`` and ``rtf`` sections of
``summary.json`` and a per-second accuracy series for the report. Definitions
(``docs/metrics.md``, "Quality" and "Real-time factor"):

- A request is *labeled* when its ``expected`` is not empty; quality counts only those (``n``).
- It is *answered* when it also succeeded (``ok``) and carries a ``predicted`` that is not
  empty; *correct* when answered and ``predicted == expected`` (exact text).
- A failed or unanswered labeled request is a wrong answer: it is in ``n`` and in its expected
  class's support, and counts as predicted for no class. So ``accuracy = correct / n`` drops
  when the endpoint times out or sheds load; ``accuracy_answered = correct / answered`` is the
  model's quality on what it did answer.
- Classes: every expected label and every answered prediction. Per class c:
  precision = TP_c / (answered requests predicted c), recall = TP_c / support_c (labeled
  requests expecting c), F1 = 2PR / (P + R). A zero denominator gives 0 (a class never predicted
  has precision 0; a predicted class never expected has recall 0), as scikit-learn's
  ``zero_division=0``. Macro precision, recall and F1 are the unweighted means over the classes
  (macro F1 is the mean of the per-class F1, not the F1 of the macro means).
- Over time (`macro_scores_rolling`): at each second t of the run, macro precision, recall and
  F1 as above over the labeled requests that started in the trailing window of
  ``ROLLING_WINDOW_S`` seconds ending with t (``[t - W + 1, t]``, shorter at the start), over
  the classes present in that window (expected or answered-predicted there). NaN for a window
  without labeled requests.
- RTF (real-time factor) of a successful request with a media duration: service time (from the
  actual send to the end of the response) / media duration. RTF < 1: faster than real time.

Everything is vectorized (factorize + bincount): linear in the records, few Python objects.
"""

from __future__ import annotations

from typing import Any, TypedDict

import numpy as np
import numpy.typing as npt
import pandas as pd

from loadbench.analyze import means

ROLLING_WINDOW_S = 5  # seconds in the trailing window of the macro scores over time
MAX_CLASSES_SHOWN = 50  # per_class lists the classes with the largest support, at most this many
_DIGITS = 4


def _categorical(values: Any) -> pd.Series:
    """Labels as a categorical Series of text; a missing value (NaN, None) is code -1."""
    series = values if isinstance(values, pd.Series) else pd.Series(values, dtype="object")
    if not isinstance(series.dtype, pd.CategoricalDtype) or not all(
        isinstance(c, str) for c in series.cat.categories
    ):
        series = series.astype("object").where(series.notna(), "").astype(str).astype("category")
    return series.reset_index(drop=True)


def _codes(expected: Any, predicted: Any) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], pd.Index]:
    """Both columns coded over one shared set of labels (-1: empty or missing)."""
    exp, pred = _categorical(expected), _categorical(predicted)
    labels = exp.cat.categories.union(pred.cat.categories)
    e = exp.cat.set_categories(labels).cat.codes.to_numpy().astype(np.int64)
    p = pred.cat.set_categories(labels).cat.codes.to_numpy().astype(np.int64)
    if "" in labels:
        empty = labels.get_loc("")
        e[e == empty] = -1
        p[p == empty] = -1
    return e, p, labels


def _class_key(label: str) -> tuple[int, float, str]:
    # Numbers in numeric order ("2" before "10"), then text.
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def _ratio(part: npt.NDArray[np.int64], whole: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    out = np.zeros(part.shape, dtype=np.float64)
    np.divide(part, whole, out=out, where=whole > 0)
    return out


def _per_class(
    tp: npt.NDArray[np.int64], predicted: npt.NDArray[np.int64], support: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per-class precision, recall and F1 from the counts (any shape; 0 for a zero denominator)."""
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, support)
    f1 = np.zeros(tp.shape, dtype=np.float64)
    both = precision + recall
    np.divide(2 * precision * recall, both, out=f1, where=both > 0)
    return precision, recall, f1


def _round(value: float) -> float:
    return round(float(value), _DIGITS)


def outcomes(
    expected: Any, predicted: Any, ok: npt.ArrayLike
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Per request: (labeled, answered, correct) as defined in the module docstring."""
    e, p, _ = _codes(expected, predicted)
    return _outcomes(e, p, ok)


def _outcomes(
    e: npt.NDArray[np.int64], p: npt.NDArray[np.int64], ok: npt.ArrayLike
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    labeled = e >= 0
    answered = labeled & np.asarray(ok).astype(bool) & (p >= 0)
    return labeled, answered, answered & (e == p)


class ClassScores(TypedDict):
    precision: float
    recall: float
    f1: float
    support: int
    predicted: int


class QualitySection(TypedDict):
    """``summary["quality"]``: the window's answers against their expected labels."""

    n: int
    answered: int
    correct: int
    accuracy: float
    accuracy_answered: float | None
    precision: float
    recall: float
    f1: float
    classes: int
    per_class: dict[str, ClassScores]


class RtfSection(TypedDict):
    """``summary["rtf"]``: real-time factors (processing time / media duration) of the window."""

    n: int
    p50: float | None
    p90: float | None
    p99: float | None
    mean: float | None
    max: float | None
    realtime_fraction: float | None
    failed: int


def quality_summary(
    expected: Any, predicted: Any, ok: npt.ArrayLike, counts: npt.ArrayLike | None = None
) -> QualitySection | None:
    """``summary["quality"]``: n, answered, correct, accuracy, accuracy_answered, macro
    precision/recall/f1, classes, per_class; None when no request carries an expected label.

    ``counts``: how many requests each row stands for (one each when None): the bounded analyzer
    gives the window's distinct (expected, predicted, ok) rows and their counts."""
    e, p, labels = _codes(expected, predicted)
    labeled, answered, correct = _outcomes(e, p, ok)
    weights = None if counts is None else np.asarray(counts, dtype=np.int64)

    def total(mask: npt.NDArray[np.bool_]) -> int:
        return int(mask.sum()) if weights is None else int(weights[mask].sum())

    def bincount(codes: npt.NDArray[np.int64], mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
        if weights is None:
            return np.bincount(codes, minlength=k)
        # Float weights count exactly up to 2**53 requests.
        return np.bincount(codes, weights=weights[mask], minlength=k).astype(np.int64)

    n = total(labeled)
    if n == 0:
        return None
    # The classes: every expected label and every answered prediction, in natural order.
    used = np.union1d(np.unique(e[labeled]), np.unique(p[answered]))
    classes = sorted((str(labels[i]) for i in used), key=_class_key)
    k = len(classes)
    position = np.full(len(labels), -1, dtype=np.int64)
    position[[labels.get_loc(c) for c in classes]] = np.arange(k)
    support = bincount(position[e[labeled]], labeled)
    predicted_count = bincount(position[p[answered]], answered)
    # Each correct request is a true positive of its expected class.
    tp = bincount(position[e[correct]], correct)
    precision, recall, f1 = _per_class(tp, predicted_count, support)
    n_answered, n_correct = total(answered), total(correct)
    shown = sorted(range(k), key=lambda i: (-int(support[i]), _class_key(classes[i])))[:MAX_CLASSES_SHOWN]
    shown.sort(key=lambda i: _class_key(classes[i]))
    return {
        "n": n,
        "answered": n_answered,
        "correct": n_correct,
        "accuracy": _round(n_correct / n),
        "accuracy_answered": _round(n_correct / n_answered) if n_answered else None,
        "precision": _round(precision.mean()),
        "recall": _round(recall.mean()),
        "f1": _round(f1.mean()),
        "classes": k,
        "per_class": {
            classes[i]: {
                "precision": _round(precision[i]),
                "recall": _round(recall[i]),
                "f1": _round(f1[i]),
                "support": int(support[i]),
                "predicted": int(predicted_count[i]),
            }
            for i in shown
        },
    }


def accuracy_per_second(
    start_s: npt.ArrayLike,
    expected: Any,
    predicted: Any,
    ok: npt.ArrayLike,
    seconds: int,
    counts: npt.ArrayLike | None = None,
) -> pd.DataFrame:
    """Per second of the run (a request belongs to the second it started in, ``start_s`` being
    seconds since the run start): labeled, answered, correct, accuracy, accuracy_answered.
    Accuracies are NaN for a second without labeled (answered) requests. ``counts``: how many
    requests each row stands for (one each when None: a run's store gives grouped rows)."""
    seconds = max(int(seconds), 0)
    labeled, answered, correct = outcomes(expected, predicted, ok)
    second = np.floor(np.asarray(start_s, dtype=np.float64)).astype(np.int64)
    keep = (second >= 0) & (second < seconds)
    weights = None if counts is None else np.asarray(counts, dtype=np.float64)

    def count(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
        m = keep & mask
        return np.bincount(
            second[m], weights=None if weights is None else weights[m], minlength=seconds
        ).astype(np.int64)

    n_labeled, n_answered, n_correct = count(labeled), count(answered), count(correct)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(n_labeled > 0, n_correct / n_labeled, np.nan)
        accuracy_answered = np.where(n_answered > 0, n_correct / n_answered, np.nan)
    return pd.DataFrame(
        {
            "second": np.arange(seconds, dtype=np.int64),
            "labeled": n_labeled,
            "answered": n_answered,
            "correct": n_correct,
            "accuracy": accuracy,
            "accuracy_answered": accuracy_answered,
        }
    )


def macro_scores_rolling(
    start_s: npt.ArrayLike,
    expected: Any,
    predicted: Any,
    ok: npt.ArrayLike,
    seconds: int,
    window_s: int = ROLLING_WINDOW_S,
    counts: npt.ArrayLike | None = None,
) -> pd.DataFrame:
    """Per second t of the run: macro precision, recall and F1 over the labeled requests that
    started in ``[t - window_s + 1, t]`` (module docstring), and how many there were
    (``labeled``). NaN where the window holds no labeled request. ``counts``: as
    `accuracy_per_second`'s."""
    seconds, window_s = max(int(seconds), 0), max(int(window_s), 1)
    e, p, labels = _codes(expected, predicted)
    labeled, answered, correct = _outcomes(e, p, ok)
    second = np.floor(np.asarray(start_s, dtype=np.float64)).astype(np.int64)
    keep = (second >= 0) & (second < seconds)
    k = len(labels)
    weights = None if counts is None else np.asarray(counts, dtype=np.float64)

    def windowed(mask: npt.NDArray[np.bool_], codes: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        # Counts per (second, class), then summed over each trailing window by a cumulative sum.
        m = keep & mask
        weight = None if weights is None else weights[m]
        flat = np.bincount(second[m] * k + codes[m], weights=weight, minlength=seconds * k).astype(np.int64)
        cumulative = np.cumsum(flat.reshape(seconds, k), axis=0)
        before = np.zeros_like(cumulative)
        if seconds > window_s:
            before[window_s:] = cumulative[:-window_s]
        return cumulative - before

    support = windowed(labeled, e)
    predicted_count = windowed(answered, p)
    tp = windowed(correct, e)
    precision, recall, f1 = _per_class(tp, predicted_count, support)
    present = (support > 0) | (predicted_count > 0)
    n_classes = present.sum(axis=1)
    n_labeled = support.sum(axis=1)

    def macro(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n_labeled > 0, (values * present).sum(axis=1) / n_classes, np.nan)

    return pd.DataFrame(
        {
            "second": np.arange(seconds, dtype=np.int64),
            "labeled": n_labeled.astype(np.int64),
            "precision": macro(precision),
            "recall": macro(recall),
            "f1": macro(f1),
        }
    )


def rtf_values(
    service_ms: npt.ArrayLike, media_s: npt.ArrayLike, ok: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """RTF of every successful request with a positive, finite media duration (others left out)."""
    media = np.asarray(media_s, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        usable = np.asarray(ok).astype(bool) & np.isfinite(media) & (media > 0)
    return np.asarray(service_ms, dtype=np.float64)[usable] / 1000.0 / media[usable]


def rtf_summary(service_ms: npt.ArrayLike, media_s: npt.ArrayLike, ok: npt.ArrayLike) -> RtfSection | None:
    """``summary["rtf"]``: n, p50, p90, p99, mean, max, realtime_fraction (share with RTF < 1),
    failed (requests with media that failed, left out); None when no request carries media."""
    media = np.asarray(media_s, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        carried = np.isfinite(media) & (media > 0)
    if not carried.any():
        return None
    rtf = rtf_values(service_ms, media, ok)
    failed = int((carried & ~np.asarray(ok).astype(bool)).sum())
    if rtf.size == 0:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "mean": None, "max": None,
                "realtime_fraction": None, "failed": failed}  # fmt: skip
    p50, p90, p99 = np.percentile(rtf, [50.0, 90.0, 99.0])
    return {
        "n": int(rtf.size),
        "p50": _round(p50),
        "p90": _round(p90),
        "p99": _round(p99),
        "mean": _round(means.exact_mean(rtf)),
        "max": _round(rtf.max()),
        "realtime_fraction": round(float((rtf < 1.0).mean()), 6),
        "failed": failed,
    }
