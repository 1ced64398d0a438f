"""A model's context length where an LLM server says it (vLLM's /v1/models, llama.cpp's /props)."""

from __future__ import annotations

from typing import Any

from helpers import json_server

from loadbench.protocols.llmcontext import Context, context_in_models, context_in_props, model_context


def test_the_context_said_in_a_model_list_or_props() -> None:
    models = {"data": [{"id": "a", "max_model_len": 4096}, {"id": "b"}]}
    assert context_in_models(models, "a") == 4096
    assert context_in_models(models, "b") is None and context_in_models(models, "c") is None
    assert context_in_models({"data": [{"id": "a", "max_model_len": True}]}, "a") is None
    assert context_in_props({"default_generation_settings": {"n_ctx": 2048}}) == 2048
    assert context_in_props({"n_ctx": 512}) == 512
    assert context_in_props({"n_ctx": -1}) is None and context_in_props([]) is None


def test_the_server_is_asked_its_models_then_its_props() -> None:
    def llama(handler: Any, state: dict[str, Any]) -> tuple[int, Any]:
        if handler.path == "/v1/models":
            return 200, {"data": [{"id": "m"}]}
        return (
            (200, {"default_generation_settings": {"n_ctx": 1024}}) if handler.path == "/props" else (404, {})
        )

    with json_server(llama) as (url, _):
        assert model_context(url, "m") == Context(1024, "GET /props n_ctx")
    with json_server(lambda handler, state: (404, {"error": "no"})) as (url, _):
        assert model_context(url, "m") is None  # unknown: never a guess
    assert model_context("http://127.0.0.1:9", "m") is None  # unreachable: the load will say so
