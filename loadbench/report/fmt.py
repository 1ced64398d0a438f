"""Numbers and values as the reports show them: ``12.3 ms``, ``1,234 req/s``, ``4.5 %``, a dash
for a missing value; and safe access to summary sections that may be absent. Shared by every
report (run, compare, history, sweep) and the web UI.
"""

from __future__ import annotations

import math
from typing import Any

from loadbench.record import rundir

DASH = "–"  # shown for a missing value

PERCENTILE_KEYS = (("p50", "p50"), ("p90", "p90"), ("p95", "p95"), ("p99", "p99"), ("p999", "p99.9"))


def num(value: Any) -> float | None:
    """The value as a finite float, or None when it is missing, null, NaN or not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def format_ms(value: float | None, unit: bool = True) -> str:
    """A latency: 3 significant digits, at least 1 decimal under 100 ms (``4.21 ms``, ``1,234 ms``)."""
    v = num(value)
    if v is None:
        return DASH
    if abs(v) >= 99.95:
        text = f"{v:,.0f}"
    elif v == 0:
        text = "0.0"
    else:
        r = float(f"{v:.3g}")  # round first so 9.996 becomes 10.0, not 10.00
        decimals = max(1, 2 - math.floor(math.log10(abs(r))))
        text = f"{r:,.{decimals}f}"
    return f"{text} ms" if unit else text


def format_rate(value: float | None, unit: str = "req/s") -> str:
    """A rate with one decimal and thousands separators: ``1,234.5 req/s``."""
    v = num(value)
    return DASH if v is None else f"{v:,.1f} {unit}".rstrip()


def format_pct(fraction: float | None) -> str:
    """A fraction (0.012) as a percentage with two decimals: ``1.20 %``."""
    v = num(fraction)
    return DASH if v is None else f"{v * 100:.2f} %"


def format_count(value: float | None) -> str:
    """A count with thousands separators: ``12,345``."""
    v = num(value)
    return DASH if v is None else f"{round(v):,}"


def format_seconds(value: float | None) -> str:
    """A duration in seconds with one decimal: ``28.0 s``."""
    v = num(value)
    return DASH if v is None else f"{v:,.1f} s"


def format_bytes(value: float | None) -> str:
    """A byte count in binary units: ``512 B``, ``3.4 KiB``, ``15.6 GiB``."""
    v = num(value)
    if v is None:
        return DASH
    if abs(v) < 1024:
        return f"{v:,.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        v /= 1024
        if abs(v) < 1024 or unit == "GiB":
            break
    return f"{v:,.1f} {unit}"


def format_percent(value: float | None) -> str:
    """A value already in percent, one decimal: ``56.7 %``."""
    v = num(value)
    return DASH if v is None else f"{v:,.1f} %"


def format_byte_rate(value: float | None) -> str:
    """Bytes per second in binary units: ``1.5 MiB/s``."""
    v = num(value)
    return DASH if v is None else f"{format_bytes(v)}/s"


def format_number(value: float | None, decimals: int = 1) -> str:
    """A plain number: integers without decimals (``24``), others rounded (``7.5``)."""
    v = num(value)
    if v is None:
        return DASH
    return f"{v:,.0f}" if v == round(v) else f"{v:,.{decimals}f}"


def format_value(value: float | None) -> str:
    """A value of unknown scale (a Prometheus series): 4 significant digits, no exponent below 1e15."""
    v = num(value)
    if v is None:
        return DASH
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{float(f'{v:.4g}'):g}" if abs(v) >= 1e-4 or v == 0 else f"{v:.3e}"


def format_times(value: Any) -> str:
    """A ratio of two figures, a speedup: ``2.68×``."""
    v = num(value)
    return DASH if v is None else f"{v:.2f}×"


def format_joules(value: float | None) -> str:
    """Energy: ``3,600 J``, ``12.3 J``, ``0.0123 J``."""
    v = num(value)
    if v is None:
        return DASH
    return f"{v:,.0f} J" if abs(v) >= 100 else f"{format_value(v)} J"


def utc(value: Any) -> str:
    v = num(value)
    return DASH if v is None else rundir.iso_utc(v)


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
