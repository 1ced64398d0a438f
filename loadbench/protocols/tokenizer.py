"""Prompt tokens counted by loadbench (``--tokenizer PATH``), for servers that send no ``usage``.

PATH is a Hugging Face ``tokenizer.json`` or the folder that holds it (a model's folder), read
with the ``tokenizers`` package, an optional dependency (``pip install 'loadbench[tokenizer]'``).
Nothing is downloaded. A count is exact or absent, never estimated (docs/metrics.md, "Token
counts"):

- ``/v1/completions``: the prompt encoded as the model's tokenizer encodes it, special tokens
  included (the BOS its post-processor adds counts, as in the ``prompt_tokens`` of vLLM and TGI);
- ``/v1/chat/completions``: the messages rendered through the model's chat template with the
  generation prompt, then encoded without adding special tokens (the template writes them), as
  transformers' ``apply_chat_template`` and vLLM count them. The template is the
  ``chat_template`` of ``tokenizer_config.json`` beside ``tokenizer.json`` (or a
  ``chat_template.jinja`` there); without one a chat prompt cannot be counted exactly, so
  `load_prompt_counter` refuses it. The template runs in jinja2's sandbox, as in transformers.

No Locust, no network.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from loadbench.errors import UsageError

TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "tokenizer_config.json"
TEMPLATE_FILE = "chat_template.jinja"
INSTALL_HINT = "pip install 'loadbench[tokenizer]'"
# What a chat template is handed besides the messages, from tokenizer_config.json (as transformers does).
_SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
_PROBE = [{"role": "user", "content": "hello"}]


@dataclass(frozen=True)
class PromptCounter:
    """Counts the prompt tokens of one endpoint kind's requests (`count`)."""

    path: Path
    count: Callable[[dict[str, Any]], int | None]  # a request body -> its prompt tokens, None: cannot say


def load_prompt_counter(path_text: str, kind: Literal["chat", "completions"]) -> PromptCounter:
    """The counter for ``--tokenizer PATH`` and requests of ``kind``; bad input: one-line `UsageError`."""
    tokenizer_path = _tokenizer_file(Path(path_text))
    tokenizer = _load_tokenizer(tokenizer_path, path_text)
    if kind == "completions":
        return PromptCounter(tokenizer_path, lambda body: _count_prompt(tokenizer, body))
    template = _chat_template(tokenizer_path.parent, path_text)
    extras = _template_tokens(tokenizer_path.parent)
    if _render(template, _PROBE, extras) is None:
        raise UsageError(f"--tokenizer {path_text}: the model's chat template fails on a plain user message")
    return PromptCounter(tokenizer_path, lambda body: _count_chat(tokenizer, template, extras, body))


def _tokenizer_file(path: Path) -> Path:
    if path.is_dir():
        path = path / TOKENIZER_FILE
    if not path.is_file():
        raise UsageError(f"--tokenizer {path}: no such file (give a tokenizer.json or the folder holding it)")
    return path


def _load_tokenizer(path: Path, shown: str) -> Any:
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise UsageError(f"--tokenizer needs the tokenizers package: {INSTALL_HINT}") from None
    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:  # the Rust library's own error type: any of them means not a tokenizer
        detail = " ".join(str(exc).split())[:120]
        raise UsageError(f"--tokenizer {shown}: not a Hugging Face tokenizer.json ({detail})") from None


def _config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG_FILE
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"--tokenizer: cannot read {path}: {exc}") from None
    return config if isinstance(config, dict) else {}


def _chat_template(folder: Path, shown: str) -> jinja2.Template:
    source = _config(folder).get("chat_template")
    if isinstance(source, list):  # several named templates: the default one
        source = next(
            (t.get("template") for t in source if isinstance(t, dict) and t.get("name") == "default"), None
        )
    if not isinstance(source, str) and (folder / TEMPLATE_FILE).is_file():
        source = (folder / TEMPLATE_FILE).read_text(encoding="utf-8")
    if not isinstance(source, str) or not source.strip():
        raise UsageError(
            f"--tokenizer {shown}: no chat template beside it ({CONFIG_FILE} chat_template or "
            f"{TEMPLATE_FILE}): a chat prompt's tokens depend on it; give the model's folder"
        )
    environment = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    environment.filters["tojson"] = _tojson
    environment.globals["raise_exception"] = _raise_exception
    environment.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        return environment.from_string(source)
    except jinja2.TemplateError as exc:
        raise UsageError(f"--tokenizer {shown}: the chat template does not compile: {exc}") from None


def _template_tokens(folder: Path) -> dict[str, Any]:
    """The special tokens a template may write (``{{ bos_token }}``), as their text."""
    config = _config(folder)
    out: dict[str, Any] = {}
    for name in _SPECIAL_TOKENS:
        value = config.get(name)
        if isinstance(value, dict):  # transformers' AddedToken form
            value = value.get("content")
        if isinstance(value, str):
            out[name] = value
    return out


def _tojson(
    value: Any, ensure_ascii: bool = False, indent: int | None = None, sort_keys: bool = False
) -> str:
    # transformers' filter: jinja2's own escapes HTML characters, which a prompt must keep.
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, sort_keys=sort_keys)


def _raise_exception(message: str) -> None:
    raise jinja2.TemplateError(message)


def _render(template: jinja2.Template, messages: Any, extras: dict[str, Any]) -> str | None:
    try:
        return template.render(messages=messages, add_generation_prompt=True, **extras)
    except (jinja2.TemplateError, TypeError, ValueError, KeyError, AttributeError, IndexError):
        return None  # a conversation this template refuses (e.g. roles that do not alternate)


def _count_prompt(tokenizer: Any, body: dict[str, Any]) -> int | None:
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        return None  # a batch or token-id prompt: not one text to count
    return len(tokenizer.encode(prompt, add_special_tokens=True).ids)


def _count_chat(
    tokenizer: Any, template: jinja2.Template, extras: dict[str, Any], body: dict[str, Any]
) -> int | None:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    text = _render(template, messages, extras)
    if text is None:
        return None
    return len(tokenizer.encode(text, add_special_tokens=False).ids)
