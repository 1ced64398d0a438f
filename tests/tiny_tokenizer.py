"""A tiny Hugging Face tokenizer built offline for the ``--tokenizer`` tests: a BPE trained on a
few sentences (no download), whose post-processor adds a BOS token like a real model's, saved as
``tokenizer.json`` with a ``tokenizer_config.json`` holding a chat template (Llama-2-like:
``<s>[INST] ... [/INST]``) unless asked for none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

tokenizers = pytest.importorskip("tokenizers", reason="the --tokenizer tests need loadbench[tokenizer]")

BOS, EOS = "<s>", "</s>"
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}[INST] {{ message['content'] }} [/INST]"
    "{% elif message['role'] == 'assistant' %} {{ message['content'] }}{{ eos_token }}"
    "{% else %}{{ raise_exception('unknown role ' + message['role']) }}{% endif %}"
    "{% endfor %}"
)
SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "hello world, tell me a story about a model server",
    "[INST] and [/INST] mark a user's turn",
]


def build(folder: Path, chat_template: str | None = CHAT_TEMPLATE) -> Path:
    """Write ``tokenizer.json`` (and ``tokenizer_config.json`` with ``chat_template``) into
    ``folder``; returns the tokenizer.json's path."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["[UNK]", BOS, EOS])
    tokenizer.train_from_iterator(SENTENCES * 5, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", special_tokens=[(BOS, tokenizer.token_to_id(BOS))]
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tokenizer.json"
    tokenizer.save(str(path))
    config: dict[str, object] = {"bos_token": BOS, "eos_token": {"content": EOS}}
    if chat_template is not None:
        config["chat_template"] = chat_template
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return path


def count(path: Path, text: str, special: bool) -> int:
    """What the tokenizer at ``path`` counts in ``text`` (special tokens added or not)."""
    from tokenizers import Tokenizer

    return len(Tokenizer.from_file(str(path)).encode(text, add_special_tokens=special).ids)
