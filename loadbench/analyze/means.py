"""Exact means: the same mean of the same values from either analyzer, in any order.

A mean is exact: each value rounded to a millionth of its unit (a nanosecond for ms, where the
summary keeps µs), the integers summed, the sum divided once (`mean_of`). A float sum depends on
the order and grouping of its additions (numpy's pairwise, DuckDB's), which moves a mean's last
bit and, at a tie, its rounding: this way both analyzers (`loadbench.analyze.analyzer` in memory,
`loadbench.analyze.bounded` through DuckDB) give the same mean of the same values.
`exact_sum_sql` is the same sum in DuckDB (``round_even`` rounds as ``np.rint``). Definitions:
docs/metrics.md, "Means are exact".
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

MEAN_SCALE = 1_000_000
# (TRY_CAST: DuckDB evaluates the cast on rows its FILTER then leaves out, which may not be finite.)
EXACT_SUM_SQL = "coalesce(sum(TRY_CAST(round_even(({value}) * 1000000.0, 0) AS HUGEINT)){filter}, 0)"
# Sums of units below this bound (the largest value times the count) fit an int64.
_INT64_BOUND = 2.0**62


def exact_sum_sql(value: str, where: str | None = None) -> str:
    """DuckDB's `exact_sum` of the SQL expression ``value`` (over the rows matching ``where``)."""
    return EXACT_SUM_SQL.format(value=value, filter=f" FILTER ({where})" if where else "")


def exact_sum(values: npt.ArrayLike) -> int:
    """The sum of the finite ``values`` in millionths of their unit (`MEAN_SCALE`), exactly."""
    units = np.rint(np.asarray(values, dtype=np.float64) * MEAN_SCALE)
    if units.size == 0:
        return 0
    if float(np.abs(units).max()) * units.size < _INT64_BOUND:
        return int(units.astype(np.int64).sum())
    return sum(int(u) for u in units.tolist())  # values beyond int64's reach: Python's integers


def mean_of(total: int, n: int) -> float:
    """The mean of ``n`` values whose `exact_sum` is ``total``."""
    return total / n / MEAN_SCALE


def exact_mean(values: npt.ArrayLike) -> float:
    """The mean of ``values`` (at least one) as `mean_of` gives it; NaN or inf where numpy's is."""
    array = np.asarray(values, dtype=np.float64)
    if not np.isfinite(array).all():
        return float(array.mean())
    return mean_of(exact_sum(array), array.size)
