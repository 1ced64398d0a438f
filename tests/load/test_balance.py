"""The client-side balancing policies (loadbench.load.balance)."""

from __future__ import annotations

import random

import pytest

from loadbench.load.balance import POLICIES, Balancer, policy_name


def test_round_robin_takes_the_targets_in_turn_whoever_asks() -> None:
    balancer = Balancer(3, "round-robin")
    picks = [balancer.pick() for _ in range(7)]
    assert picks == [0, 1, 2, 0, 1, 2, 0]
    assert balancer.inflight == [3, 2, 2]
    for index in picks:
        balancer.done(index)
    assert balancer.inflight == [0, 0, 0]


def test_least_outstanding_picks_the_target_with_fewest_in_flight_and_rotates_ties() -> None:
    balancer = Balancer(3, "least-outstanding")
    # Idle replicas are used in turn, not the first one every time.
    assert [balancer.pick() for _ in range(3)] == [0, 1, 2]
    balancer.done(1)  # replica 1 answered first: it is the only one with nothing in flight
    assert balancer.pick() == 1
    balancer.done(0)
    balancer.done(1)
    assert balancer.inflight == [0, 0, 1]
    assert balancer.pick() in (0, 1) and balancer.pick() in (0, 1)
    assert balancer.inflight == [1, 1, 1]


def test_least_outstanding_sends_most_to_the_fastest_replica() -> None:
    # A replica that answers in 1 tick beside ones of 2 and 4 ticks, 6 requests always in flight:
    # the fastest frees its slots first and so is picked most.
    balancer = Balancer(3, "least-outstanding")
    service = [1, 2, 4]
    ends: list[tuple[int, int]] = []  # (tick it ends, target)
    counts = [0, 0, 0]
    for tick in range(400):
        for end in [e for e in ends if e[0] == tick]:
            ends.remove(end)
            balancer.done(end[1])
        while len(ends) < 6:
            index = balancer.pick()
            counts[index] += 1
            ends.append((tick + service[index], index))
    assert counts[0] > counts[1] > counts[2]


def test_p2c_takes_the_less_loaded_of_two_random_targets() -> None:
    balancer = Balancer(4, "p2c", random.Random(7))
    balancer.inflight = [5, 0, 5, 5]
    picks = [balancer.pick() for _ in range(50)]
    for index in picks:
        balancer.done(index)
    # Target 1 wins every draw it is in until it has as many in flight as the others; a draw
    # without it picks one of two equally loaded others.
    assert picks.count(1) >= 5
    assert balancer.inflight == [5, 0, 5, 5]
    # Never the more loaded of the two it drew: with two targets, p2c is least-outstanding.
    two = Balancer(2, "p2c", random.Random(1))
    two.inflight = [3, 1]
    assert [two.pick() for _ in range(2)] == [1, 1]


def test_random_uses_every_target_and_is_reproducible_with_a_seed() -> None:
    a = Balancer(3, "random", random.Random(42))
    b = Balancer(3, "random", random.Random(42))
    picks = [a.pick() for _ in range(300)]
    assert picks == [b.pick() for _ in range(300)]
    assert all(60 < picks.count(i) < 140 for i in range(3))


def test_one_target_is_always_picked_and_done_never_goes_below_zero() -> None:
    balancer = Balancer(1, "p2c")
    assert {balancer.pick() for _ in range(3)} == {0}
    for _ in range(5):
        balancer.done(0)
    assert balancer.inflight == [0]


def test_policy_names_are_checked() -> None:
    assert policy_name(" P2C ") == "p2c"
    assert set(POLICIES) == {"round-robin", "random", "least-outstanding", "p2c"}
    with pytest.raises(ValueError, match="unknown balance policy 'fastest': use one of round-robin"):
        policy_name("fastest")
    with pytest.raises(ValueError, match="at least one target"):
        Balancer(0)


@pytest.mark.parametrize("policy", POLICIES)
def test_a_retry_avoids_the_targets_it_tried_while_another_is_left(policy: str) -> None:
    balancer = Balancer(3, policy, random.Random(5))
    for _ in range(20):
        first = balancer.pick()
        second = balancer.pick(frozenset({first}))
        third = balancer.pick(frozenset({first, second}))
        assert len({first, second, third}) == 3
        # All tried: any may be asked again.
        assert balancer.pick(frozenset({0, 1, 2})) in (0, 1, 2)
