"""Tests of loadbench.sample.prometheus: the exposition-format parser, interval maths, and real scrapes.

Parsing and the counter/histogram maths run on exposition texts shaped like vLLM's, DCGM's
and OpenMetrics'; scrapes go through `httpx.MockTransport` where only the maths matters
and through a real HTTP server on loopback where the HTTP path does.
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from helpers import run_cli, serving

from loadbench.demo.server import make_server
from loadbench.errors import LoadbenchError, UsageError
from loadbench.protocols.exposition import Family, PrometheusParseError, Sample, parse_text, series_key
from loadbench.sample.prometheus import Scraper, histogram_quantile

VLLM = """\
# HELP vllm:num_requests_running Number of requests currently running on GPU.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="m"} 3.0
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{model_name="m"} 1000.0
# HELP vllm:prompt_tokens_created Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_created gauge
vllm:prompt_tokens_created{model_name="m"} 1.7185e+09
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{le="0.05",model_name="m"} 10.0
vllm:time_to_first_token_seconds_bucket{le="0.1",model_name="m"} 20.0
vllm:time_to_first_token_seconds_bucket{le="0.5",model_name="m"} 30.0
vllm:time_to_first_token_seconds_bucket{le="1.0",model_name="m"} 40.0
vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="m"} 50.0
vllm:time_to_first_token_seconds_count{model_name="m"} 50.0
vllm:time_to_first_token_seconds_sum{model_name="m"} 20.0
"""

DCGM = """\
# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-x",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="node-1"} 87
DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="GPU-y",device="nvidia1",modelName="NVIDIA H100 80GB HBM3",Hostname="node-1"} 0
"""

TTFT = "vllm:time_to_first_token_seconds"


def vllm_text(
    running: float = 3.0,
    prompt_tokens: float = 1000.0,
    buckets: tuple[float, float, float, float, float] = (10, 20, 30, 40, 50),
    ttft_sum: float = 20.0,
) -> str:
    """The VLLM text with its counter, gauge and cumulative TTFT buckets set."""
    bounds = ("0.05", "0.1", "0.5", "1.0", "+Inf")
    lines = [
        "# TYPE vllm:num_requests_running gauge",
        f'vllm:num_requests_running{{model_name="m"}} {running}',
        "# TYPE vllm:prompt_tokens_total counter",
        f'vllm:prompt_tokens_total{{model_name="m"}} {prompt_tokens}',
        f"# TYPE {TTFT} histogram",
        *(f'{TTFT}_bucket{{le="{b}",model_name="m"}} {c}' for b, c in zip(bounds, buckets, strict=True)),
        f'{TTFT}_count{{model_name="m"}} {buckets[-1]}',
        f'{TTFT}_sum{{model_name="m"}} {ttft_sum}',
    ]
    return "\n".join(lines) + "\n"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def mock_scraper(
    bodies: list[str], clock: FakeClock, match: str | None = None, status: int = 200
) -> tuple[Scraper, httpx.Client]:
    """A scraper whose client answers each GET with the next body (the last one repeats)."""
    queue = list(bodies)

    def handler(request: httpx.Request) -> httpx.Response:
        body = queue.pop(0) if len(queue) > 1 else queue[0]
        return httpx.Response(status, text=body)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    return Scraper("http://model:8000/metrics", match=match, client=client, clock=clock), client


# --- parsing -------------------------------------------------------------------------------


def test_parse_vllm_snippet_attaches_histogram_samples_to_their_family() -> None:
    families = parse_text(VLLM)
    assert set(families) == {
        "vllm:num_requests_running",
        "vllm:prompt_tokens_total",
        "vllm:prompt_tokens_created",
        TTFT,
    }
    running = families["vllm:num_requests_running"]
    assert running.type == "gauge"
    assert running.help == "Number of requests currently running on GPU."
    assert running.samples == [Sample("vllm:num_requests_running", (("model_name", "m"),), 3.0)]
    assert families["vllm:prompt_tokens_total"].type == "counter"
    assert families["vllm:prompt_tokens_created"].samples[0].value == 1.7185e9
    ttft = families[TTFT]
    assert ttft.type == "histogram"
    assert [s.name for s in ttft.samples] == [f"{TTFT}_bucket"] * 5 + [f"{TTFT}_count", f"{TTFT}_sum"]
    assert ttft.samples[4].labels == (("le", "+Inf"), ("model_name", "m"))
    assert ttft.samples[4].value == 50.0


def test_parse_dcgm_gauge() -> None:
    family = parse_text(DCGM)["DCGM_FI_DEV_GPU_UTIL"]
    assert family.type == "gauge"
    assert [s.value for s in family.samples] == [87.0, 0.0]
    assert dict(family.samples[0].labels) == {
        "gpu": "0",
        "UUID": "GPU-x",
        "device": "nvidia0",
        "modelName": "NVIDIA H100 80GB HBM3",
        "Hostname": "node-1",
    }


def test_label_escapes_commas_braces_and_spaces_inside_values() -> None:
    text = r'm{a="say \"hi\"",b="C:\\dir",c="two\nlines",d="x, y} z",e="#not a comment"} 1' + "\n"
    sample = parse_text(text)["m"].samples[0]
    assert dict(sample.labels) == {
        "a": 'say "hi"',
        "b": "C:\\dir",
        "c": "two\nlines",
        "d": "x, y} z",
        "e": "#not a comment",
    }
    # series_key escapes again, so the key is unambiguous and parses back to the same labels.
    key = series_key(sample.name, sample.labels)
    assert key == r'm{a="say \"hi\"",b="C:\\dir",c="two\nlines",d="x, y} z",e="#not a comment"}'
    assert parse_text(key + " 1\n")["m"].samples[0].labels == sample.labels


def test_special_values_and_scientific_notation() -> None:
    text = "a NaN\nb +Inf\nc -Inf\nd 1.5e-3\ne -2E+2\nf 7\ng Inf\n"
    values = {name: family.samples[0].value for name, family in parse_text(text).items()}
    assert math.isnan(values.pop("a"))
    assert values == {"b": math.inf, "c": -math.inf, "d": 0.0015, "e": -200.0, "f": 7.0, "g": math.inf}


def test_timestamps_integer_milliseconds_and_openmetrics_float_seconds() -> None:
    text = 'a{x="1"} 1 1700000000123\nb 2\nc 3 1700000000.5\nd{} 4 -5\n'
    stamps = {name: family.samples[0].timestamp_ms for name, family in parse_text(text).items()}
    assert stamps == {"a": 1700000000123, "b": None, "c": 1700000000500, "d": -5}


def test_untyped_families_and_empty_label_sets() -> None:
    text = """\
# A free comment, then a sample with no TYPE line
process_open_fds 12
# TYPE legacy untyped
legacy{} 3
# TYPE weird unknown
weird{a="1",} 4
"""
    families = parse_text(text)
    assert {name: f.type for name, f in families.items()} == {
        "process_open_fds": "untyped",
        "legacy": "untyped",
        "weird": "untyped",
    }
    assert families["legacy"].samples[0].labels == ()
    assert families["weird"].samples[0].labels == (("a", "1"),)


def test_summary_family_holds_quantiles_sum_and_count() -> None:
    text = """\
# HELP tgi_request_duration Request duration.
# TYPE tgi_request_duration summary
tgi_request_duration{quantile="0.5"} 0.25
tgi_request_duration{quantile="0.99"} 1.5
tgi_request_duration_sum 40.0
tgi_request_duration_count 100
"""
    family = parse_text(text)["tgi_request_duration"]
    assert family.type == "summary"
    assert [s.name for s in family.samples] == [
        "tgi_request_duration",
        "tgi_request_duration",
        "tgi_request_duration_sum",
        "tgi_request_duration_count",
    ]


def test_openmetrics_counter_suffixes_exemplars_and_eof() -> None:
    text = """\
# TYPE requests counter
# UNIT requests requests
# HELP requests Requests served.\\nSecond line, back\\\\slash.
requests_total{code="200"} 17 # {trace_id="abc"} 1.0 1700000000.0
requests_created{code="200"} 1.7e9
# TYPE latency histogram
latency_bucket{le="1.0"} 3 # {trace_id="def"} 0.7
latency_bucket{le="+Inf"} 4
latency_count 4
latency_sum 2.5
latency_created 1.7e9
# EOF
after_eof{ this is not even valid
"""
    families = parse_text(text)
    assert set(families) == {"requests", "latency"}
    requests = families["requests"]
    assert requests.help == "Requests served.\nSecond line, back\\slash."
    assert [(s.name, s.value) for s in requests.samples] == [
        ("requests_total", 17.0),
        ("requests_created", 1.7e9),
    ]
    latency = families["latency"]
    assert [s.name for s in latency.samples][:2] == ["latency_bucket", "latency_bucket"]
    assert latency.samples[0].value == 3.0


def test_whitespace_crlf_and_blank_lines_are_tolerated() -> None:
    text = '\r\n   \n\t# TYPE g gauge\r\n  g{a = "1" , b="2"}\t5  \r\n\n'
    family = parse_text(text)["g"]
    assert family.type == "gauge"
    assert family.samples == [Sample("g", (("a", "1"), ("b", "2")), 5.0)]


def test_parser_error_is_a_loadbench_error() -> None:
    assert issubclass(PrometheusParseError, LoadbenchError)


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("foo", "missing value"),
        ('foo{a="1"}', "missing value"),
        ("foo bar", "invalid value"),
        ("foo 1_000", "invalid value"),
        ("foo 1 2 3", "unexpected text"),
        ("foo 1 soon", "invalid timestamp"),
        ('foo{a="1} 1', "malformed label set"),
        ('foo{a="1" b="2"} 1', "expected ',' or '}'"),
        ("foo{a=1} 1", "malformed label set"),
        ('foo{1a="x"} 1', "malformed label set"),
        ("1foo 1", "expected a metric name"),
        ("foo-bar 1", "invalid character '-'"),
        ("# TYPE foo gauge_ish", "unknown metric type 'gauge_ish'"),
        ("# TYPE", "TYPE without a valid metric name"),
        ("# TYPE up counter", "second TYPE line for up"),
    ],
)
def test_malformed_line_names_its_line_number(line: str, fragment: str) -> None:
    text = f"# TYPE up gauge\nup 1\n\n{line}\nup 2\n"
    with pytest.raises(PrometheusParseError, match=r"^line 4: ") as info:
        parse_text(text)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_series_key_sorts_labels_and_drops_empty_braces() -> None:
    assert series_key("up", ()) == "up"
    assert series_key("vllm:x", (("model_name", "m"), ("engine", "0"))) == 'vllm:x{engine="0",model_name="m"}'


def test_family_defaults() -> None:
    assert Family("x", "gauge") == Family("x", "gauge", "", [])


# --- histogram_quantile ----------------------------------------------------------------------


def test_histogram_quantile_matches_hand_computed_values() -> None:
    # 20 observations: 1 in (0,0.05], 3 in (0.05,0.1], 12 in (0.1,0.5], 3 in (0.5,1], 1 above 1.
    buckets = [(0.05, 1.0), (0.1, 4.0), (0.5, 16.0), (1.0, 19.0), (math.inf, 20.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1 + 0.4 * (6 / 12))  # rank 10
    assert histogram_quantile(0.9, buckets) == pytest.approx(0.5 + 0.5 * (2 / 3))  # rank 18
    assert histogram_quantile(0.02, buckets) == pytest.approx(0.05 * 0.4)  # rank 0.4, first bucket
    # Rank 19.8 lies in the +Inf bucket: the answer is the highest finite bound.
    assert histogram_quantile(0.99, buckets) == 1.0
    # Order of the buckets does not matter.
    assert histogram_quantile(0.5, list(reversed(buckets))) == pytest.approx(0.3)


def test_histogram_quantile_edge_cases() -> None:
    assert histogram_quantile(0.5, [(1.0, 0.0), (math.inf, 0.0)]) is None  # no observations
    assert histogram_quantile(0.5, [(1.0, 3.0), (2.0, 4.0)]) is None  # no +Inf bucket
    assert histogram_quantile(0.5, [(math.inf, 4.0)]) is None  # nothing finite to interpolate in
    # A lowest bucket with a bound <= 0 answers its bound rather than interpolating from 0.
    assert histogram_quantile(0.1, [(-1.0, 5.0), (1.0, 10.0), (math.inf, 10.0)]) == -1.0
    # Non-monotonic counts (a non-atomic scrape) are flattened as Prometheus does.
    assert histogram_quantile(0.5, [(1.0, 6.0), (2.0, 5.0), (math.inf, 10.0)]) == pytest.approx(1.0 * 5 / 6)


def test_histogram_quantile_rejects_a_quantile_outside_0_1() -> None:
    with pytest.raises(ValueError, match="outside"):
        histogram_quantile(1.5, [(1.0, 1.0), (math.inf, 1.0)])
    assert histogram_quantile(0.0, [(1.0, 0.0), (2.0, 3.0), (math.inf, 3.0)]) == 0.0


# --- Scraper maths on mock transports ------------------------------------------------------------


def test_counter_becomes_rate_then_none_on_reset() -> None:
    clock = FakeClock()
    bodies = [vllm_text(prompt_tokens=p) for p in (1000, 1500, 1600, 200, 400)]
    scraper, client = mock_scraper(bodies, clock)
    key = 'prom.vllm:prompt_tokens_total_rate{model_name="m"}'
    with client:
        first = scraper.scrape()
        assert key in first and first[key] is None  # no previous scrape, no rate
        clock.now += 2.0
        assert scraper.scrape()[key] == pytest.approx(250.0)  # 500 tokens in 2 s
        clock.now += 0.5
        assert scraper.scrape()[key] == pytest.approx(200.0)  # 100 tokens in 0.5 s
        clock.now += 1.0
        assert scraper.scrape()[key] is None  # 1600 -> 200: the server restarted
        clock.now += 1.0
        assert scraper.scrape()[key] == pytest.approx(200.0)  # rates resume from the new base
    assert scraper.errors == 0
    assert scraper.last_error is None


def test_gauges_pass_through_and_created_gauges_are_dropped() -> None:
    clock = FakeClock()
    scraper, client = mock_scraper([VLLM + DCGM], clock)
    with client:
        out = scraper.scrape()
    assert out['prom.vllm:num_requests_running{model_name="m"}'] == 3.0
    dcgm = (
        'prom.DCGM_FI_DEV_GPU_UTIL{Hostname="node-1",UUID="GPU-x",device="nvidia0",'
        'gpu="0",modelName="NVIDIA H100 80GB HBM3"}'
    )
    assert out[dcgm] == 87.0
    assert not any("_created" in key for key in out)
    assert all(key.startswith("prom.") for key in out)


def test_histogram_interval_quantiles_rate_and_mean() -> None:
    clock = FakeClock()
    # Between scrapes 1 and 2: 1, 3, 12, 3 and 1 new observations in the five buckets
    # (cumulative deltas 1, 4, 16, 19, 20), summing to 6.4 s.
    bodies = [
        vllm_text(buckets=(10, 20, 30, 40, 50), ttft_sum=20.0),
        vllm_text(buckets=(11, 24, 46, 59, 70), ttft_sum=26.4),
        vllm_text(buckets=(11, 24, 46, 59, 70), ttft_sum=26.4),
        vllm_text(buckets=(11, 24, 46, 59, 71), ttft_sum=31.4),
    ]
    scraper, client = mock_scraper(bodies, clock)
    labels = '{model_name="m"}'
    with client:
        first = scraper.scrape()
        assert {first[f"prom.{TTFT}_{s}{labels}"] for s in ("p50", "p90", "p99", "rate", "mean")} == {None}
        assert not any("_bucket" in key or "le=" in key for key in first)

        clock.now += 2.0
        out = scraper.scrape()
        assert out[f"prom.{TTFT}_p50{labels}"] == pytest.approx(0.3)
        assert out[f"prom.{TTFT}_p90{labels}"] == pytest.approx(0.5 + 0.5 * 2 / 3)
        assert out[f"prom.{TTFT}_p99{labels}"] == 1.0  # in the +Inf bucket: highest finite bound
        assert out[f"prom.{TTFT}_rate{labels}"] == pytest.approx(10.0)  # 20 observations in 2 s
        assert out[f"prom.{TTFT}_mean{labels}"] == pytest.approx(6.4 / 20)

        clock.now += 1.0
        idle = scraper.scrape()  # nothing observed: a rate of zero, and no latency to speak of
        assert idle[f"prom.{TTFT}_rate{labels}"] == 0.0
        assert idle[f"prom.{TTFT}_mean{labels}"] is None
        assert idle[f"prom.{TTFT}_p50{labels}"] is None

        clock.now += 1.0
        slow = scraper.scrape()  # one 5 s request, above every finite bucket
        assert slow[f"prom.{TTFT}_p50{labels}"] == 1.0
        assert slow[f"prom.{TTFT}_mean{labels}"] == pytest.approx(5.0)


def test_histogram_reset_gives_none() -> None:
    clock = FakeClock()
    bodies = [vllm_text(buckets=(10, 20, 30, 40, 50)), vllm_text(buckets=(1, 2, 3, 4, 5), ttft_sum=1.0)]
    scraper, client = mock_scraper(bodies, clock)
    with client:
        scraper.scrape()
        clock.now += 1.0
        out = scraper.scrape()
    assert out[f'prom.{TTFT}_p50{{model_name="m"}}'] is None
    assert out[f'prom.{TTFT}_rate{{model_name="m"}}'] is None


def test_summary_quantiles_are_gauges_and_nan_becomes_none() -> None:
    def text(count: int, total: float, p50: str) -> str:
        return (
            "# TYPE tgi_request_duration summary\n"
            f'tgi_request_duration{{quantile="0.5",route="/generate"}} {p50}\n'
            f'tgi_request_duration_sum{{route="/generate"}} {total}\n'
            f'tgi_request_duration_count{{route="/generate"}} {count}\n'
            "# TYPE temperature gauge\n"
            "temperature NaN\n"
        )

    clock = FakeClock()
    scraper, client = mock_scraper([text(100, 40.0, "0.25"), text(110, 45.0, "NaN")], clock)
    with client:
        first = scraper.scrape()
        clock.now += 5.0
        second = scraper.scrape()
    assert first['prom.tgi_request_duration{quantile="0.5",route="/generate"}'] == 0.25
    assert second['prom.tgi_request_duration{quantile="0.5",route="/generate"}'] is None
    assert second['prom.tgi_request_duration_rate{route="/generate"}'] == pytest.approx(2.0)
    assert second['prom.tgi_request_duration_mean{route="/generate"}'] == pytest.approx(0.5)
    assert second["prom.temperature"] is None  # run-directory JSON has no NaN
    assert not any("_p50" in key for key in second)


def test_series_that_vanishes_starts_afresh_when_it_returns() -> None:
    clock = FakeClock()
    bodies = [vllm_text(prompt_tokens=100), DCGM, vllm_text(prompt_tokens=300)]
    scraper, client = mock_scraper(bodies, clock)
    key = 'prom.vllm:prompt_tokens_total_rate{model_name="m"}'
    with client:
        scraper.scrape()
        clock.now += 1.0
        assert key not in scraper.scrape()
        clock.now += 1.0
        assert scraper.scrape()[key] is None


def test_match_keeps_series_by_family_name_or_series_key() -> None:
    clock = FakeClock()
    with httpx.Client(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, text=VLLM + DCGM))
    ) as client:
        by_family = Scraper("http://h/metrics", match=r"^vllm:time_to", client=client, clock=clock).scrape()
        by_label = Scraper("http://h/metrics", match=r'gpu="1"', client=client, clock=clock).scrape()
        by_gauge = Scraper("http://h/metrics", match="running|GPU_UTIL", client=client, clock=clock).scrape()
    # A histogram is kept or dropped whole: its derived keys all come, and nothing else.
    assert sorted(by_family) == sorted(
        f'prom.{TTFT}_{s}{{model_name="m"}}' for s in ("rate", "mean", "p50", "p90", "p99")
    )
    assert list(by_label) == [
        'prom.DCGM_FI_DEV_GPU_UTIL{Hostname="node-1",UUID="GPU-y",device="nvidia1",'
        'gpu="1",modelName="NVIDIA H100 80GB HBM3"}'
    ]
    assert len(by_gauge) == 3


def test_bad_regex_is_a_usage_error_naming_it() -> None:
    with pytest.raises(UsageError, match=r"^bad metrics match regex 'vllm:\(': missing \)") as info:
        Scraper("http://127.0.0.1:9/metrics", match="vllm:(")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("url", ["", "localhost:8000/metrics", "ftp://h/metrics", "http://"])
def test_bad_url_is_a_usage_error(url: str) -> None:
    with pytest.raises(UsageError, match="bad metrics URL"):
        Scraper(url)


def test_failed_scrape_keeps_state_so_the_next_rate_spans_the_gap() -> None:
    clock = FakeClock()
    bodies = iter([vllm_text(prompt_tokens=0), "oops{", vllm_text(prompt_tokens=90)])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=next(bodies))

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        scraper = Scraper("http://h/metrics", client=client, clock=clock)
        scraper.scrape()
        clock.now += 1.0
        assert scraper.scrape() == {}
        assert scraper.errors == 1
        assert scraper.last_error is not None and "line 1:" in scraper.last_error
        clock.now += 2.0
        assert scraper.scrape()['prom.vllm:prompt_tokens_total_rate{model_name="m"}'] == pytest.approx(30.0)


def test_injected_client_is_not_closed() -> None:
    with httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, text="up 1\n"))) as client:
        with Scraper("http://h/metrics", client=client) as scraper:
            assert scraper.scrape() == {"prom.up": 1.0}
        assert not client.is_closed


# --- Scraper against real HTTP servers on loopback ---------------------------------------------


@contextmanager
def metrics_server(respond: Callable[[int], tuple[int, bytes]]) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """Serve ``respond(request number)`` on /metrics in a thread; yields the URL and request headers."""
    seen: list[dict[str, str]] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with lock:
                seen.append(dict(self.headers))
                status, body = respond(len(seen))
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/metrics", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_scrape_of_a_real_server_serving_changing_metrics() -> None:
    def respond(n: int) -> tuple[int, bytes]:
        # Each request adds 50 prompt tokens and 5 TTFT observations of 0.2 s.
        total = 5 * n
        text = vllm_text(
            running=float(n),
            prompt_tokens=50.0 * n,
            buckets=(0, 0, total, total, total),
            ttft_sum=0.2 * total,
        )
        return 200, (text + DCGM).encode()

    clock = FakeClock()
    with (
        metrics_server(respond) as (url, seen),
        Scraper(url, headers={"Authorization": "Bearer t"}, clock=clock) as scraper,
    ):
        first = scraper.scrape()
        clock.now += 0.5
        second = scraper.scrape()
    labels = '{model_name="m"}'
    assert first[f"prom.vllm:num_requests_running{labels}"] == 1.0
    assert second[f"prom.vllm:num_requests_running{labels}"] == 2.0
    assert second[f"prom.vllm:prompt_tokens_total_rate{labels}"] == pytest.approx(100.0)
    assert second[f"prom.{TTFT}_rate{labels}"] == pytest.approx(10.0)
    assert second[f"prom.{TTFT}_mean{labels}"] == pytest.approx(0.2)
    # All 5 new observations fall in (0.1, 0.5]: p50 interpolates to the middle of it.
    assert second[f"prom.{TTFT}_p50{labels}"] == pytest.approx(0.3)
    assert scraper.errors == 0
    assert seen[0]["Authorization"] == "Bearer t"
    assert "version=0.0.4" in seen[0]["Accept"]


def test_scrape_with_the_real_clock() -> None:
    def body(n: int) -> tuple[int, bytes]:
        return (
            200,
            f"# TYPE c counter\nc_total {n * 10}\n".encode(),
        )

    with metrics_server(body) as (url, _), Scraper(url) as scraper:
        assert scraper.scrape() == {"prom.c_total_rate": None}
        time.sleep(0.05)
        rate = scraper.scrape()["prom.c_total_rate"]
    assert rate is not None and 0 < rate < 10 / 0.05 * 1.01


def test_scrape_of_a_closed_port_does_not_raise() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with Scraper(f"http://127.0.0.1:{port}/metrics", timeout_s=2.0) as scraper:
        assert scraper.scrape() == {}
    assert scraper.errors == 1
    assert scraper.last_error is not None
    assert scraper.last_error.startswith(f"http://127.0.0.1:{port}/metrics is unreachable")
    assert "\n" not in scraper.last_error


def test_scrape_of_a_500_does_not_raise() -> None:
    with metrics_server(lambda n: (500, b"internal error\n")) as (url, _), Scraper(url) as scraper:
        assert scraper.scrape() == {}
        assert scraper.scrape() == {}
    assert scraper.errors == 2
    assert scraper.last_error == f"HTTP 500 from {url}"


def test_scrape_of_a_garbage_body_does_not_raise() -> None:
    body = b"<html>\n<body>Welcome to nginx!</body>\n</html>\n\xff\xfe"
    with metrics_server(lambda n: (200, body)) as (url, _), Scraper(url) as scraper:
        assert scraper.scrape() == {}
    assert scraper.errors == 1
    assert scraper.last_error is not None
    assert scraper.last_error.startswith(f"unparsable metrics from {url}: line 1: ")
    assert "\n" not in scraper.last_error


def test_scrape_that_times_out_does_not_raise() -> None:
    def respond(n: int) -> tuple[int, bytes]:
        time.sleep(0.5)
        return 200, b"up 1\n"

    with metrics_server(respond) as (url, _), Scraper(url, timeout_s=0.1) as scraper:
        assert scraper.scrape() == {}
    assert scraper.errors == 1
    assert scraper.last_error == f"{url} did not answer within 0.1 s"


@pytest.mark.e2e
def test_loadbench_run_with_scrape_puts_the_series_in_the_summary(tmp_path: Path) -> None:
    """`loadbench run --scrape URL` end to end: a real run, a real metrics server on loopback."""

    def respond(n: int) -> tuple[int, bytes]:
        return (
            200,
            f"# TYPE demo_requests counter\ndemo_requests_total {n * 10}\n# TYPE up gauge\nup 1\n".encode(),
        )

    out = tmp_path / "run"
    # The demo paced (5 ms an answer): the scrapes are the subject, not the load; two unpaced users
    # and the demo (a thread of this process) would keep both cores busy for the 3 s.
    with serving(make_server(port=0, latency_ms=5)) as demo_url, metrics_server(respond) as (url, seen):
        result = run_cli(
            "run", "--target", demo_url, "-u", "2", "-d", "3s", "--warmup", "0s", "--sample-interval", "0.2",
            "--scrape", url, "--scrape-interval", "0.5", "-q", "-o", str(out),
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(seen) >= 4  # scraped every 0.5 s for about 3 s
    summary = json.loads((out / "summary.json").read_text())
    prom = summary["resources"]["prometheus"]
    assert prom["up"] == {"mean": 1.0, "p95": 1.0, "max": 1.0}
    rate = prom["demo_requests_total_rate"]
    assert rate["mean"] is not None and 10 < rate["mean"] < 34  # 10 per scrape, about 0.5 s apart: ~20/s
    assert not any(n.startswith("--scrape ") for n in summary["resources"]["notices"])
    (scrape,) = json.loads((out / "sampler.json").read_text())["final"]["scrapes"]
    assert scrape["url"] == url and scrape["errors"] == 0 and scrape["series_max"] == 2
