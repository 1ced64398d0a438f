"""Stop a run early when the target fails every request (docs/metrics.md, "Validity").

A `Watchdog` listens to Locust's request event (one process; a distributed master gets no
request events, so its runs go their full length) and counts successes and failures, each
failure by its error kind (`loadbench.analyze.stats.error_kind`). The run is stopped
(`Watchdog.verdict`) once **all** of these hold:

- no request has succeeded since the load began;
- at least `GRACE_S` seconds have passed since the load began, **and** at least `MIN_FAILURES`
  requests have failed (whichever comes later);
- at least one failed request started after the warmup, so the measured window holds the
  failures that make the run INVALID (with a long ``--warmup`` the stop waits for it).

``loadbench run --keep-going`` never arms it. The reason quotes the most common error.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from loadbench.analyze.stats import error_kind, failure_text
from loadbench.record.records import one_line

GRACE_S = 5.0  # seconds of load before a run with no success may be stopped
MIN_FAILURES = 10  # failed requests before a run with no success may be stopped


class Watchdog:
    """Counts the requests of one run; `verdict` says when every one so far has failed."""

    def __init__(self, started_unix_s: float, warmup_s: float, timeout_s: float | None = None) -> None:
        self.started_unix_s = started_unix_s
        self.warmup_s = warmup_s
        self.timeout_ms = timeout_s * 1000.0 if timeout_s else float("inf")
        self.ok = 0
        self.failed = 0
        self.failed_in_window = 0
        self.kinds: Counter[str] = Counter()
        self.examples: dict[str, str] = {}

    def register(self, environment: Any) -> Watchdog:
        environment.events.request.add_listener(self.on_request)
        return self

    def on_request(
        self,
        response_time: float = 0.0,
        exception: BaseException | None = None,
        start_time: float | None = None,
        response: Any = None,
        **_: Any,
    ) -> None:
        """Locust's request event: one request ended (the recorder's rules: over --timeout fails)."""
        if exception is None and response_time > self.timeout_ms:
            exception = TimeoutError(f"timed out: answered after {response_time / 1000:.3f} s")
        if exception is None:
            self.ok += 1
            return
        self.failed += 1
        if start_time is None or start_time >= self.started_unix_s + self.warmup_s:
            self.failed_in_window += 1
        status = getattr(response, "status_code", None) or 0
        text = one_line(failure_text(exception), 300)
        kind = error_kind(status if isinstance(status, int) else 0, text)
        self.kinds[kind] += 1
        self.examples.setdefault(kind, text)

    def verdict(self, elapsed_s: float) -> str | None:
        """Why the run should stop now (every request failed), or None to go on."""
        if self.ok or elapsed_s < GRACE_S or self.failed < MIN_FAILURES or not self.failed_in_window:
            return None
        return (
            f"every request failed: {self.failed:,} of {self.failed:,} in the first {elapsed_s:.1f} s, "
            f"none succeeded; {self.most_common()}"
        )

    def most_common(self) -> str:
        """``the most common error: KIND (N): EXAMPLE``, or a placeholder with no failure."""
        if not self.kinds:
            return "no error recorded"
        kind, count = self.kinds.most_common(1)[0]
        example = self.examples.get(kind, "")
        return f"the most common error: {kind} ({count:,})" + (
            f": {example}" if example and example != kind else ""
        )
