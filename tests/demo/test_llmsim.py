"""The demo's LLM simulator (loadbench.demo.llmsim inside loadbench.demo.server), over real HTTP."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from helpers import serving

from loadbench.demo import llmsim
from loadbench.demo.server import make_server
from loadbench.protocols import probe
from loadbench.protocols.sse import SSEParser


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with serving(make_server(port=0, llm_ttft_ms=20, llm_itl_ms=5)) as base:
        yield base


def stream_events(url: str, path: str, body: dict) -> tuple[list[dict], SSEParser, float]:
    parser = SSEParser()
    start = time.perf_counter()
    with httpx.stream("POST", url + path, json={**body, "stream": True}, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        events = [e for chunk in response.iter_raw() for e in parser.feed(chunk)]
    return [json.loads(e.data) for e in events if not e.is_done], parser, time.perf_counter() - start


def test_models_and_labelling(url: str) -> None:
    body = httpx.get(url + "/v1/models").json()
    assert [m["id"] for m in body["data"]] == [llmsim.MODEL_ID] == [probe.SIMULATOR_MODEL]
    answer = httpx.post(url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "a b"}]})
    reply = answer.json()
    assert reply["model"] == reply["system_fingerprint"] == llmsim.MODEL_ID
    assert reply["usage"] == {"prompt_tokens": 2, "completion_tokens": 64, "total_tokens": 66}
    assert len(reply["choices"][0]["message"]["content"].split()) == 64


def test_stream_chat_with_usage(url: str) -> None:
    body = {
        "messages": [{"role": "user", "content": "x y z"}],
        "max_tokens": 10,
        "stream_options": {"include_usage": True},
    }
    events, parser, elapsed = stream_events(url, "/v1/chat/completions", body)
    content = [
        e["choices"][0]["delta"]["content"]
        for e in events
        if e["choices"] and e["choices"][0]["delta"].get("content")
    ]
    assert len(content) == 10 and events[-1]["usage"]["completion_tokens"] == 10
    assert parser.done and parser.malformed_lines == 0
    assert elapsed >= 0.020 + 9 * 0.005  # the first token after 20 ms, then one every 5 ms


def test_stream_completions_without_usage_and_capped(url: str) -> None:
    events, parser, _ = stream_events(
        url, "/v1/completions", {"prompt": "hi", "max_tokens": 5000, "model": llmsim.MODEL_ID}
    )
    assert parser.done and all("usage" not in e for e in events)
    assert len([e for e in events if e["choices"][0]["text"]]) == llmsim.MAX_TOKENS


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/chat/completions", {"messages": []}, 400),
        ("/v1/completions", {"prompt": 3}, 400),
        ("/v1/completions", {"prompt": "x", "max_tokens": 0}, 400),
        ("/v1/completions", {"prompt": "x", "model": "gpt-9"}, 404),
    ],
)
def test_bad_requests(url: str, path: str, body: dict, status: int) -> None:
    response = httpx.post(url + path, json=body)
    assert response.status_code == status and "message" in response.json()["error"]


def test_many_concurrent_streams(url: str) -> None:
    # http.client, not httpx: a client per thread must cost less than the stream it measures.
    port = int(url.rsplit(":", 1)[1])

    def one(_: int) -> tuple[bool, float]:
        started = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        body = json.dumps({"prompt": "go", "max_tokens": 20, "stream": True})
        connection.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
        parser = SSEParser()
        parser.feed(connection.getresponse().read())
        connection.close()
        return parser.done, time.perf_counter() - started

    start = time.perf_counter()
    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(one, range(32)))
    elapsed = time.perf_counter() - start
    # One stream takes 20 + 19 x 5 = 115 ms; 32 side by side, nowhere near the 32 streams' sum
    # (one after another, all of them would take at least that sum).
    assert all(done for done, _ in results)
    assert min(took for _, took in results) >= 0.020 + 19 * 0.005
    assert elapsed < sum(took for _, took in results) / 4


def test_probe_still_benchmarks_the_demos_real_model(url: str) -> None:
    result = probe.probe_target(url)
    assert result.scenario == "kserve_v2"
