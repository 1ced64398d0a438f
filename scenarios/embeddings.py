"""OpenAI-compatible embeddings (vLLM, TEI, llama.cpp, Ollama): POST ``/v1/embeddings``.

    loadbench run --target URL --scenario embeddings [--model NAME] [--input TEXT | --data FILE.jsonl]
    locust -f scenarios/embeddings.py --host URL [same options]

The model comes from ``--model`` or the first one ``GET /v1/models`` lists. (The probe cannot
tell an embeddings server from a chat server, whose model lists look alike: name this scenario.)
``--data`` lines are full bodies (``{"input": ...}``, merged over the defaults), or any other
JSON value, used as the input. A response is a success when ``data[0].embedding`` is a
non-empty list of numbers; ``usage.prompt_tokens`` goes to the ``input_tokens`` column
(``tokens_source`` ``usage``).
"""

from __future__ import annotations

from typing import Any

from locust import events, task

import loadbench.ui.hook  # noqa: F401 - loadbench's tab in plain locust's web UI
from loadbench.protocols.bodies import embedding_problem, usage_tokens
from loadbench.protocols.probe import discover_openai_model
from loadbench.scenario import (
    ModelUser,
    Payloads,
    add_extras,
    add_request_options,
    check_json,
    headers_from_options,
    on_setup,
    tls_verify,
)
from loadbench.scenario.helpers import payload_context

PAYLOADS: Payloads | None = None


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--model", default=None, help="model name (default: the first from GET /v1/models)")
    parser.add_argument("--input", default="loadbench measures how fast this sentence is embedded.")
    add_request_options(parser)


def embeddings_body(row: Any, model: str, default_input: str) -> dict[str, Any]:
    """An embeddings request from a data row (a full body, or the input itself)."""
    if isinstance(row, dict) and "input" in row:
        return {"model": model, **row}
    return {"model": model, "input": default_input if row is None else row}


@on_setup
def _load(environment: Any) -> None:
    global PAYLOADS
    options = environment.parsed_options
    model = options.model or discover_openai_model(
        environment.host, headers_from_options(options), tls_verify(options)
    )
    rows = Payloads.from_options(options, default=[options.input])
    PAYLOADS = rows.with_bodies(
        [embeddings_body(row, model, options.input) | extras for row, extras in rows.items]
    )


class EmbeddingsUser(ModelUser):
    @task
    def embed(self) -> None:
        assert PAYLOADS is not None
        body, meta = PAYLOADS.next()
        with self.client.post(
            "/v1/embeddings",
            json=body,
            headers=self.headers,
            name="/v1/embeddings",
            catch_response=True,
            context=payload_context(meta),
        ) as response:
            answer = check_json(response, "data")
            if answer is None:
                return
            problem = embedding_problem(answer)
            if problem:
                response.failure(problem)
                return
            tokens = usage_tokens(answer)
            if tokens is not None:
                add_extras(response, input_tokens=tokens, input_tokens_source="usage")
