"""OpenAI-compatible text completions (vLLM, TGI, llama.cpp): POST ``/v1/completions`` with a prompt.

    loadbench run --target URL --scenario openai_completions [--model NAME] [--no-stream]
        [--prompt TEXT | --input-tokens N | --data FILE.jsonl | --sharegpt FILE.json]
        [--output-tokens N] [--ignore-eos]
    locust -f scenarios/openai_completions.py --host URL [same options]

The same as ``openai_chat`` (streamed and timed per token by default, `loadbench.scenario.llm`), for the
raw completions API: no chat template, so ``--input-tokens`` is closer to the prompt tokens the
server counts. ``--data`` lines are ``{"prompt": "..."}``.
"""

from __future__ import annotations

from typing import Any

from locust import events

import loadbench.ui.hook  # noqa: F401 - loadbench's tab in plain locust's web UI
from loadbench.scenario import LLMUser, add_llm_user_options, on_setup


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    add_llm_user_options(parser)


class OpenAICompletionsUser(LLMUser):
    kind = "completions"


@on_setup
def _load(environment: Any) -> None:
    OpenAICompletionsUser.set_up(environment)
