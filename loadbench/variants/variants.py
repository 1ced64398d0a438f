"""`loadbench variants`: model variants side by side: is the int8 model worth it?

Consumes analyzed run directories (or sweep directories: their capacity step) of one model's
variants, each with a label (``DIR=LABEL``, else ``meta.json`` ``settings.label`` from ``loadbench
run --label``, else the directory's name); produces the ``variants.json`` dict
(`variants_table`) that `loadbench.variants.render` turns into markdown and HTML. Definitions
(docs/metrics.md, "Model variants"):

- per variant: accuracy, macro F1 and macro recall (`figures`), latency p50 / p99, throughput
  (for a sweep: its capacity under the SLO, ``capacity_rps``), server RSS and GPU memory (peak
  in the window, median beside it), energy per request; intervals and differences to the
  baseline from the block bootstrap of `loadbench.compare.bootstrap`.
- ``quality_drop``: baseline accuracy − variant accuracy (a fraction; 0.02 = 2 points);
  ``flagged`` when it exceeds ``--max-quality-drop``.
- ``pareto``: no other variant is at least as good on accuracy, p99 latency and memory
  (server RSS + GPU memory) and strictly better on one of them. An axis a variant lacks
  (no labels, no samples) is left out of its comparisons.
- Runs are refused (`check_same_model`) when they ran another scenario or sent other data
  (``--data`` / ``--payload``); the model's path differs between variants by design.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from loadbench.analyze import stats
from loadbench.compare.rundata import RunData, load_run
from loadbench.errors import RunDirError, UsageError
from loadbench.record import rundir
from loadbench.variants.figures import Figures, difference_interval, value_interval, variant_figures

SWEEP_FILE = "sweep.json"
DATA_OPTIONS = ("--data", "--payload")
IN_PROCESS = "inprocess"  # the in-process targets' scenario: any served scenario's peer


@dataclass
class Variant:
    label: str
    path: Path  # as given: a run or a sweep directory
    run: RunData  # the run measured (a sweep's capacity step)
    capacity_rps: float | None = None  # a sweep's capacity under its SLO


def parse_spec(text: str) -> tuple[Path, str | None]:
    """``DIR`` or ``DIR=LABEL``."""
    path, sep, label = text.rpartition("=") if "=" in text else (text, "", "")
    if sep and not label.strip():
        raise UsageError(f"{text!r}: an empty label after '='")
    return Path(path if sep else text), (label.strip() or None)


def parse_drop(text: str) -> float:
    """``--max-quality-drop``: ``1%`` or ``1pp`` (accuracy points), or a fraction (``0.01``)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(%|pp)?\s*", text)
    if match is None:
        raise UsageError(
            f"--max-quality-drop {text!r}: give points of accuracy, e.g. 1% or 0.5pp, or a fraction"
        )
    value = float(match.group(1))
    return value / 100.0 if match.group(2) else value


def load_variant(path: Path, label: str | None) -> Variant:
    """One variant: a run directory, or a sweep directory's capacity step."""
    if (path / SWEEP_FILE).is_file():
        sweep = rundir.read_json(path / SWEEP_FILE)
        capacity = sweep.get("capacity") if isinstance(sweep, dict) else None
        if not isinstance(capacity, dict):
            raise UsageError(
                f"{path}: the sweep found no capacity under its SLO (no step passed): nothing to compare"
            )
        step = next((s for s in sweep.get("steps", []) if s.get("index") == capacity.get("step")), None)
        if step is None or not step.get("run_dir"):
            raise UsageError(f"{path}: {SWEEP_FILE} names no run directory for its capacity step")
        run = load_run(path / str(step["run_dir"]))
        rps = capacity.get("achieved_rps")
        return Variant(
            _label(run, label, path), path, run, float(rps) if isinstance(rps, int | float) else None
        )
    try:
        run = load_run(path)
    except RunDirError as exc:
        raise UsageError(str(exc)) from None
    return Variant(_label(run, label, path), path, run)


def _label(run: RunData, label: str | None, path: Path) -> str:
    recorded = (run.meta.get("settings") or {}).get("label")
    return label or (recorded if isinstance(recorded, str) and recorded else path.name)


def _data_of(meta: dict[str, Any]) -> str | None:
    """The rows a run sent: its --data file's name, or its --payload text."""
    args = (meta.get("settings") or {}).get("scenario_args") or []
    for i, arg in enumerate(args):
        for option in DATA_OPTIONS:
            if arg == option and i + 1 < len(args):
                return f"{option} {Path(str(args[i + 1])).name if option == '--data' else args[i + 1]}"
            if isinstance(arg, str) and arg.startswith(option + "="):
                value = arg.split("=", 1)[1]
                return f"{option} {Path(value).name if option == '--data' else value}"
    return None


def check_same_model(variants: Sequence[Variant]) -> None:
    """`UsageError`, one line, when a variant ran another scenario or sent other data than the
    first: its figures would not be the same model's (``--force`` skips this)."""
    first = variants[0]
    scenario, data = first.run.meta.get("scenario"), _data_of(first.run.meta)
    for other in variants[1:]:
        s, d = other.run.meta.get("scenario"), _data_of(other.run.meta)
        differ = []
        if s != scenario and IN_PROCESS not in (s, scenario):
            differ.append(f"scenario ({scenario!r} vs {s!r})")
        if d != data:
            differ.append(f"data ({data or 'none'} vs {d or 'none'})")
        if differ:
            raise UsageError(
                f"{other.label} ({other.path}) is not a variant of {first.label}'s model: they differ in "
                f"{' and '.join(differ)}; --force compares them anyway"
            )


def _memory(values: dict[str, Any]) -> float | None:
    parts = [values.get("server_rss_mb"), values.get("gpu_memory_mb")]
    known = [float(p) for p in parts if isinstance(p, int | float)]
    return sum(known) if known else None


def pareto_flags(points: Sequence[tuple[float | None, float | None, float | None]]) -> list[bool]:
    """Per (accuracy, p99, memory): True unless another point is at least as good on every axis
    both have and strictly better on one (accuracy higher; p99 and memory lower)."""

    def dominates(a: tuple[float | None, ...], b: tuple[float | None, ...]) -> bool:
        signs = (1.0, -1.0, -1.0)  # larger is better after the sign
        pairs = [
            (s * x, s * y) for s, x, y in zip(signs, a, b, strict=True) if x is not None and y is not None
        ]
        return bool(pairs) and all(x >= y for x, y in pairs) and any(x > y for x, y in pairs)

    return [not any(dominates(o, p) for j, o in enumerate(points) if j != i) for i, p in enumerate(points)]


def variants_table(
    variants: Sequence[Variant],
    baseline: str | None = None,
    max_drop: float = 0.01,
    resamples: int = 400,
    seed: int = 0,
) -> dict[str, Any]:
    """The ``variants.json`` object (module docstring)."""
    labels = [v.label for v in variants]
    duplicated = sorted({label for label in labels if labels.count(label) > 1})
    if duplicated:
        raise UsageError(f"two runs have the label {duplicated[0]!r}: name them with DIR=LABEL")
    base_label = baseline or labels[0]
    if base_label not in labels:
        raise UsageError(f"--baseline {base_label!r} is none of the variants ({', '.join(labels)})")
    rng = np.random.default_rng(seed)
    figures = [variant_figures(v.run, resamples, rng) for v in variants]
    for variant, figure in zip(variants, figures, strict=True):
        if variant.capacity_rps is not None:
            # A sweep's throughput is its capacity: the rate at its SLO, not one step's bootstrap.
            figure.values["throughput_rps"] = variant.capacity_rps
            figure.stars["throughput_rps"] = None
    base = figures[labels.index(base_label)]
    entries = [_entry(v, f, base, max_drop) for v, f in zip(variants, figures, strict=True)]
    points = [(e["accuracy"], e["latency_ms"]["p99"], e["memory_mb"]) for e in entries]
    for entry, pareto in zip(entries, pareto_flags(points), strict=True):
        entry["pareto"] = pareto
    out: dict[str, Any] = stats.clean(
        {"baseline": base_label, "max_quality_drop": max_drop, "variants": entries}
    )
    return out


def _entry(variant: Variant, figures: Figures, base: Figures, max_drop: float) -> dict[str, Any]:
    v = figures.values
    keys = ("accuracy", "f1_macro", "recall_macro", "latency_ms.p50", "latency_ms.p99", "throughput_rps")
    extra = ("server_rss_mb", "gpu_memory_mb", "energy_j_per_request")
    vs: dict[str, Any] = {}
    for key in (*keys, *extra):
        b, o = base.values.get(key), v.get(key)
        delta = None if b is None or o is None else round(o - b, 6)
        vs[key] = {
            "delta": delta,
            "delta_pct": None if delta is None or not b else round(delta / abs(b) * 100.0, 3),
            "ci": difference_interval(base, figures, key) if key in keys and figures is not base else None,
        }
    base_accuracy, accuracy = base.values.get("accuracy"), v.get("accuracy")
    drop = None if base_accuracy is None or accuracy is None else round(base_accuracy - accuracy, 6)
    return {
        "label": variant.label,
        "run": str(variant.path),
        "accuracy": v["accuracy"],
        "f1_macro": v["f1_macro"],
        "recall_macro": v["recall_macro"],
        "latency_ms": {"p50": v["latency_ms.p50"], "p99": v["latency_ms.p99"]},
        "throughput_rps": v["throughput_rps"],
        "capacity_rps": variant.capacity_rps,
        "server_rss_mb": v["server_rss_mb"],
        "server_rss_median_mb": v["server_rss_median_mb"],
        "gpu_memory_mb": v["gpu_memory_mb"],
        "gpu_memory_median_mb": v["gpu_memory_median_mb"],
        "memory_mb": _memory(v),
        "energy_j_per_request": v["energy_j_per_request"],
        "quality_drop": drop,
        "flagged": drop is not None and drop > max_drop + 1e-12,
        "ci": {key: value_interval(figures, key) for key in keys},
        "vs_baseline": vs,
        "scenario": variant.run.meta.get("scenario"),
        "target": variant.run.meta.get("target"),
    }
