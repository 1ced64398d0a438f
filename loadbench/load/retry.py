"""Client-side retries: which failed attempts are retried, how long to wait, and the budget.

`RetryPolicy` is what ``--retries N --retry-on 5xx,429,connect,timeout --retry-backoff 50ms..2s
--retry-budget 10%`` say; `RetryBudget` counts one process's requests and retries against the
budget. The session that sends (`loadbench.scenario.session`) asks `should_retry` after each
failed attempt. Definitions: docs/metrics.md, "Retries".

- **Which**: ``5xx`` (any status 500–599), a status code (``429``, ``503``), ``connect`` (no
  answer: refused, reset or closed before a status line) and ``timeout`` (no complete answer
  within ``--timeout``). A success (below 400) is never retried, nor a failure the scenario found
  in a 200's body (the server answered; sending again would not change it).
- **Backoff**: exponential with full jitter: the k-th retry waits a uniform random time in
  [MIN, min(MAX, MIN·2^(k−1))], so the first waits MIN exactly. An answer's ``Retry-After`` (in
  seconds, or an HTTP date) is honoured: the wait is at least that; a ``Retry-After`` beyond MAX
  is no retry at all (the server asked for more patience than the policy has).
- **Budget** (``--retry-budget P%``): a retry is sent only while the process's retries so far are
  fewer than P% of its requests so far (first attempts), as Finagle's and Envoy's retry budgets
  bound the extra load retries may add when a server is failing.

Pure: no I/O; the caller sleeps and sends.
"""

from __future__ import annotations

import email.utils
import random
import re
import time
from dataclasses import dataclass

from loadbench.errors import UsageError
from loadbench.values import parse_duration

RETRY_ON_WORDS = ("5xx", "connect", "timeout")
DEFAULT_RETRY_ON = ("5xx", "429", "connect", "timeout")
DEFAULT_BACKOFF_S = (0.05, 2.0)
_STATUS = re.compile(r"[1-5][0-9][0-9]")


@dataclass(frozen=True)
class RetryPolicy:
    """``--retries`` and its options; ``retries`` 0 means no request is ever retried."""

    retries: int = 0
    on: tuple[str, ...] = DEFAULT_RETRY_ON
    backoff_min_s: float = DEFAULT_BACKOFF_S[0]
    backoff_max_s: float = DEFAULT_BACKOFF_S[1]
    budget: float | None = None  # retries / requests at most; None: no budget

    def retryable(self, status: int, timed_out: bool) -> bool:
        """Whether a failed attempt with this ``status`` (0: no answer) is one the policy retries."""
        if timed_out:
            return "timeout" in self.on
        if status == 0:
            return "connect" in self.on
        if 500 <= status <= 599 and "5xx" in self.on:
            return True
        return status >= 400 and str(status) in self.on

    def delay_s(self, retry: int, rng: random.Random, retry_after_s: float | None = None) -> float | None:
        """How long to wait before the ``retry``-th retry (1 for the first); None: do not retry
        (the answer's ``Retry-After`` asks for more than ``backoff_max_s``)."""
        if retry_after_s is not None and retry_after_s > self.backoff_max_s:
            return None
        cap = min(self.backoff_max_s, self.backoff_min_s * 2.0 ** (retry - 1))
        wait = rng.uniform(self.backoff_min_s, cap) if cap > self.backoff_min_s else self.backoff_min_s
        return max(wait, retry_after_s or 0.0)

    def settings(self) -> dict[str, object]:
        """As ``meta.json`` ``settings.retries`` records it."""
        return {
            "max": self.retries,
            "on": list(self.on),
            "backoff_ms": [round(self.backoff_min_s * 1000, 3), round(self.backoff_max_s * 1000, 3)],
            "budget": self.budget,
        }


class RetryBudget:
    """One process's requests and retries, against the policy's budget."""

    def __init__(self, ratio: float | None) -> None:
        self.ratio = ratio
        self.requests = 0
        self.retries = 0
        self.denied = 0  # retries the budget refused

    def request(self) -> None:
        self.requests += 1

    def take(self) -> bool:
        """Spend one retry if the budget allows it (and count it); False when it is spent."""
        if self.ratio is not None and self.retries >= self.ratio * self.requests:
            self.denied += 1
            return False
        self.retries += 1
        return True


def retry_count(text: str) -> int:
    """``--retries N``: a whole number of retries, 0 or more (at most 10: more is a storm, not a policy)."""
    try:
        value = int(text.strip())
    except ValueError:
        raise UsageError(f"{text!r} is not a whole number of retries") from None
    if not 0 <= value <= 10:
        raise UsageError(f"{value} retries: use 0 to 10")
    return value


def parse_retry_on(text: str) -> tuple[str, ...]:
    """``5xx,429,connect,timeout``: the failures to retry, checked, in the order given."""
    words = tuple(dict.fromkeys(w.strip().lower() for w in text.split(",") if w.strip()))
    if not words:
        raise UsageError("--retry-on is empty: give e.g. 5xx,429,connect,timeout")
    for word in words:
        if word not in RETRY_ON_WORDS and not (_STATUS.fullmatch(word) and int(word) >= 400):
            raise UsageError(
                f"--retry-on {word!r}: use 5xx, connect, timeout or an HTTP error status such as 429, 503"
            )
    return words


def parse_backoff(text: str) -> tuple[float, float]:
    """``50ms..2s`` (or one duration for a fixed wait): the backoff's least and greatest wait."""
    low_text, sep, high_text = text.partition("..")
    try:
        low = parse_duration(low_text)
        high = parse_duration(high_text) if sep else low
    except UsageError:
        raise UsageError(f"--retry-backoff {text!r}: use MIN..MAX, e.g. 50ms..2s") from None
    if high < low:
        raise UsageError(f"--retry-backoff {text!r}: the greatest wait is below the least")
    return low, high


def parse_budget(text: str) -> float:
    """``10%`` or ``0.1``: retries at most this share of requests (0 allows none)."""
    value = text.strip()
    try:
        ratio = float(value[:-1]) / 100.0 if value.endswith("%") else float(value)
    except ValueError:
        raise UsageError(f"--retry-budget {text!r}: use a share of requests, e.g. 10% or 0.1") from None
    if not 0.0 <= ratio <= 10.0:
        raise UsageError(f"--retry-budget {text!r}: use 0% to 1000% of requests")
    return ratio


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A ``Retry-After`` header's wait in seconds (delta-seconds or an HTTP date); None when
    absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
