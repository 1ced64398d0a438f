"""``--popularity``: the option's forms, and each picker's draws against its exact distribution."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from loadbench.errors import UsageError
from loadbench.load.popularity import Picker, Popularity, parse_popularity, zipf_probabilities


def test_the_forms_of_the_option() -> None:
    assert parse_popularity("uniform") == Popularity("uniform")
    assert parse_popularity(" Zipf:1.1 ") == Popularity("zipf", 1.1)
    assert parse_popularity("repeat:0.7") == Popularity("repeat", 0.7)
    assert [parse_popularity(t).text() for t in ("uniform", "zipf:1.10", "repeat:0.5")] == [
        "uniform",
        "zipf:1.1",
        "repeat:0.5",
    ]


@pytest.mark.parametrize(
    "text",
    ["zipf:0", "zipf:-1", "zipf:", "zipf:inf", "repeat:1.5", "repeat:0", "repeat:1", "foo", "uniform:2"],
)
def test_bad_forms_are_one_line(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_popularity(text)
    assert "\n" not in str(caught.value) and "--popularity" in str(caught.value)


def test_a_bounded_zipf_sums_to_one_and_falls_by_rank() -> None:
    p = zipf_probabilities(100, 1.2)
    assert sum(p) == pytest.approx(1.0)
    assert p[0] / p[1] == pytest.approx(2**1.2)
    assert all(a > b for a, b in itertools.pairwise(p))


def test_zipf_draws_match_the_exact_probabilities() -> None:
    picker = Picker(Popularity("zipf", 1.2), 100, seed=3)
    draws = Counter(picker.next() for _ in range(50_000))
    exact = zipf_probabilities(100, 1.2)
    assert set(draws) <= set(range(100))
    for rank in (0, 1, 9):
        assert draws[rank] / 50_000 == pytest.approx(exact[rank], abs=0.01)


def test_uniform_draws_cover_every_payload_evenly() -> None:
    picker = Picker(Popularity("uniform"), 10, seed=1)
    draws = Counter(picker.next() for _ in range(20_000))
    assert sorted(draws) == list(range(10))
    assert max(draws.values()) / min(draws.values()) < 1.2


def test_repeat_resends_with_its_probability_and_sends_new_ones_in_order() -> None:
    picker = Picker(Popularity("repeat", 0.7), 100_000, seed=5)
    picks = [picker.next() for _ in range(20_000)]
    seen: set[int] = set()
    repeats, firsts = 0, []
    for p in picks:
        if p in seen:
            repeats += 1
        else:
            firsts.append(p)
            seen.add(p)
    assert firsts == list(range(len(firsts)))  # the new ones, in order
    assert repeats / len(picks) == pytest.approx(0.7, abs=0.02)


def test_repeat_only_repeats_once_every_payload_was_sent() -> None:
    picker = Picker(Popularity("repeat", 0.1), 5, seed=0)
    picks = [picker.next() for _ in range(200)]
    assert set(picks) == set(range(5))
    sent_all = max(picks.index(p) for p in range(5))
    assert picker.sent == 5 and sent_all < len(picks) - 1  # after that, each pick a repeat


def test_the_same_seed_gives_the_same_draws() -> None:
    def draws(seed: int) -> list[int]:
        picker = Picker(Popularity("zipf", 1.1), 20, seed=seed)
        return [picker.next() for _ in range(100)]

    assert draws(7) == draws(7) and draws(7) != draws(8)
