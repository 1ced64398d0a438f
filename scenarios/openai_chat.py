"""OpenAI-compatible chat completions (vLLM, TGI, llama.cpp, Ollama): POST ``/v1/chat/completions``.

    loadbench run --target URL --scenario openai_chat [--model NAME] [--prompt TEXT | --data FILE.jsonl]
    locust -f scenarios/openai_chat.py --host URL [same options]

Non-streaming for now. The model comes from ``--model`` or the first one ``GET /v1/models``
lists. ``--data`` lines are either full request bodies (``{"messages": [...]}``, merged over
the defaults) or ``{"prompt": "..."}``. A response is a success when it is JSON with a
``choices`` list.
"""

from __future__ import annotations

from typing import Any

from locust import events, task

from loadbench.probe import discover_openai_model
from loadbench.scenario import (
    ModelUser,
    Payloads,
    add_request_options,
    check_json,
    headers_from_options,
    on_setup,
    tls_verify,
)

MODEL: str = ""
PAYLOADS: Payloads | None = None


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--model", default=None, help="model name (default: the first from GET /v1/models)")
    parser.add_argument("--prompt", default="Write one sentence about load testing.", help="user message")
    parser.add_argument("--max-tokens", type=int, default=64, help="max_tokens per request (default 64)")
    parser.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (default 0)")
    add_request_options(parser)


def chat_body(row: Any, options: Any, model: str) -> dict[str, Any]:
    """A chat completion request from a data row (full body, or ``{"prompt": ...}``) and the options."""
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": options.max_tokens,
        "temperature": options.temperature,
        "stream": False,
    }
    if isinstance(row, dict) and "messages" in row:
        body.update(row)
    else:
        prompt = row.get("prompt", options.prompt) if isinstance(row, dict) else str(row)
        body["messages"] = [{"role": "user", "content": prompt}]
    return body


@on_setup
def _load(environment: Any) -> None:
    global MODEL, PAYLOADS
    options = environment.parsed_options
    MODEL = options.model or discover_openai_model(
        environment.host, headers_from_options(options), tls_verify(options)
    )
    rows = Payloads.from_options(options, default=[{"prompt": options.prompt}])
    PAYLOADS = Payloads([chat_body(row, options, MODEL) | extras for row, extras in rows.items])


class OpenAIChatUser(ModelUser):
    @task
    def chat(self) -> None:
        assert PAYLOADS is not None
        body, _ = PAYLOADS.next()
        arrival = getattr(self, "loadbench_arrival", None)  # a replayed trace's row, if any
        if arrival is not None and arrival.output_tokens:
            body = {**body, "max_tokens": arrival.output_tokens}
        with self.client.post(
            "/v1/chat/completions",
            json=body,
            headers=self.headers,
            name="/v1/chat/completions",
            catch_response=True,
        ) as response:
            check_json(response, "choices")
