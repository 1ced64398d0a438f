"""Which payload each request sends (``--popularity``): a known repeat structure over a payload set.

Pure (no Locust). `parse_popularity` reads the option; a `Picker` hands out payload indexes
(0 .. count - 1), seeded, one per request:

- ``uniform``: each payload equally likely, independently;
- ``zipf:S`` (S > 0): payload of rank r (rank 1 = the first payload) with probability
  ``r**-S / sum(k**-S for k in 1..count)``: a Zipf law bounded to the payload set (numpy's
  ``zipf`` is unbounded, and needs S > 1);
- ``repeat:P`` (0 < P < 1): with probability P one of the payloads already sent (each equally
  likely), else the next one not sent yet, in order; once all are sent, only repeats.

Without ``--popularity`` a scenario keeps its round robin (`Picker` is not used at all).
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from dataclasses import dataclass
from typing import Literal

from loadbench.errors import UsageError

Kind = Literal["uniform", "zipf", "repeat"]
KINDS: tuple[Kind, ...] = ("uniform", "zipf", "repeat")
USAGE = "use uniform, zipf:S (S > 0, e.g. zipf:1.1) or repeat:P (0 < P < 1, e.g. repeat:0.7)"


@dataclass(frozen=True)
class Popularity:
    """How often each payload is sent: ``kind``, and its parameter (Zipf's S, repeat's P)."""

    kind: Kind
    value: float = 0.0

    def text(self) -> str:
        """As the option is written: ``uniform``, ``zipf:1.1``, ``repeat:0.7``."""
        return self.kind if self.kind == "uniform" else f"{self.kind}:{self.value:g}"


def parse_popularity(text: str) -> Popularity:
    """``uniform``, ``zipf:S`` or ``repeat:P`` -> `Popularity`; anything else a one-line `UsageError`."""
    kind, _, value_text = text.strip().lower().partition(":")
    if kind == "uniform" and not value_text:
        return Popularity("uniform")
    if kind not in ("zipf", "repeat"):
        raise UsageError(f"--popularity {text!r}: {USAGE}")
    try:
        value = float(value_text)
    except ValueError:
        raise UsageError(f"--popularity {text!r}: {USAGE}") from None
    if kind == "zipf" and not (math.isfinite(value) and value > 0):
        raise UsageError(f"--popularity {text!r}: Zipf's exponent S must be above 0 (zipf:1.1)")
    if kind == "repeat" and not 0 < value < 1:
        raise UsageError(
            f"--popularity {text!r}: the repeat probability P must be between 0 and 1 (repeat:0.7)"
        )
    return Popularity("zipf" if kind == "zipf" else "repeat", value)


def zipf_probabilities(count: int, exponent: float) -> list[float]:
    """The probability of each rank (index 0 = rank 1) of a Zipf law bounded to ``count`` items."""
    weights = [rank**-exponent for rank in range(1, count + 1)]
    total = math.fsum(weights)
    return [w / total for w in weights]


class Picker:
    """Hands out the index of each request's payload, as ``popularity`` says, from a seeded stream.

    One per load-generating process (Locust's users are greenlets of one thread): the sequence
    is the same for the same seed and count.
    """

    def __init__(self, popularity: Popularity, count: int, seed: int = 0) -> None:
        if count < 1:
            raise UsageError("--popularity: no payloads to choose from")
        self.popularity = popularity
        self.count = count
        self.rng = random.Random(seed)
        self.sent = 0  # repeat: payloads 0 .. sent - 1 have been sent
        self._cumulative: list[float] = []
        if popularity.kind == "zipf":
            self._cumulative = list(itertools.accumulate(zipf_probabilities(count, popularity.value)))

    def next(self) -> int:
        """The next request's payload index."""
        kind = self.popularity.kind
        if kind == "uniform":
            return self.rng.randrange(self.count)
        if kind == "zipf":
            # The last bound is the sum of floats: just below 1 perhaps, so clamp into range.
            return min(bisect.bisect_right(self._cumulative, self.rng.random()), self.count - 1)
        if self.sent and (self.sent == self.count or self.rng.random() < self.popularity.value):
            return self.rng.randrange(self.sent)
        self.sent += 1
        return self.sent - 1
