"""Per-replica and per-target statistics: where each attempt went and how each place fared.

Consumes the measured window's attempts (`loadbench.analyze.window.Window`: the records
themselves, every retry its own) with their ``replica`` column (the answer's header named by
``--replica-header``, e.g. a load balancer's ``X-Served-By``) or their ``target`` column (the base
URL loadbench itself sent to, with several ``--target``); produces ``summary.json`` ``replicas``
and ``targets`` (definitions: ``docs/metrics.md``, Replicas and Targets). Both are one grouping,
`group_stats`, over a column. Pure: no I/O.

A replica is only ever a name an answer gave: attempts whose answer named none (no answer at
all, a connection refused, or a server that does not send the header) are counted as
unattributed, never shared out among the replicas. A target is only ever one the run listed
(``settings.targets``) or one a record names: one that got nothing is shown with nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from loadbench.analyze import stats
from loadbench.analyze.window import Window

COLUMN = "replica"
TARGET_COLUMN = "target"


def _one(key: str, name: str, latency: Any, ok: Any, duration_s: float, attributed: int) -> dict[str, Any]:
    summary = stats.latency_summary(latency[ok])
    return group_row(key, name, int(ok.size), int(ok.sum()), summary, duration_s, attributed)


def group_row(
    key: str,
    name: str,
    requests: int,
    ok: int,
    latency: stats.LatencySummary,
    duration_s: float,
    attributed: int,
) -> dict[str, Any]:
    """One replica's or target's row from its counts and its successes' latency summary (either
    analyzer computes those: from the records, or from a store, `loadbench.analyze.bounded_routes`)."""
    errors = requests - ok
    return {
        key: name,
        "requests": requests,
        "errors": errors,
        "error_rate": round(errors / requests, 6) if requests else None,
        "throughput_rps": stats.rate(ok, duration_s),
        "latency_ms": {k: latency[k] for k in ("p50", "p90", "p99", "max")},
        "share": round(requests / attributed, 6) if attributed else None,
    }


def column_names(w: Window, column: str) -> npt.NDArray[Any]:
    """Per measured attempt: its ``column`` as text, "" where it has none (or the column is absent)."""
    measured = w.measured_attempts
    if column not in measured.columns:
        return np.full(len(measured), "", dtype=object)
    return np.asarray(measured[column].astype("string").fillna("").to_numpy(dtype=object))


def group_stats(w: Window, names: npt.NDArray[Any], key: str, listed: Sequence[str] = ()) -> dict[str, Any]:
    """Figures per distinct non-empty name of the measured attempts: ``listed`` names first, in
    their order (with nothing when no attempt named one), then the others sorted.

    Returns the rows (each keyed by ``key``), ``count``, ``imbalance`` and ``unattributed``.
    """
    latency = w.measured_attempts["latency_ms"].to_numpy(dtype=np.float64)
    ok = w.attempt_ok_mask
    named = names != ""
    attributed = int(named.sum())
    rows = []
    for name in group_order(names[named].tolist(), listed):
        mine = names == name
        rows.append(_one(key, str(name), latency[mine], ok[mine], w.duration_s, attributed))
    return grouping(rows, int(len(names) - attributed))


def group_order(names: Iterable[str], listed: Sequence[str] = ()) -> list[str]:
    """The distinct non-empty ``names``, ``listed`` ones first in their order (each whether or not it
    appears), then the rest sorted: the rows of a section's table (and the report's colours)."""
    seen = {str(n) for n in names if n != ""}
    return list(dict.fromkeys(listed)) + sorted(seen - set(listed))


def grouping(rows: list[dict[str, Any]], unattributed: int) -> dict[str, Any]:
    """`group_stats`' result from its rows (`group_row`) and the attempts that named none."""
    shares = [r["share"] for r in rows if r["share"] is not None]
    return {
        "rows": rows,
        "count": len(rows),
        # The busiest one's share against an even split: 1 is perfectly even.
        "imbalance": round(max(shares) / (1.0 / len(shares)), 4) if shares else None,
        "unattributed": unattributed,
    }


def replicas_section(w: Window) -> dict[str, Any] | None:
    """``summary.json`` ``replicas``; None when the run did not ask which replica served (no
    ``--replica-header`` nor ``--replica-field``, and no record names one)."""
    names = column_names(w, COLUMN)
    if (
        not w.settings.get("replica_header")
        and not w.settings.get("replica_field")
        and not (names != "").any()
    ):
        return None
    return replicas_of(w.settings, group_stats(w, names, "replica"))


def replicas_of(settings: dict[str, Any], grouped: dict[str, Any]) -> dict[str, Any] | None:
    """``replicas`` from `group_stats`' result by replica; None when the run did not ask and no
    attempt named one."""
    header = settings.get("replica_header")
    field = settings.get("replica_field")
    if not header and not field and not grouped["rows"]:
        return None
    said = " or ".join(
        ([f"the replica header {header}"] if header else []) + ([f"the JSON body's {field}"] if field else [])
    )
    sources = ([f"header {header}"] if header else []) + ([f"field {field}"] if field else [])
    section: dict[str, Any] = {
        "source": ", ".join(sources) or "records",
        "replicas": grouped["rows"],
        "count": grouped["count"],
        "imbalance": grouped["imbalance"],
        "unattributed": grouped["unattributed"],
        "notices": [],
    }
    if not grouped["rows"]:
        section["notices"].append(
            f"no answer named its replica in {said}: no replica is shown (check the name, and that the "
            "load balancer or server sends it)"
        )
    elif section["unattributed"]:
        section["notices"].append(
            f"{section['unattributed']:,} request(s) named no replica (no answer, or an answer without "
            f"{said}): counted apart, not shared out"
        )
    return section


def targets_section(w: Window) -> dict[str, Any] | None:
    """``summary.json`` ``targets``; None for a run of one target (no record names a target, and
    ``settings.targets`` lists fewer than two)."""
    listed = [str(t) for t in w.settings.get("targets") or [] if isinstance(t, str) and t]
    names = column_names(w, TARGET_COLUMN)
    if len(listed) < 2 and not _any_named(w, TARGET_COLUMN):
        return None
    return targets_of(w.settings, listed, group_stats(w, names, "url", listed), bool((names != "").any()))


def targets_of(
    settings: dict[str, Any], listed: list[str], grouped: dict[str, Any], named: bool
) -> dict[str, Any]:
    """``targets`` from `group_stats`' result by target (``listed``: the run's targets in order;
    ``named``: whether any attempt of the window named a target)."""
    section: dict[str, Any] = {
        "policy": settings.get("balance"),
        "targets": grouped["rows"],
        "count": grouped["count"],
        "imbalance": grouped["imbalance"],
        "unattributed": grouped["unattributed"],
        "notices": [],
    }
    idle = [r["url"] for r in grouped["rows"] if r["requests"] == 0]
    if idle and named:
        section["notices"].append(
            f"{len(idle)} target(s) got no request in the measured window: {', '.join(idle)}"
        )
    unlisted = [r["url"] for r in grouped["rows"] if listed and r["url"] not in listed]
    if unlisted:
        section["notices"].append(
            f"{len(unlisted)} target(s) in the records are not among the run's targets: {', '.join(unlisted)}"
        )
    if grouped["unattributed"]:
        section["notices"].append(
            f"{grouped['unattributed']:,} attempt(s) named no target: counted apart, not shared out"
        )
    return section


def _any_named(w: Window, column: str) -> bool:
    """Whether any record of the run (the warmup's included) names a ``column``."""
    if column not in w.attempts.columns:
        return False
    return bool((w.attempts[column].astype("string").fillna("") != "").any())
