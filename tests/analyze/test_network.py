"""Tests of loadbench.analyze.network (breakdown, request phases) and loadbench.protocols.bodies (bodies,
checks, templates): pure functions, plus a real httpx HTTP/2 trace on loopback. The round trip
(`loadbench.drive.rtt`) is tested in tests/drive/test_rtt.py."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import REPO

from loadbench.analyze import network
from loadbench.errors import ScenarioError, UsageError
from loadbench.protocols.bodies import (
    Template,
    embedding_problem,
    predict_answer_key,
    predict_body,
    usage_tokens,
)

# --- breakdown -------------------------------------------------------------------------------


def test_latency_breakdown() -> None:
    got = network.latency_breakdown({"rtt_ms_median": 2.0, "rtt_ms_min": 1.5}, 10.0)
    assert got is not None
    assert (got["network_rtt_ms"], got["server_ms_p50"], got["network_share_p50"]) == (2.0, 8.0, 0.2)


@pytest.mark.parametrize(
    ("net", "p50"),
    [
        (None, 10.0),
        ({"rtt_ms_median": 1.0}, None),
        ({"rtt_ms_median": 1.0}, 0.0),
        ({"rtt_ms_median": "x"}, 5.0),
    ],
)
def test_latency_breakdown_without_the_figures(net: Any, p50: float | None) -> None:
    assert network.latency_breakdown(net, p50) is None


def test_latency_breakdown_never_negative() -> None:
    got = network.latency_breakdown({"rtt_ms_median": 12.0}, 10.0)
    assert got is not None and got["server_ms_p50"] == 0.0 and got["network_share_p50"] == 1.0


# --- request phases --------------------------------------------------------------------------


def test_request_phases_of_a_new_connection() -> None:
    events = [
        ("connection.connect_tcp.started", 1.000),
        ("connection.connect_tcp.complete", 1.001),
        ("connection.start_tls.started", 1.001),
        ("connection.start_tls.complete", 1.004),
        ("http2.send_request_headers.started", 1.004),
        ("http2.receive_response_headers.started", 1.005),
        ("http2.receive_response_headers.complete", 1.010),
        ("http2.receive_response_body.started", 1.010),
        ("http2.receive_response_body.complete", 1.012),
    ]
    assert network.request_phases(events, sent=1.000) == {
        "connect_ms": 4.0,
        "ttfb_ms": 10.0,
        "download_ms": 2.0,
    }


def test_request_phases_of_a_reused_connection() -> None:
    events = [
        ("http11.receive_response_headers.complete", 0.003),
        ("http11.receive_response_body.started", 0.003),
        ("http11.receive_response_body.complete", 0.0035),
    ]
    assert network.request_phases(events, sent=0.0) == {"connect_ms": 0.0, "ttfb_ms": 3.0, "download_ms": 0.5}


def test_request_phases_from_a_real_http2_trace(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "h2_server.py"), str(tmp_path / "log.jsonl")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        phases = []
        with httpx.Client(base_url=url, http1=False, http2=True, trust_env=False) as client:
            for _ in range(2):
                events: list[tuple[str, float]] = []
                sent = time.perf_counter()
                response = client.post(
                    "/predict",
                    content=b"{}",
                    extensions={
                        "trace": lambda event, _info, seen=events: seen.append((event, time.perf_counter()))
                    },
                )
                latency_ms = (time.perf_counter() - sent) * 1000
                assert response.http_version == "HTTP/2"
                phases.append((network.request_phases(events, sent), latency_ms))
    finally:
        process.terminate()
        process.communicate(timeout=10)
    (first, _), (second, _) = phases
    assert first["connect_ms"] > 0 and second["connect_ms"] == 0  # the second reused the connection
    for got, latency_ms in phases:
        assert set(got) == {"connect_ms", "ttfb_ms", "download_ms"}
        assert got["connect_ms"] <= got["ttfb_ms"] <= latency_ms
        assert 0 <= got["download_ms"] <= latency_ms


# --- protocols -------------------------------------------------------------------------------


def test_predict_body_and_answer_key() -> None:
    assert predict_body([1, 2]) == {"instances": [[1, 2]]}
    assert predict_body({"instances": [1]}) == {"instances": [1]}
    assert predict_body({"inputs": {"x": [1]}}) == {"inputs": {"x": [1]}}
    assert predict_body({"x": 1}) == {"instances": [{"x": 1}]}
    assert predict_answer_key({"instances": [1]}) == "predictions"
    assert predict_answer_key({"inputs": [1]}) == "outputs"


def test_embedding_problem() -> None:
    assert embedding_problem({"data": [{"embedding": [0.1, 2]}]}) is None
    assert "no data[0]" in str(embedding_problem({"data": []}))
    assert "not a non-empty list" in str(embedding_problem({"data": [{"embedding": "AAAA"}]}))
    assert "finite numbers" in str(embedding_problem({"data": [{"embedding": [0.1, None]}]}))
    assert "finite numbers" in str(embedding_problem({"data": [{"embedding": [True]}]}))
    assert usage_tokens({"usage": {"prompt_tokens": 7}}) == 7
    assert usage_tokens({"usage": {"prompt_tokens": -1}}) is None
    assert usage_tokens({}) is None


def test_template_types_and_escaping() -> None:
    template = Template('{"a": "{{x}}", "b": "text {{x}} and {{y}}", "{{y}}": ["{{y}}", 1]}')
    assert template.fields == ["x", "y"]
    row = {"x": 'quote " back\\slash\nline', "y": [1, {"k": "v"}]}
    filled = template.fill(row)
    assert filled == {
        "a": 'quote " back\\slash\nline',
        "b": 'text quote " back\\slash\nline and [1,{"k":"v"}]',
        '[1,{"k":"v"}]': [[1, {"k": "v"}], 1],
    }
    assert json.loads(json.dumps(filled)) == filled  # values cannot break out of their strings
    assert Template('{"n": "{{ n }}"}').fill({"n": 3.5}) == {"n": 3.5}


def test_template_errors() -> None:
    with pytest.raises(UsageError, match="placeholders go inside strings"):
        Template('{"inputs": {{text}}}')
    with pytest.raises(UsageError, match="names no"):
        Template('{"inputs": "text"}')
    with pytest.raises(ScenarioError, match="no field 'text'"):
        Template('{"inputs": "{{text}}"}').fill({"other": 1})
    with pytest.raises(ScenarioError, match="not a JSON object"):
        Template('{"inputs": "{{text}}"}').fill([1])


def test_phase_summaries_of_http2_records() -> None:
    import numpy as np
    import pandas as pd

    from loadbench.analyze.network import phase_summaries

    frame = pd.DataFrame(
        {
            "connect_ms": [5.0, 0.0, 0.0, 7.0, np.nan],
            "ttfb_ms": [10.0, 2.0, 3.0, 12.0, np.nan],
            "download_ms": [1.0, 1.0, 2.0, 2.0, np.nan],
        }
    )
    out = phase_summaries(frame)
    assert out["new_connections"] == 2
    assert out["connect_ms"]["p50"] == 6.0  # over the two requests that opened a connection
    assert out["ttfb_ms"]["max"] == 12.0 and out["download_ms"]["mean"] == 1.5
    assert phase_summaries(frame.assign(ttfb_ms=np.nan)) == {}
    assert phase_summaries(frame.drop(columns="ttfb_ms")) == {}
