"""Record counts as the scale benchmarks write and name them (``1M``, ``250k``, ``run-10M``).

Imports nothing: the measuring parents of analyzer_scale.py and analysis_engines.py stay small
(a child's peak RSS starts at its parent's on Linux).
"""

from __future__ import annotations


def parse_count(text: str) -> int:
    """``1M``, ``10M``, ``250k``, ``2500000``."""
    text = text.strip().lower().replace("_", "").replace(",", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def count_label(n: int) -> str:
    """``10M``, ``250k``, or the number with thousands separators."""
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return f"{n:,}"
