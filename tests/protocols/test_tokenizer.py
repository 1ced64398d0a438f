"""Prompt tokens counted by ``--tokenizer`` (loadbench.protocols.tokenizer) with a tokenizer built
offline (tests/tiny_tokenizer.py): exact for completions and chat, refused when it cannot be."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_tokenizer import BOS, build, count

from loadbench.errors import UsageError
from loadbench.protocols.tokenizer import load_prompt_counter


def test_a_completions_prompt_counts_as_the_model_encodes_it(tmp_path: Path) -> None:
    path = build(tmp_path / "model")
    counter = load_prompt_counter(str(path), "completions")
    prompt = "the quick brown fox tells a story"
    counted = counter.count({"prompt": prompt})
    # The special tokens the model's post-processor adds (its BOS) are prompt tokens too.
    assert counted == count(path, prompt, special=True) == count(path, prompt, special=False) + 1
    assert counter.count({"prompt": ["a batch", "of prompts"]}) is None
    # The folder works as well as the file.
    assert load_prompt_counter(str(tmp_path / "model"), "completions").count({"prompt": prompt}) == counted


def test_a_chat_prompt_counts_through_the_models_chat_template(tmp_path: Path) -> None:
    path = build(tmp_path / "model")
    counter = load_prompt_counter(str(path), "chat")
    messages = [{"role": "user", "content": "hello world"}]
    # The template writes the BOS itself: encoded without adding special tokens, as servers do.
    rendered = f"{BOS}[INST] hello world [/INST]"
    assert counter.count({"messages": messages}) == count(path, rendered, special=False)
    longer = [*messages, {"role": "assistant", "content": "a story"}, {"role": "user", "content": "another"}]
    assert counter.count({"messages": longer}) > counter.count({"messages": messages})
    # A conversation the template refuses cannot be counted: unknown, not a guess.
    assert counter.count({"messages": [{"role": "tool", "content": "x"}]}) is None
    assert counter.count({"prompt": "no messages"}) is None


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "no such file"),
        ("not-json", "not a Hugging Face tokenizer.json"),
        ("no-template", "no chat template beside it"),
        ("bad-template", "the chat template does not compile"),
    ],
)
def test_what_cannot_count_exactly_is_refused_in_one_line(tmp_path: Path, setup: str, message: str) -> None:
    folder = tmp_path / "model"
    if setup == "not-json":
        folder.mkdir()
        (folder / "tokenizer.json").write_text("{not a tokenizer")
    elif setup == "no-template":
        build(folder, chat_template=None)
    elif setup == "bad-template":
        build(folder, chat_template="{% for %}")
    with pytest.raises(UsageError, match=message) as caught:
        load_prompt_counter(str(folder), "chat")
    assert "\n" not in str(caught.value)


def test_completions_need_no_chat_template(tmp_path: Path) -> None:
    path = build(tmp_path / "model", chat_template=None)
    assert load_prompt_counter(str(path), "completions").count({"prompt": "hello"}) == count(
        path, "hello", True
    )
