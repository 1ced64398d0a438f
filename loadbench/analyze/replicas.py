"""Per-replica statistics: which replica served each request and how each fared.

Consumes the measured window's records with their ``replica`` column (the answer's header named
by ``--replica-header``, e.g. a load balancer's ``X-Served-By``); produces ``summary.json``
``replicas`` (definitions: ``docs/metrics.md``, Replicas). Pure: no I/O.

A replica is only ever a name an answer gave: requests whose answer named none (no answer at
all, a connection refused, or a server that does not send the header) are counted as
unattributed, never shared out among the replicas.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from loadbench.analyze import stats
from loadbench.analyze.window import Window

COLUMN = "replica"


def _one(name: str, latency: Any, ok: Any, duration_s: float, attributed: int) -> dict[str, Any]:
    requests = int(ok.size)
    errors = int(requests - ok.sum())
    summary = stats.latency_summary(latency[ok])
    return {
        "replica": name,
        "requests": requests,
        "errors": errors,
        "error_rate": round(errors / requests, 6) if requests else None,
        "throughput_rps": stats.rate(int(ok.sum()), duration_s),
        "latency_ms": {k: summary[k] for k in ("p50", "p90", "p99", "max")},
        "share": round(requests / attributed, 6) if attributed else None,
    }


def replicas_section(w: Window) -> dict[str, Any] | None:
    """``summary.json`` ``replicas``; None when the run did not ask which replica served (no
    ``--replica-header``, and no record names one)."""
    header = w.settings.get("replica_header")
    measured = w.measured
    if COLUMN not in measured.columns:
        names = np.full(len(measured), "", dtype=object)
    else:
        names = measured[COLUMN].astype("string").fillna("").to_numpy(dtype=object)
    named = names != ""
    if not header and not named.any():
        return None
    latency = measured["latency_ms"].to_numpy(dtype=np.float64)
    ok = w.ok_mask
    attributed = int(named.sum())
    rows = []
    for name in sorted(set(names[named].tolist())):
        mine = names == name
        rows.append(_one(str(name), latency[mine], ok[mine], w.duration_s, attributed))
    shares = [r["share"] for r in rows if r["share"] is not None]
    section: dict[str, Any] = {
        "source": f"header {header}" if header else "records",
        "replicas": rows,
        "count": len(rows),
        # The busiest replica's share against an even split: 1 is perfectly even.
        "imbalance": round(max(shares) / (1.0 / len(shares)), 4) if shares else None,
        "unattributed": int(len(names) - attributed),
        "notices": [],
    }
    if not rows:
        section["notices"].append(
            f"no answer carried the replica header {header}: no replica is shown (check the header's "
            "name, and that the load balancer or server sends it)"
        )
    elif section["unattributed"]:
        section["notices"].append(
            f"{section['unattributed']:,} request(s) named no replica (no answer, or an answer without "
            f"the header {header}): counted apart, not shared out"
        )
    return section
