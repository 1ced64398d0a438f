"""OpenAI-compatible chat completions (vLLM, TGI, llama.cpp, Ollama): POST ``/v1/chat/completions``.

    loadbench run --target URL --scenario openai_chat [--model NAME] [--no-stream]
        [--prompt TEXT | --input-tokens N [--input-dist uniform --input-spread S] | --data FILE.jsonl
         | --sharegpt FILE.json] [--output-tokens N [--output-dist normal]] [--ignore-eos]
    locust -f scenarios/openai_chat.py --host URL [same options]

Streams by default (SSE, with ``stream_options.include_usage``): each request's time to first
token, every inter-token gap and its token counts are recorded (`loadbench.scenario.llm`). The model
comes from ``--model`` or the first one ``GET /v1/models`` lists. ``--data`` lines are
``{"messages": [...]}`` or ``{"prompt": "..."}``, other keys sent as request fields; the
workload options are in `loadbench.protocols.workloads`. A replayed trace's ``input_tokens`` and
``output_tokens`` set the prompt length and ``max_tokens``.
"""

from __future__ import annotations

from typing import Any

from locust import events

import loadbench.ui.hook  # noqa: F401 - loadbench's tab in plain locust's web UI
from loadbench.scenario import LLMUser, add_llm_user_options, on_setup


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    add_llm_user_options(parser)


class OpenAIChatUser(LLMUser):
    kind = "chat"


@on_setup
def _load(environment: Any) -> None:
    OpenAIChatUser.set_up(environment)
