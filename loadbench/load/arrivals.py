"""Open-loop arrival schedules: when each request is due, independent of the responses.

Pure (numpy only, no Locust), so schedules can be tested and inspected without a run:

- `arrival_offsets`: seconds after the load start at which requests are due, for a constant,
  Poisson or gamma process at a rate that may change over time (load-shape stages).
- `read_trace`: the offsets (and optional per-request token lengths) of a recorded trace.

Gamma follows the convention of vLLM's ``benchmark_serving``: shape ``burstiness``, scale
``1 / (rate * burstiness)``, so the mean rate stays ``rate``; ``burstiness`` 1 is Poisson,
below 1 burstier, above 1 more regular.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loadbench.errors import UsageError

ARRIVALS = ("constant", "poisson", "gamma")
# A stage at rate 0 (a pause): look again this often for the rate to come back.
PAUSE_STEP_S = 0.05
MAX_TRACE_ROWS = 10_000_000


@dataclass(frozen=True)
class Arrival:
    """One due request of a trace: its offset and, when the trace has them, token lengths."""

    offset_s: float
    input_tokens: int | None = None
    output_tokens: int | None = None


def check_arrival(arrival: str, burstiness: float) -> None:
    if arrival not in ARRIVALS:
        raise UsageError(f"--arrival must be one of {', '.join(ARRIVALS)}, not {arrival!r}")
    if not 0 < burstiness < float("inf"):
        raise UsageError(f"--burstiness must be above 0, not {burstiness:g}")


def arrival_offsets(
    rate: Callable[[float], float | None],
    arrival: str,
    seed: int,
    burstiness: float = 1.0,
    end_s: float = float("inf"),
) -> Iterator[float]:
    """Offsets (s) of due requests, increasing, until ``end_s`` or until ``rate`` returns None.

    ``rate(t)`` is the requested rate (requests/s) at offset ``t``. Each gap is a draw of
    "work" in expected requests (constant: 1; poisson: Exp(1); gamma: Gamma(B, 1/B)), spent
    at the rate in force: the next request is due when the integral of ``rate`` since the last
    one reaches the draw (time rescaling). So a ramp from 0, or a rate that changes within a
    gap, gets the density it asks for. Seeded: the same arguments give the same schedule.
    """
    check_arrival(arrival, burstiness)
    rng = np.random.default_rng(seed)
    t = 0.0
    # Constant at a steady rate: the k-th offset is anchor + k / rate (summing 1/rate drifts:
    # 10 req/s over 1 s would give an 11th request at 0.9999999999999999).
    anchor, count, anchor_rate = 0.0, 0, 0.0
    first = True
    while t < end_s:
        if first:
            # The first request: at once for constant arrivals, else after a first gap.
            r = _first_positive_rate(rate, t, end_s)
            if r is None:
                return
            t, rate_now = r
            if arrival == "constant":
                anchor, count, anchor_rate = t, 0, rate_now
                first = False
                yield t
                continue
            first = False
        if arrival == "constant":
            r_now = rate(t)
            if r_now is not None and r_now > 0 and r_now == anchor_rate:
                candidate = anchor + (count + 1) / r_now
                if rate(candidate) == r_now:
                    count += 1
                    t = candidate
                    if t < end_s:
                        yield t
                    continue
            work = 1.0
        elif arrival == "poisson":
            work = float(rng.exponential(1.0))
        else:
            work = float(rng.gamma(burstiness, 1.0 / burstiness))
        spent = _spend(rate, t, work, end_s)
        if spent is None:
            return
        t = spent
        r_at = rate(t)
        if r_at is None:
            return
        anchor, count, anchor_rate = t, 0, r_at
        # Nothing is due where the rate is 0 (the gap ran up to a pause) or past the end.
        if r_at > 0 and t < end_s:
            yield t


def _first_positive_rate(
    rate: Callable[[float], float | None], t: float, end_s: float
) -> tuple[float, float] | None:
    """The first time from ``t`` (in `PAUSE_STEP_S` steps) where the rate is above 0, and that rate."""
    while t < end_s:
        r = rate(t)
        if r is None:
            return None
        if r > 0:
            return t, r
        t += PAUSE_STEP_S
    return None


def _spend(rate: Callable[[float], float | None], t: float, work: float, end_s: float) -> float | None:
    """The time at which ``work`` expected requests have accrued from ``t``; None past the end."""
    while t < end_s:
        r = rate(t)
        if r is None:
            return None
        if r > 0:
            need = work / r
            # The rate holds over the whole gap (checked at its end), or the gap fits in a step.
            if need <= PAUSE_STEP_S or rate(t + need) == r:
                return t + need
            # The rate at the step's middle: a ramp is integrated without a one-sided bias.
            mid = rate(t + PAUSE_STEP_S / 2)
            work -= (mid if mid is not None else r) * PAUSE_STEP_S
        t += PAUSE_STEP_S
    return None


def constant_rate(value: float) -> Callable[[float], float | None]:
    return lambda _t: value


def read_trace(path: Path, scale: float = 1.0) -> list[Arrival]:
    """Read a trace: CSV with a header, or JSON Lines, one due request per row.

    The time column is ``offset_s`` (seconds from the start) or ``timestamp`` (seconds, any
    origin: the first row becomes 0). Optional ``input_tokens`` and ``output_tokens``.
    Rows are sorted by time; ``scale`` multiplies every offset (0.5 replays twice as fast).
    """
    if not 0 < scale < float("inf"):
        raise UsageError(f"--trace-scale must be above 0, not {scale:g}")
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a spreadsheet's BOM
    except FileNotFoundError:
        raise UsageError(f"trace file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read trace file {path}: {exc}") from None
    rows: list[tuple[int, dict[str, object]]] = []  # (line number, row)
    stripped = text.lstrip()
    if stripped.startswith("{"):
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise UsageError(f"trace file {path} line {number}: not a JSON object") from None
            if not isinstance(row, dict):
                raise UsageError(f"trace file {path} line {number}: not a JSON object")
            rows.append((number, row))
    else:
        reader = csv.DictReader(text.splitlines())
        rows = [(reader.line_num, row) for row in reader]
    if not rows:
        raise UsageError(f"trace file {path} holds no requests")
    if len(rows) > MAX_TRACE_ROWS:
        raise UsageError(f"trace file {path} holds more than {MAX_TRACE_ROWS:,} requests")
    first_row = rows[0][1]
    key = "offset_s" if "offset_s" in first_row else "timestamp" if "timestamp" in first_row else None
    if key is None:
        raise UsageError(
            f"trace file {path}: needs an 'offset_s' or 'timestamp' column "
            "(optional: input_tokens, output_tokens)"
        )
    out: list[Arrival] = []
    for number, row in rows:
        try:
            t = float(row[key])  # type: ignore[arg-type]
            lengths = [_optional_int(row.get(k)) for k in ("input_tokens", "output_tokens")]
        except (KeyError, TypeError, ValueError, OverflowError):  # Overflow: a token count of inf
            raise UsageError(f"trace file {path} line {number}: bad {key} or token count") from None
        if not np.isfinite(t):
            raise UsageError(f"trace file {path} line {number}: {key} is not a finite number")
        out.append(Arrival(t, lengths[0], lengths[1]))
    out.sort(key=lambda a: a.offset_s)
    origin = out[0].offset_s if key == "timestamp" else 0.0
    if origin == 0.0 and out[0].offset_s < 0:
        raise UsageError(f"trace file {path}: offset_s must not be negative")
    return [Arrival((a.offset_s - origin) * scale, a.input_tokens, a.output_tokens) for a in out]


def _optional_int(value: object) -> int | None:
    if value is None or value == "":
        return None
    number = int(float(value))  # type: ignore[arg-type]
    if number < 0:
        raise ValueError("negative")
    return number
