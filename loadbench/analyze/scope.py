"""What a section of the bounded analyzer (`loadbench.analyze.bounded`) reads: the run's store,
its span and its measured window, as SQL over the store's ``requests`` view.

Each section module of the bounded path (`loadbench.analyze.bounded_llm`,
`loadbench.analyze.bounded_payload`, `loadbench.analyze.bounded_routes`) takes a `Scope` and
returns the ``summary.json`` keys it owns, equal to what the in-memory analyzer gives.
"""

from __future__ import annotations

from dataclasses import dataclass

from loadbench.analyze.slo import Slo
from loadbench.analyze.store import RecordStore
from loadbench.analyze.window import RunSpan

# The rows as the analyzer counts them: an open loop's requests from their due time.
SOURCE = "requests"
# A request belongs to the window when it started (was due) at or after its lower bound ``lo``.
IN_WINDOW = "start_unix_s >= ?"
OK = "ok <> 0"


@dataclass(frozen=True)
class Scope:
    """The measured window of a run in a `RecordStore`.

    ``lo``: the parameter of `IN_WINDOW` (the window's start less half the records' resolution);
    ``total`` / ``ok``: the window's requests and successes; ``slos``: the run's SLOs.
    """

    store: RecordStore
    span: RunSpan
    lo: float
    total: int
    ok: int
    slos: list[Slo]

    @property
    def window_s(self) -> float:
        return self.span.duration_s

    def successes(self) -> tuple[str, list[float]]:
        """The SQL condition (over `SOURCE`) and parameters of the window's successful requests."""
        return f"{IN_WINDOW} AND {OK}", [self.lo]
