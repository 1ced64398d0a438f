"""The LLM workloads' repeat structure (``--distinct``, ``--popularity``) and shared prefix
(``--shared-prefix-tokens``), in `loadbench.protocols.workloads`."""

from __future__ import annotations

import argparse
from collections import Counter

import pytest

from loadbench.errors import UsageError
from loadbench.protocols.workloads import (
    VOCABULARY,
    add_workload_options,
    shared_prefix,
    workload_from_options,
)


def options(*argv: str, **control: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_workload_options(parser)
    parsed = parser.parse_args(list(argv))
    for name, value in {"distinct": None, "popularity": None, "seed": None, **control}.items():
        setattr(parsed, name, value)
    return parsed


def test_distinct_varies_the_prompt_and_popularity_picks_among_them() -> None:
    w = workload_from_options(options("--prompt", "hi", distinct=4, popularity="zipf:1.5", seed=2), None)
    assert [i.prompt for i in w.items or []] == ["hi", "hi (variant 1)", "hi (variant 2)", "hi (variant 3)"]
    sent = Counter(w.next().prompt for _ in range(2000))
    assert set(sent) <= {i.prompt for i in w.items or []}
    assert sent.most_common(1)[0][0] == "hi"  # rank 1 the most sent


def test_distinct_with_synthetic_prompts_makes_k_of_them_once() -> None:
    w = workload_from_options(options("--input-tokens", "6", distinct=3), None)
    prompts = {w.next().prompt for _ in range(30)}
    assert len(prompts) == 3 and all(len((p or "").split()) == 6 for p in prompts)
    with pytest.raises(UsageError, match="add --distinct K"):
        workload_from_options(options("--input-tokens", "6", popularity="uniform"), None)


def test_rows_are_left_as_the_payloads_varied_them() -> None:
    rows = [{"prompt": "a"}, {"prompt": "b"}]
    w = workload_from_options(options(distinct=2, popularity="repeat:0.5"), rows)
    assert [i.prompt for i in w.items or []] == ["a", "b"]
    assert w.picker is not None


def test_a_shared_prefix_is_n_words_the_same_for_a_seed() -> None:
    prefix = shared_prefix(50, 0)
    assert len(prefix.split()) == 50 and all(word in VOCABULARY for word in prefix.split())
    assert shared_prefix(50, 0) == prefix and shared_prefix(50, 1) != prefix
    assert shared_prefix(0, 0) == ""


def test_a_shared_prefix_counted_by_a_tokenizer_fits_n_tokens() -> None:
    def two_per_word(text: str) -> int:
        return 1 + 2 * len(text.split())  # a BOS, and two tokens a word

    assert len(shared_prefix(21, 0, two_per_word).split()) == 10
    assert len(shared_prefix(20, 0, lambda text: None).split()) == 20  # cannot count: words


def test_a_negative_shared_prefix_is_refused() -> None:
    with pytest.raises(UsageError, match="--shared-prefix-tokens must be 0 or more"):
        workload_from_options(options("--shared-prefix-tokens", "-1"), None)
