"""LLM workloads (loadbench.protocols.workloads): seeded length distributions, prompts, ShareGPT files."""

from __future__ import annotations

import argparse
import json
import random
import statistics
from pathlib import Path

import pytest

from loadbench.errors import UsageError
from loadbench.protocols.workloads import (
    VOCABULARY,
    LengthSpec,
    Workload,
    add_workload_options,
    items_from_rows,
    read_sharegpt,
    synthetic_prompt,
    workload_from_options,
)


def options(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_workload_options(parser)
    return parser.parse_args(list(argv))


def test_fixed_uniform_normal_lengths() -> None:
    rng = random.Random(1)
    assert {LengthSpec(100).sample(rng) for _ in range(50)} == {100}
    uniform = [LengthSpec(100, "uniform", 20).sample(rng) for _ in range(4000)]
    assert min(uniform) == 80 and max(uniform) == 120
    assert abs(statistics.mean(uniform) - 100) < 1.5
    normal = [LengthSpec(100, "normal", 10).sample(rng) for _ in range(4000)]
    assert abs(statistics.mean(normal) - 100) < 1.0 and abs(statistics.stdev(normal) - 10) < 1.0
    assert min(LengthSpec(2, "normal", 50).sample(rng) for _ in range(500)) == 1  # never below 1


def test_synthetic_workload_is_seeded_and_sized() -> None:
    def run(seed: int) -> list[tuple[str | None, int | None]]:
        w = workload_from_options(
            options("--input-tokens", "50", "--input-dist", "uniform", "--output-tokens", "20",
                    "--output-dist", "normal", "--output-spread", "4", "--workload-seed", str(seed)),
            None,
        )  # fmt: skip
        return [(i.prompt, i.max_tokens) for i in (w.next() for _ in range(200))]

    first, again, other = run(3), run(3), run(4)
    assert first == again and first != other
    lengths = [len((p or "").split()) for p, _ in first]
    assert min(lengths) >= 38 and max(lengths) <= 62  # default spread: N/4 = 12.5
    assert len(set(p for p, _ in first)) == 200  # every prompt differs: no prefix-cache benchmark
    assert all(w in VOCABULARY for p, _ in first for w in (p or "").split())
    assert abs(statistics.mean(m or 0 for _, m in first) - 20) < 1.5


def test_default_prompt_and_trace_overrides() -> None:
    w = workload_from_options(options("--prompt", "hello there", "--max-tokens", "9"), None)
    assert w.next() == w.next()
    item = w.next()
    assert item.prompt == "hello there" and item.max_tokens == 9
    traced = w.next(input_tokens=30, output_tokens=5)
    assert len((traced.prompt or "").split()) == 30 and traced.max_tokens == 5
    assert len(synthetic_prompt(7, random.Random(0)).split()) == 7


def test_rows_round_robin_with_their_own_fields() -> None:
    rows = [
        {"prompt": "a", "max_tokens": 3, "top_p": 0.5},
        {"messages": [{"role": "user", "content": "b"}]},
        "c",
    ]
    w = workload_from_options(options("--output-tokens", "11"), rows)
    got = [w.next() for _ in range(4)]
    assert got[0].prompt == "a" and got[0].max_tokens == 3 and got[0].fields == {"top_p": 0.5}
    assert got[1].messages == rows[1]["messages"] and got[1].max_tokens == 11  # type: ignore[index]
    assert got[2].prompt == "c" and got[3].prompt == "a"
    with pytest.raises(UsageError, match="row 2 has neither"):
        items_from_rows([{"prompt": "x"}, {"text": "y"}])
    with pytest.raises(UsageError, match="max_tokens must be a positive integer"):
        items_from_rows([{"prompt": "x", "max_tokens": 0}])


def test_sharegpt(tmp_path: Path) -> None:
    path = tmp_path / "share.json"
    data = [
        {"id": "1", "conversations": [{"from": "human", "value": "What is a load test?"},
                                      {"from": "gpt", "value": "It measures a service under load ok"}]},
        {"id": "2", "conversations": [{"from": "gpt", "value": "no human first"}]},
        {"id": "3", "conversations": [{"from": "system", "value": "sys"}, {"from": "user", "value": "Hi"},
                                      {"from": "assistant", "value": "Hello"}, {"from": "human", "value": "later"}]},
        {"id": "4"},
        "junk",
    ]  # fmt: skip
    path.write_text(json.dumps(data))
    items = read_sharegpt(path)
    assert [(i.prompt, i.max_tokens) for i in items] == [("What is a load test?", 7), ("Hi", 1)]
    w = workload_from_options(options("--sharegpt", str(path), "--output-tokens", "99"), None)
    assert [w.next().max_tokens for _ in range(3)] == [7, 1, 7]  # the answer's length wins


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("{not json", "is not JSON"),
        ('{"conversations": []}', "is not a JSON list"),
        ('[{"conversations": [{"from": "gpt", "value": "x"}]}]', "holds no conversation"),
    ],
)
def test_bad_sharegpt_files_are_one_line_usage_errors(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UsageError, match=message) as info:
        read_sharegpt(path)
    assert "\n" not in str(info.value)


def test_option_conflicts() -> None:
    with pytest.raises(UsageError, match="not with --data"):
        workload_from_options(options("--input-tokens", "5"), [{"prompt": "x"}])
    with pytest.raises(UsageError, match="--sharegpt or --data"):
        workload_from_options(options("--sharegpt", "x.json"), [{"prompt": "x"}])
    with pytest.raises(UsageError, match="--output-tokens must be at least 1"):
        workload_from_options(options("--output-tokens", "0"), None)
    with pytest.raises(UsageError, match="no requests"):
        Workload([])
