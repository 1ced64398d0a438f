"""Conformance against a real llama-cpp-python server (`server_llamacpp`): what discovery finds,
streamed and non-streamed chat and completions with their token timings and counts, and the
server's default interrupting mode, whose cut streams loadbench must count as failures.

Every figure is checked against what the server itself answers to a plain client for the same
request (temperature 0 on the same prompt: the same tokens), never against the machine's
speed. Loads are 1 to 6 users for a few seconds, to 127.0.0.1 only.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from helpers import read_json, run_cli
from server_llamacpp import LlamaCppServer, start_llamacpp

from loadbench.protocols.workloads import DEFAULT_PROMPT
from loadbench.record.columnar import read_run_requests

pytestmark = [pytest.mark.real, pytest.mark.real_heavy]

MAX_TOKENS = 16
QUIET = ("--no-sampler", "--quiet")
TOKENS = ("--max-tokens", str(MAX_TOKENS))
TWO_USERS = ("-u", "2", "--warmup", "1s", *QUIET, *TOKENS)
PATHS = {"openai_chat": "/v1/chat/completions", "openai_completions": "/v1/completions"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaCppServer]:
    """The server with ``--interrupt_requests false``: requests queue for the model instead."""
    with start_llamacpp(tmp_path_factory.mktemp("llamacpp")) as started:
        yield started


@pytest.fixture(scope="module")
def interrupting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaCppServer]:
    """The server as it starts by default: a waiting request cuts the stream being generated."""
    with start_llamacpp(tmp_path_factory.mktemp("llamacpp-interrupting"), interrupt_requests=True) as started:
        yield started


# --- what the server itself says, to a plain client -------------------------------------------


def body_for(scenario: str, model: str, *, stream: bool, max_tokens: int = MAX_TOKENS) -> dict[str, Any]:
    """The body loadbench's scenario sends by default (`loadbench.scenario.llm.request_body`)."""
    body: dict[str, Any] = {"model": model, "temperature": 0.0, "max_tokens": max_tokens, "stream": stream}
    if scenario == "openai_chat":
        body["messages"] = [{"role": "user", "content": DEFAULT_PROMPT}]
    else:
        body["prompt"] = DEFAULT_PROMPT
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def post_json(url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


@dataclass
class Stream:
    """One streamed answer as the wire carried it: status, and each ``data:`` payload."""

    status: int = 0
    events: list[Any] = field(default_factory=list)  # parsed JSON, or the string "[DONE]"

    @property
    def chunks(self) -> list[dict[str, Any]]:
        return [e for e in self.events if isinstance(e, dict)]

    @property
    def done(self) -> bool:
        return "[DONE]" in self.events

    @property
    def finish_reasons(self) -> list[str]:
        return [
            c["finish_reason"] for e in self.chunks for c in e.get("choices", []) if c.get("finish_reason")
        ]

    def texts(self, scenario: str) -> list[str]:
        """The text of each event that carried some: what loadbench counts as content events."""
        out = []
        for event in self.chunks:
            choice = (event.get("choices") or [{}])[0]
            text = (
                (choice.get("delta") or {}).get("content")
                if scenario == "openai_chat"
                else choice.get("text")
            )
            if text:
                out.append(text)
        return out


def stream(url: str, path: str, body: dict[str, Any]) -> Stream:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = connection.getresponse()
        result = Stream(response.status)
        for line in response.read().decode().splitlines():
            if line.startswith("data:"):
                data = line[5:].strip()
                result.events.append(data if data == "[DONE]" else json.loads(data))
        return result
    finally:
        connection.close()


# --- loadbench against it ----------------------------------------------------------------------


@dataclass
class Run:
    code: int
    output: str
    summary: dict[str, Any]
    meta: dict[str, Any]
    records: pd.DataFrame


def loadbench(url: str, out: Path, *args: str) -> Run:
    result = run_cli("run", "--target", url, "--out", str(out), *args, timeout=240)
    assert (out / "summary.json").is_file(), result.stdout + result.stderr
    return Run(
        result.returncode,
        result.stdout + result.stderr,
        read_json(out / "summary.json"),
        read_json(out / "meta.json"),
        read_run_requests(out),
    )


def gaps(records: pd.DataFrame) -> list[list[float]]:
    return [[float(v) for v in str(text).split()] for text in records["itl_ms"].fillna("")]


@pytest.mark.e2e
def test_discovery_picks_openai_chat_and_the_model_it_lists(server: LlamaCppServer, tmp_path: Path) -> None:
    listed = json.loads(urllib.request.urlopen(f"{server.url}/v1/models", timeout=30).read())
    # llama-cpp-python lists its one model under its --model_alias, by default the GGUF's path.
    assert [m["id"] for m in listed["data"]] == [str(server.model_path)]
    run = loadbench(
        server.url, tmp_path / "run", "-u", "1", "-d", "3s", "--warmup", "0s", "--no-sampler", *TOKENS
    )
    assert run.code == 0, run.output
    assert "chosen by probing the target: GET /v1/models listed 1 OpenAI-style model(s)" in run.output
    assert (
        f"loadbench: openai_chat: model {server.model_path}, the first GET /v1/models lists\n" in run.output
    )
    assert run.meta["scenario"] == "openai_chat", run.meta.get("scenario")
    assert run.summary["requests"]["errors"] == 0 and run.summary["requests"]["ok"] >= 1


@pytest.mark.e2e
@pytest.mark.parametrize("scenario", ["openai_chat", "openai_completions"])
def test_streams_are_timed_token_by_token(server: LlamaCppServer, tmp_path: Path, scenario: str) -> None:
    model = str(server.model_path)
    # The server's own answer to the same request: every answer is MAX_TOKENS word pieces (the
    # model cannot generate an end of sequence, server_llamacpp), one event each.
    plain = stream(server.url, PATHS[scenario], body_for(scenario, model, stream=True))
    assert plain.status == 200 and plain.done and plain.finish_reasons == ["length"]
    assert len(plain.texts(scenario)) == MAX_TOKENS
    usage = post_json(server.url, PATHS[scenario], body_for(scenario, model, stream=False))["usage"]
    assert usage["completion_tokens"] == MAX_TOKENS
    # It ignores stream_options.include_usage: a stream carries no usage, so loadbench counts.
    assert not any("usage" in event and event["usage"] for event in plain.chunks)

    run = loadbench(server.url, tmp_path / "run", "--scenario", scenario, "-d", "5s", *TWO_USERS)
    assert run.code == 0, run.output
    records, summary = run.records, run.summary
    assert summary["requests"]["errors"] == 0 and summary["requests"]["ok"] >= 4, summary["requests"]
    assert records["ok"].all(), records["error"].unique()
    assert (records["tokens_source"] == "counted").all()
    assert (records["output_tokens"] == usage["completion_tokens"]).all(), records["output_tokens"].unique()
    assert records["ttft_ms"].notna().all() and (records["ttft_ms"] > 0).all()
    each = gaps(records)
    assert all(len(g) == MAX_TOKENS - 1 and min(g) >= 0 for g in each)
    assert (records["latency_ms"] >= records["ttft_ms"] + [sum(g) for g in each] - 0.01).all()
    assert summary["ttft_ms"]["p50"] > 0 and summary["itl_ms"]["mean"] > 0 and summary["tpot_ms"]["mean"] > 0
    assert summary["tokens"]["output_total"] == MAX_TOKENS * summary["requests"]["ok"]


@pytest.mark.e2e
def test_a_shared_prefix_is_split_into_uncached_and_cached_time_to_first_token(
    server: LlamaCppServer, tmp_path: Path
) -> None:
    # llama-cpp-python keeps the last prompt's evaluated tokens and evaluates only what differs:
    # one user's requests after the first share the system prompt with the one before.
    run = loadbench(
        server.url, tmp_path / "run", "--scenario", "openai_chat", "--shared-prefix-tokens", "300",
        "-u", "1", "-d", "4s", "--warmup", "1s", "--no-preflight", "--cold-start", "3", *QUIET, *TOKENS,
    )  # fmt: skip
    assert run.code == 0, run.output
    prefix = run.summary["shared_prefix"]
    assert prefix["tokens"] == 300 and run.meta["settings"]["workload"]["shared_prefix_tokens"] == 300
    # One user: only the run's first request was sent before any first token came back.
    assert prefix["first"]["count"] == 1 and prefix["later"]["count"] >= 2, prefix
    assert prefix["first"]["ttft_ms"]["p50"] == run.records.sort_values("start_unix_s")["ttft_ms"].iloc[0]
    assert run.summary["cold_start"]["requests"] == 3 and run.summary["cold_start"]["errors"] == 0


@pytest.mark.e2e
@pytest.mark.parametrize("scenario", ["openai_chat", "openai_completions"])
def test_non_streamed_answers_take_usage(server: LlamaCppServer, tmp_path: Path, scenario: str) -> None:
    body = body_for(scenario, str(server.model_path), stream=False)
    usage = post_json(server.url, PATHS[scenario], body)["usage"]
    run = loadbench(
        server.url, tmp_path / "run", "--scenario", scenario, "--no-stream", "-d", "4s", *TWO_USERS
    )
    assert run.code == 0, run.output
    records = run.records
    assert run.summary["requests"]["errors"] == 0 and run.summary["requests"]["ok"] >= 4
    assert records["ok"].all() and (records["tokens_source"] == "usage").all()
    assert (records["output_tokens"] == usage["completion_tokens"]).all()
    assert (records["input_tokens"] == usage["prompt_tokens"]).all()
    assert records["ttft_ms"].isna().all()


# --- the interrupting mode (llama-cpp-python's default) -----------------------------------------


def test_a_waiting_request_cuts_the_stream_to_a_role_chunk(interrupting: LlamaCppServer) -> None:
    """The server's own words: a long non-streamed request holds the model; two streams queue
    behind it. When the first of them gets the model it sends its role chunk, sees the other
    waiting, and ends: HTTP 200, the role chunk, ``data: [DONE]``. The last, with no one behind
    it, gets its whole answer."""
    model, path = str(interrupting.model_path), PATHS["openai_chat"]
    results: dict[str, Any] = {}

    def send(name: str, body: dict[str, Any]) -> None:
        results[name] = (
            stream(interrupting.url, path, body)
            if body["stream"]
            else post_json(interrupting.url, path, body)
        )

    # About 3 s of generation here (the server's Python work per token grows with the answer).
    hold = threading.Thread(
        target=send, args=("hold", body_for("openai_chat", model, stream=False, max_tokens=1000))
    )
    hold.start()
    threads = [hold]
    for name in ("a", "b"):
        time.sleep(0.2)  # queued behind the held model, one after the other
        threads.append(
            threading.Thread(target=send, args=(name, body_for("openai_chat", model, stream=True)))
        )
        threads[-1].start()
    for thread in threads:
        thread.join(timeout=120)
    assert results["hold"]["choices"][0]["finish_reason"] == "length"
    cut, whole = sorted((results["a"], results["b"]), key=lambda s: len(s.events))
    assert cut.status == whole.status == 200
    assert cut.done and not cut.finish_reasons and not cut.texts("openai_chat")
    assert [e["choices"][0]["delta"] for e in cut.chunks] == [{"role": "assistant"}]
    assert whole.done and whole.finish_reasons == ["length"] and len(whole.texts("openai_chat")) == MAX_TOKENS


# Long answers: one that started alone is still cut when the next request comes, so none can
# succeed, however late a loaded client sends its next request.
INTERRUPTED_TOKENS = 256


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("scenario", "most"),
    [
        # A chat stream cut at its role event is empty; one cut later carried some content.
        ("openai_chat", "empty stream"),
        # A completions stream's first event is its first token: every cut one has content.
        ("openai_completions", "cut stream"),
    ],
)
def test_interrupted_streams_are_failures_never_goodput_and_exit_3(
    interrupting: LlamaCppServer, tmp_path: Path, scenario: str, most: str
) -> None:
    run = loadbench(
        interrupting.url, tmp_path / "run", "--scenario", scenario, "-u", "6", "-r", "60", "-d", "6s",
        "--warmup", "1s", "--slo", "ttft<30s", "--max-tokens", str(INTERRUPTED_TOKENS), *QUIET,
    )  # fmt: skip
    assert run.code == 3, run.output
    summary = run.summary
    assert summary["requests"]["ok"] == 0 and summary["requests"]["total"] >= 10, summary["requests"]
    counts = {e["kind"]: e["count"] for e in summary["errors"]}
    assert set(counts) <= {"empty stream", "cut stream"} and max(counts, key=counts.__getitem__) == most, (
        counts
    )
    if scenario == "openai_completions":
        assert "empty stream" not in counts
    assert summary["goodput"]["requests"] == 0 and summary["validity"]["valid"] is False
    measured = run.records[run.records["start_unix_s"] >= summary["window"]["start_unix_s"]]
    # HTTP 200 every time: only the stream's content tells the cut apart.
    assert (measured["status"] == 200).all() and not measured["ok"].any()
    assert (measured["output_tokens"] < INTERRUPTED_TOKENS).all()
    empty = measured[measured["error"] == "CatchResponseError: empty stream"]
    assert (empty["output_tokens"] == 0).all() and empty["ttft_ms"].isna().all()
    cut = measured[measured["error"] == "CatchResponseError: cut stream"]
    assert (cut["output_tokens"] >= 1).all() and cut["ttft_ms"].notna().all()
