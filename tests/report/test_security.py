"""Security, end to end: what a server says is data in the reports, and TLS is verified unless
``--insecure`` says otherwise.

- A hostile server answers with script-injection payloads everywhere its words can reach a
  report: error text (a scenario check quoting the body), request names (taken from a JSON
  answer and from a response header), Prometheus series scraped during the run, and the probe's
  reason for choosing a scenario. `report.html` is then opened in real headless Chromium: the
  page must keep its title, show every payload as text, and hold no element a payload made.
- A real HTTPS server with a self-signed certificate: refused by default (exit 2, one line),
  accepted with ``--insecure``, which every report then warns about.

Needs the ``chromium`` and ``openssl`` commands: skipped without them, except under CI (``$CI``
set), where `.ci/run` installs them and their absence is a failure.
"""

from __future__ import annotations

import html
import json
import re
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    DIGITS,
    PWNED,
    REPO,
    assert_inert_in_chromium,
    parse_page,
    read_json,
    require_executable,
    run_chromium,
    run_cli,
    serving,
)
from helpers import SCRIPT_PAYLOADS as PAYLOADS
from run_text import files_text
from tls import self_signed_cert, tls_serving

from loadbench.demo.server import make_server
from loadbench.protocols.exposition import series_key

pytestmark = pytest.mark.e2e

# Response headers are Latin-1: this one travels in a header.
HEADER_PAYLOAD = "\"><svg/onload=document.title='PWNED'><x y=\""

LOCUSTFILE = '''
"""A scenario that trusts its server too much: names requests and words errors with its answers."""

from __future__ import annotations

from locust import FastHttpUser, constant, task


class TrustingUser(FastHttpUser):
    wait_time = constant(0.005)  # paced: what the server says is the subject, not the load

    def on_start(self) -> None:
        response = self.client.get("/names", name="GET /names")
        self.names = [*response.json()["names"], response.headers["X-Model-Name"]]
        self.sent = 0

    @task
    def predict(self) -> None:
        name = self.names[self.sent % len(self.names)]
        self.sent += 1
        if self.sent % 20 == 0:
            raise ValueError(f"the server named a model {name}")  # a scenario exception, in the notices
        with self.client.post(
            "/predict", json={"n": self.sent}, name=f"POST {name}", catch_response=True
        ) as response:
            text = (response.text or "")[:200]
            if response.status_code == 200 and "outputs" not in text:
                response.failure(f"server said: {text}")
            elif response.status_code == 503:
                response.failure(f"server said: HTTP 503 {text}")
            # other error statuses: Locust's own failure
'''


# ---------------------------------------------------------------------------------------------
# Tools


@pytest.fixture(scope="module")
def chromium() -> str:
    return require_executable("chromium", "chromium")


@pytest.fixture(scope="module")
def openssl() -> str:
    return require_executable("openssl", "openssl")


def markdown_rows(markdown: str) -> list[list[str]]:
    """The tables of a Markdown document as lists of cells.

    Like GitHub's cmark-gfm, any pipe right after a backslash is part of the cell (its cell
    scanner takes the longest match of ``(escaped_char|[^|])+``, so even ``\\\\|`` stays in).
    """
    return [re.split(r"(?<!\\)\|", line)[1:-1] for line in markdown.splitlines() if line.startswith("|")]


# ---------------------------------------------------------------------------------------------
# A hostile server


def exposition_value(value: str) -> str:
    """A Prometheus label value as written in the text format."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


METRICS = "".join(
    [
        f"# HELP evil_metric {exposition_value(PAYLOADS[0])}\n",
        "# TYPE evil_metric gauge\n",
        *(f'evil_metric{{payload="{exposition_value(p)}",i="{i}"}} {i}\n' for i, p in enumerate(PAYLOADS)),
    ]
)
METRIC_KEYS = [series_key("evil_metric", (("i", str(i)), ("payload", p))) for i, p in enumerate(PAYLOADS)]


@contextmanager
def hostile_server() -> Iterator[str]:
    """Answers with payloads: in JSON names, a header, error bodies, reason phrases and metrics.

    ``POST /predict`` cycles: a good answer; a 200 whose body is a payload (the scenario's
    check quotes it); a 503 whose JSON error is a payload (the server's message, which the
    recorder keeps); a 500 with a payload as its body and its reason phrase.
    ``GET /v2`` names the server with a payload, for the probe.
    """
    lock = threading.Lock()
    count = [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def answer(self, status: int, body: str, content_type: str = "text/html", reason: str = "") -> None:
            data = body.encode()
            self.send_response(status, reason or None)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Model-Name", HEADER_PAYLOAD)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/names":
                self.answer(200, json.dumps({"names": PAYLOADS}), "application/json")
            elif self.path == "/metrics":
                self.answer(200, METRICS, "text/plain; version=0.0.4")
            elif self.path == "/v2":
                self.answer(
                    200, json.dumps({"name": PAYLOADS[1], "version": PAYLOADS[0]}), "application/json"
                )
            else:
                self.answer(404, PAYLOADS[0])

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                n = count[0]
                count[0] += 1
            payload = PAYLOADS[(n // 4) % len(PAYLOADS)]
            if n % 4 == 0:
                self.answer(200, json.dumps({"outputs": [{"data": [1]}]}), "application/json")
            elif n % 4 == 1:
                self.answer(200, payload)
            elif n % 4 == 2:
                self.answer(503, json.dumps({"error": payload}), "application/json")
            else:
                self.answer(500, payload, reason=HEADER_PAYLOAD)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.handle_error = lambda request, client_address: None  # clients hang up when a run ends
    with serving(server) as url:
        yield url


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `loadbench run` of a trusting scenario against the hostile server, scraping its metrics."""
    folder = tmp_path_factory.mktemp("hostile")
    locustfile = folder / "trusting.py"
    locustfile.write_text(LOCUSTFILE, encoding="utf-8")
    out = folder / "run"
    with hostile_server() as url:
        result = run_cli(
            "run", "--target", url, "--scenario", str(locustfile), "-u", "2", "-d", "2s", "--warmup", "0s",
            "--quiet", "--out", str(out), "--scrape", f"{url}/metrics", "--scrape-interval", "0.5s",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


# ---------------------------------------------------------------------------------------------
# Reports


def test_hostile_run_carries_payloads_into_the_summary(hostile_run: Path) -> None:
    # The payloads really reached the run's data: otherwise the report tests below prove nothing.
    summary = read_json(hostile_run / "summary.json")
    names = set(summary["by_name"])
    assert {f"POST {p}" for p in [*PAYLOADS, HEADER_PAYLOAD]} <= names
    examples = " ".join(str(e["example"]) for e in summary["errors"])
    kinds = {str(e["kind"]) for e in summary["errors"]}
    assert "HTTP 503" in kinds and "HTTP 500" in kinds
    assert any(k.startswith("server said: ") for k in kinds)
    assert any(f"server said: {p}" in examples for p in PAYLOADS)
    # The 503's JSON error is the server's message, kept as it was sent.
    said = {e.get("server_message") for e in summary["errors"] if e["kind"] == "HTTP 503"}
    assert said & set(PAYLOADS)
    assert any("the scenario raised" in n for n in summary["notices"])
    prometheus = summary["resources"]["prometheus"]
    assert set(METRIC_KEYS) <= {k.removeprefix("prom.") for k in prometheus}


def test_report_shows_server_payloads_as_text_in_chromium(
    hostile_run: Path, chromium: str, tmp_path: Path
) -> None:
    summary = read_json(hostile_run / "summary.json")
    shown = [f"POST {p}" for p in [*PAYLOADS, HEADER_PAYLOAD]]  # request names, in full
    shown += [str(e["example"]) for e in summary["errors"]]  # error text quoting the server
    shown += [str(e["server_message"]) for e in summary["errors"] if "server_message" in e]  # its words
    shown += METRIC_KEYS  # scraped series
    # The scenario's exceptions, quoting the server; INVALID reasons show in the verdict banner.
    shown += [str(n).removeprefix("INVALID: ") for n in summary["notices"]]
    dom = assert_inert_in_chromium(hostile_run / "report.html", chromium, tmp_path / "profile", shown)
    assert "server said: " in dom.text


def test_chromium_check_catches_an_unescaped_payload(
    hostile_run: Path, chromium: str, tmp_path: Path
) -> None:
    # The check above is only worth something if a payload that slipped through would run and be
    # seen: put one raw payload into a copy of the report and watch it rename the page.
    source = (hostile_run / "report.html").read_text(encoding="utf-8")
    escaped = html.escape(f"POST {PAYLOADS[1]}", quote=True)
    assert escaped in source
    broken = tmp_path / "broken.html"
    broken.write_text(source.replace(escaped, f"POST {PAYLOADS[1]}", 1), encoding="utf-8")
    result = run_chromium(
        chromium, tmp_path / "profile", "--virtual-time-budget=3000", "--dump-dom", broken.as_uri()
    )
    assert parse_page(result.stdout).title == PWNED
    with pytest.raises(AssertionError):
        assert_inert_in_chromium(broken, chromium, tmp_path / "profile", [])


def test_report_screenshot_renders(hostile_run: Path, chromium: str, tmp_path: Path) -> None:
    png = tmp_path / "report.png"
    run_chromium(
        chromium, tmp_path / "profile", f"--screenshot={png}", "--window-size=1280,2400", "--hide-scrollbars",
        (hostile_run / "report.html").as_uri(),
    )  # fmt: skip
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1280, 2400)  # IHDR: width, height
    assert len(data) > 10_000  # a blank page of that size is about 7 kB


def test_summary_markdown_keeps_its_tables_and_escapes_payloads(hostile_run: Path) -> None:
    markdown = (hostile_run / "summary.md").read_text(encoding="utf-8")
    # No raw markup: GitHub would render some of it.
    for tag in ("<script", "<img", "<svg", "<iframe", "<a ", "<b ", "</textarea", "</title", "<style"):
        assert tag not in markdown.lower(), tag
    # A pipe in server text is escaped, so every row keeps its table's column count.
    assert "\\| col \\|" in markdown
    tables: list[list[list[str]]] = []
    previous = ""
    for line in markdown.splitlines():
        if line.startswith("|") and not previous.startswith("|"):
            tables.append([])
        if line.startswith("|"):
            tables[-1].append(markdown_rows(line)[0])
        previous = line
    assert len(tables) >= 3  # metrics, requests by name, top errors
    for rows in tables:
        assert all(len(r) == len(rows[0]) for r in rows), rows


def test_summary_markdown_shows_server_links_and_images_as_text(hostile_run: Path) -> None:
    markdown = (hostile_run / "summary.md").read_text(encoding="utf-8")
    assert "![" not in markdown
    assert not re.search(r"(?<!\\)\]\(", markdown)


def test_probe_reason_from_server_is_text_in_chromium(chromium: str, tmp_path: Path) -> None:
    # The server's self-description ends up in the report's "scenario" row: the probe quotes it.
    out = tmp_path / "run"
    payload = json.dumps({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]})
    with hostile_server() as url:
        result = run_cli(
            "run", "--target", url, "--model", "m", "--payload", payload, "-u", "1", "-d", "1s",
            "--warmup", "0s", "--quiet", "--no-sampler", "--out", str(out),
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    meta = read_json(out / "meta.json")
    assert meta["scenario"] == "kserve_v2"
    assert PAYLOADS[1] in meta["scenario_reason"]
    assert_inert_in_chromium(out / "report.html", chromium, tmp_path / "profile", [meta["scenario_reason"]])


# ---------------------------------------------------------------------------------------------
# TLS


@pytest.fixture(scope="module")
def tls_demo(openssl: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo endpoint over HTTPS with a self-signed certificate for 127.0.0.1. TLS, not
    throughput, is the subject: 5 ms a request, and 5 ms before each new connection's handshake
    (a client that refuses the certificate tries again on a new one at once), so a user sends a
    couple of hundred a second instead of keeping this process (the server's threads) and the
    client a core each busy."""
    cert, key = self_signed_cert(openssl, tmp_path_factory.mktemp("tls"))
    server = make_server(port=0, latency_ms=5)
    finish = server.finish_request

    def paced(request: Any, client_address: Any) -> None:
        time.sleep(0.005)  # in the connection's own thread, before its handshake
        finish(request, client_address)

    server.finish_request = paced  # type: ignore[method-assign]
    with tls_serving(server, cert, key) as url:
        yield url


def digits_payload() -> str:
    return DIGITS.read_text(encoding="utf-8").splitlines()[0]


def test_self_signed_target_is_refused_by_default(tls_demo: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run_cli(
        "run", "--target", tls_demo, "--scenario", "json_post", "--payload", digits_payload(),
        "-u", "1", "-d", "2s", "--warmup", "0s", "--quiet", "--no-sampler", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "certificate" in lines[0] and "--insecure" in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    assert not out.exists() or not any(out.iterdir())


def test_insecure_runs_against_self_signed_target_and_warns(tls_demo: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run_cli(
        "run", "--target", tls_demo, "--scenario", "json_post", "--payload", digits_payload(),
        "-u", "1", "-d", "1s", "--warmup", "0s", "--quiet", "--no-sampler", "--out", str(out), "--insecure",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = read_json(out / "summary.json")
    assert summary["requests"]["total"] > 20
    assert summary["requests"]["errors"] == 0, summary["errors"]
    assert read_json(out / "meta.json")["settings"]["tls_verify"] is False
    warning = "TLS certificates were NOT verified"
    assert any(warning in n for n in summary["notices"]), summary["notices"]
    assert warning in (out / "report.html").read_text(encoding="utf-8")
    assert warning in (out / "summary.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("insecure", [False, True], ids=["verified", "insecure"])
def test_scenario_users_verify_tls_under_plain_locust(tls_demo: str, insecure: bool) -> None:
    # The load itself, not only loadbench's probe, verifies: Locust's FastHttpUser would not.
    # -t 6s: plain Locust's run-time timer counts from gevent's cached loop time, which a slow
    # start-up on a loaded machine leaves up to seconds stale (seen firing 0.1 s after "Run time
    # limit set to 2 seconds", before any request): 6 s leaves the load seconds either way.
    result = subprocess.run(
        [
            sys.executable, "-m", "locust", "-f", str(REPO / "scenarios" / "json_post.py"), "--host", tls_demo,
            "--headless", "-u", "1", "-r", "1", "-t", "6s", "--only-summary",
            "--payload", digits_payload(), *(["--insecure"] if insecure else []),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )  # fmt: skip
    # Locust's final summary (its CSV files may lag behind it): the requests' row, the error report.
    output = result.stdout + result.stderr
    row = re.search(r"^POST\s+POST /predict\s+(\d+)\s+(\d+)\(", output, re.MULTILINE)
    assert row, output[-3000:]
    requests, failures = int(row.group(1)), int(row.group(2))
    assert requests > 0, output[-3000:]
    if insecure:
        assert (failures, result.returncode) == (0, 0), output[-3000:]
    else:
        assert failures == requests, output[-3000:]
        assert "CERTIFICATE_VERIFY_FAILED" in output, output[-3000:]


# ---------------------------------------------------------------------------------------------
# Secrets in everything a run writes

# A model server's command line holds its key (vLLM takes `--api-key KEY`): one per form.
SERVER_SECRETS = ("sk-SRVSECRET12345", "srv-TOKEN-67890", "srv-PASSWORD-24680")
RUN_SECRETS = ("hdr-SECRET-777", "tgtPW4242", "scrapePW999", "agentTOK555", "pathKEY3131")
SERVER_SCRIPT = """
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, body, content_type="application/json"):
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.answer("up 1\\n", "text/plain") if self.path.startswith("/metrics") else self.answer("{}")

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.answer(json.dumps({"outputs": [1]}))

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.socket.listen(128)  # not socketserver's 5: see tests/helpers.py serving()
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@pytest.fixture
def server_with_a_key(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A real model-server process whose command line carries credentials, as vLLM's does."""
    script = tmp_path / "keyed_server.py"
    script.write_text(SERVER_SCRIPT, encoding="utf-8")
    argv = [sys.executable, str(script), "--api-key", SERVER_SECRETS[0], f"--token={SERVER_SECRETS[1]}"]
    process = subprocess.Popen([*argv, "--password", SERVER_SECRETS[2]], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    process.port = int(process.stdout.readline())  # type: ignore[attr-defined]
    yield process
    process.kill()
    process.communicate()


def test_no_secret_reaches_any_file_or_the_console(
    server_with_a_key: subprocess.Popen[str], tmp_path: Path
) -> None:
    port = server_with_a_key.port  # type: ignore[attr-defined]
    out = tmp_path / "run"
    result = run_cli(
        "run", "--target", f"http://user:tgtPW4242@127.0.0.1:{port}", "--scenario", "json_post",
        "--payload", '{"x": 1}', "--path", "/predict?api_key=pathKEY3131",
        "-H", "Authorization: Bearer hdr-SECRET-777", "--agent-token", "agentTOK555",
        "--server-pid", str(server_with_a_key.pid), "--scrape", f"http://u:scrapePW999@127.0.0.1:{port}/metrics",
        "-u", "1", "-d", "2s", "--warmup", "0.5s", "--sample-interval", "0.1s", "--quiet", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # The run really recorded the server's command line and the scrape: the masks are there.
    meta = read_json(out / "meta.json")
    assert "--api-key ***" in meta["sampler"]["server"]["cmdline"], meta["sampler"]["server"]
    assert "--token=***" in read_json(out / "sampler.json")["server"]["cmdline"]
    assert read_json(out / "sampler.json")["scrapes"][0]["url"].startswith("http://u:***@")
    assert read_json(out / "summary.json")["requests"]["total"] > 0
    files = files_text(out)  # the records as text, not as compressed Parquet
    assert {"meta.json", "sampler.json", "summary.json", "report.html", "requests.parquet"} <= {
        p.name for p in files
    }
    for secret in (*SERVER_SECRETS, *RUN_SECRETS):
        assert secret not in result.stdout + result.stderr, secret
        for path, text in files.items():
            assert secret not in text, f"{secret} in {path.name}"


FINISH_FAILED_RUN = """
import sys
from pathlib import Path
from loadbench.drive.lifecycle import ActiveRun, finish_run
from loadbench.drive.recorder import Recorder
from loadbench.redact import secret_values

secrets = secret_values(["Authorization: Bearer hdr-SECRET-777"], "http://u:tgtPW4242@h:1")
run_dir = Path(sys.argv[1])
active = ActiveRun(run_dir, {"started_unix_s": 1.0}, Recorder(run_dir, secrets), None)
finish_run(active, "failed", "HTTPError: hdr-SECRET-777 refused at http://u:tgtPW4242@h:1/x", {})
"""


def test_run_failure_text_is_scrubbed(tmp_path: Path) -> None:
    # In a child process: lifecycle imports locust, which must not patch the test process.
    subprocess.run([sys.executable, "-c", FINISH_FAILED_RUN, str(tmp_path)], check=True, cwd=REPO, timeout=60)
    failure = read_json(tmp_path / "meta.json")["failure"]
    assert "hdr-SECRET-777" not in failure and "tgtPW4242" not in failure
    assert failure.startswith("HTTPError: *** refused"), failure
