"""Client-side load balancing over several targets (replicas of one model): which one gets the next request.

`Balancer(count, policy, rng)` picks a target index per request and is told when that request
ends (`done`), so the policies that look at requests in flight see them. One balancer serves
every user of a load-generating process (a distributed run has one per worker, each balancing
its own requests). Policies (docs/metrics.md, "Targets"):

- ``round-robin``: targets in turn, whoever asks.
- ``random``: uniformly at random.
- ``least-outstanding``: the target with the fewest requests in flight from this process; ties
  go to the one after the last picked, so an idle set of replicas is used in turn, not the first.
- ``p2c`` (power of two choices): two distinct targets at random, the one with fewer in flight
  (Mitzenmacher); nearly least-outstanding's balance without looking at every replica.

A retry avoids the targets its request has tried already while any other is left (`pick`'s
``avoid``), so a dead replica is not asked twice for the same request.

Pure: no I/O, no gevent; the caller holds the request in flight between `pick` and `done`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

POLICIES = ("round-robin", "random", "least-outstanding", "p2c")
DEFAULT_POLICY = "round-robin"


def policy_name(text: str) -> str:
    """A ``--balance`` value as typed (any case), checked; ValueError names the choices."""
    name = text.strip().lower()
    if name not in POLICIES:
        raise ValueError(f"unknown balance policy {text!r}: use one of {', '.join(POLICIES)}")
    return name


@dataclass
class Balancer:
    """Picks the target of each request among ``count`` targets by ``policy``."""

    count: int
    policy: str = DEFAULT_POLICY
    rng: random.Random = field(default_factory=random.Random)
    inflight: list[int] = field(init=False)
    _next: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError("a balancer needs at least one target")
        self.policy = policy_name(self.policy)
        self.inflight = [0] * self.count

    def pick(self, avoid: frozenset[int] = frozenset()) -> int:
        """The index of the target for the next request; counted in flight until `done`.

        ``avoid``: targets not to take unless no other is left (a retry goes to a replica it has
        not tried yet, as Envoy's ``previous_hosts`` predicate does).
        """
        n = self.count
        if avoid or n == 1 or self.policy == "random":
            return self._pick_among([i for i in range(n) if i not in avoid] or list(range(n)))
        # Nothing to avoid (every first attempt): the policies without building lists, which cost
        # a measurable share of a fast endpoint's round trip (benchmarks/routing_overhead.py).
        inflight = self.inflight
        if self.policy == "round-robin":
            index = self._next
        elif self.policy == "least-outstanding":
            # The first with the fewest in flight, counting from the one after the last picked.
            index, best = self._next, inflight[self._next]
            for k in range(1, n):
                if not best:
                    break
                i = (self._next + k) % n
                if inflight[i] < best:
                    index, best = i, inflight[i]
        else:  # p2c: two distinct targets from two draws
            a = int(self.rng.random() * n)
            b = int(self.rng.random() * (n - 1))
            b += b >= a
            index = a if inflight[a] <= inflight[b] else b
        if self.policy != "p2c":
            self._next = index + 1 if index + 1 < n else 0
        inflight[index] += 1
        return index

    def _pick_among(self, allowed: list[int]) -> int:
        n = self.count
        if len(allowed) == 1:
            index = allowed[0]
        elif self.policy == "round-robin":
            index = next(i % n for i in range(self._next, self._next + n) if i % n in allowed)
            self._next = (index + 1) % n
        elif self.policy == "random":
            index = self.rng.choice(allowed)
        elif self.policy == "least-outstanding":
            order = [i % n for i in range(self._next, self._next + n) if i % n in allowed]
            index = min(order, key=lambda i: self.inflight[i])
            self._next = (index + 1) % n
        else:  # p2c
            a, b = self.rng.sample(allowed, 2)
            index = a if self.inflight[a] <= self.inflight[b] else b
        self.inflight[index] += 1
        return index

    def done(self, index: int) -> None:
        """The request sent to ``index`` has ended (answered, failed or abandoned)."""
        if self.inflight[index] > 0:
            self.inflight[index] -= 1
