"""loadbench inside Locust's web UI (`loadbench ui`, and plain `locust -f SCENARIO`).

Real processes on loopback: the demo endpoint, the UI server (`python -m loadbench ui` or
`python -m locust`), driven over Locust's own HTTP API and, for the browser test, through
headless Chromium with Selenium. The live figures' pure parts (exact latencies, TTFT and ITL,
resource rows, run summaries) run in a child process too: the pytest process never imports
locust. The browser test needs ``chromium`` and ``chromedriver``
(Debian's ``chromium-driver``): skipped without them, except under CI (``$CI``), which installs them.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers import DIGITS, REPO, demo_process, read_json, run_cli
from run_text import files_text

from loadbench.demo.llmsim import SimulatorTiming
from loadbench.record.columnar import read_run_requests

SECRET = "s3cret-token-value"
# The demo's service time under the UI's loads: their subject is the UI, not throughput, so 4
# users send a few hundred requests a second instead of saturating both cores (and the report
# then analyses that many records, not tens of thousands).
PACE_MS = 10


def http(url: str, data: dict[str, Any] | None = None) -> tuple[int, str, dict[str, str]]:
    """GET (or POST a form) and return status, body and headers; HTTP errors are returned too."""
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=30) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace"), dict(exc.headers)


def status(ui: str) -> dict[str, Any]:
    code, body, _ = http(f"{ui}/loadbench/api/status")
    assert code == 200, body
    return json.loads(body)


def wait_until(check: Callable[[], Any], what: str, timeout_s: float = 60.0) -> Any:
    """Poll ``check`` until it returns something truthy (a loaded machine gets generous time)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


def serves(url: str) -> bool:
    try:
        return http(url)[0] == 200
    except urllib.error.URLError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def ui_process(command: list[str], url_pattern: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Start a web UI server process; yield its base URL once it serves; SIGTERM it at the end."""
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO, env={**os.environ}
    )
    assert process.stderr is not None
    # A thread reads stderr line by line (and keeps draining it so the child never blocks).
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stderr], daemon=True)  # type: ignore[union-attr]
    reader.start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 60
        url = None
        while url is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                if process.poll() is not None and not reader.is_alive():
                    break
                continue
            seen.append(line)
            match = re.search(url_pattern, line)
            url = match.group(1) if match else None
        assert url, f"the web UI did not start: {''.join(seen)[-3000:]}"
        url = url.rstrip("/").replace("0.0.0.0", "127.0.0.1")
        # Locust announces the address a moment before it listens.
        wait_until(lambda: serves(f"{url}/loadbench/api/status"), "the web UI to serve loadbench's routes")
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(timeout=10)
        process.stderr.close()


@contextmanager
def loadbench_ui(demo: str, reports: Path, *extra: str) -> Iterator[str]:
    command = [sys.executable, "-m", "loadbench", "ui", "--target", demo, "--scenario", "json_post"]
    command += ["--data", str(DIGITS), "--web-port", "0", "--reports-dir", str(reports), "--warmup", "0.5"]
    command += ["--users", "4", "--spawn-rate", "4", "--sample-interval", "0.2", *extra]
    with ui_process(command, r"web UI at (http://\S+)") as (url, _):
        yield url


def start_load(ui: str, **form: Any) -> None:
    code, body, _ = http(f"{ui}/swarm", {"user_count": 4, "spawn_rate": 4, **form})
    assert code == 200 and json.loads(body)["success"], body

    def live() -> bool:
        s = status(ui)
        has_sample = any(r["metric"] == "host CPU" for r in s["resources"])
        return s["recording"] and s["requests"]["exact_values"] >= 50 and has_sample

    wait_until(live, "exact latencies and resource samples of the new run")


def stop_and_wait_for_report(ui: str) -> dict[str, Any]:
    code, body, _ = http(f"{ui}/stop", {})  # POST: Locust 2.47 on; up to 2.46 it was GET only
    if code == 405:
        code, body, _ = http(f"{ui}/stop")
    assert code == 200, body
    return wait_until(
        lambda: (run := status(ui)["runs"][0])["state"] in ("done", "failed") and run, "the report", 120
    )


def check_complete_run(run: dict[str, Any]) -> Path:
    assert run["state"] == "done", run
    run_dir = Path(run["dir"])
    meta = read_json(run_dir / "meta.json")
    assert meta["status"] == "complete" and meta["driver"] == "web-ui"
    assert meta["ended_unix_s"] > meta["started_unix_s"]
    assert meta["settings"]["users"] == 4 and meta["settings"]["duration_s"] is None
    summary = read_json(run_dir / "summary.json")
    assert summary["requests"]["total"] > 0 and summary["latency_ms"]["p50"] is not None
    assert (run_dir / "report.html").stat().st_size > 10_000
    assert (run_dir / "samples.jsonl").stat().st_size > 0
    return run_dir


# ---------------------------------------------------------------------------------------------
# Locust's HTTP API: POST /swarm and POST /stop act like the buttons


# Secrets the start form must never show (test_start_page_never_shows_header_values): Locust
# shows every custom option with its value (`extra_options`) unless the option says
# include_in_web_ui=False: --header must, or the page would carry credentials; so must --path,
# whose query string may hold an api key.
SECRET_OPTIONS = ("--header", f"Authorization: Bearer {SECRET}", "--path", f"/predict?api_key={SECRET}x")


@dataclass
class Cycle:
    """One start and stop over Locust's HTTP API, and what the UI answered around it."""

    live: dict[str, Any]  # the status while the load ran
    run: dict[str, Any]  # the finished run, as the status lists it
    report: tuple[int, str, dict[str, str]]  # GET of its report from the UI
    stats: str  # Locust's own poll after the stop


def swarm_and_stop(ui: str, **form: Any) -> Cycle:
    start_load(ui, **form)
    live = status(ui)
    run = stop_and_wait_for_report(ui)
    return Cycle(live, run, http(ui + run["report"]), http(f"{ui}/stats/requests")[1])


@dataclass
class Session:
    """A UI session several tests read: its start page, its cycles, what it answered after."""

    demo: str
    reports: Path
    page: tuple[int, str]
    cycles: list[Cycle]
    listed: list[str] = field(default_factory=list)  # the run ids the status lists at the end
    escapes: dict[str, tuple[int, str]] = field(default_factory=dict)  # report paths out of reports/
    returncode: int | None = None


@pytest.fixture(scope="module")
def ui_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    """`loadbench ui` started with secrets in its options, two cycles over the HTTP API: the
    first with the start form's host field empty, the next with the form's default."""
    tmp = tmp_path_factory.mktemp("ui")
    reports = tmp / "reports"
    with demo_process(PACE_MS) as demo, loadbench_ui(demo, reports, *SECRET_OPTIONS) as ui:
        session = Session(demo, reports, http(f"{ui}/")[:2], [])
        session.cycles = [swarm_and_stop(ui, **form) for form in ({"host": ""}, {})]
        session.listed = [r["id"] for r in status(ui)["runs"]]
        outside = tmp / "outside"
        outside.mkdir()
        (outside / "report.html").write_text("private")
        (reports / "link").symlink_to(outside)
        for path in ("outside", "link", "..", "%2e%2e", "..%2Foutside", "..%2F..%2Fetc%2Fpasswd"):
            session.escapes[path] = http(f"{ui}/loadbench/runs/{path}/report.html")[:2]
    yield session


@pytest.fixture(scope="module")
def locust_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    """Plain `locust -f scenarios/json_post.py` with secrets in its options, one cycle."""
    reports = tmp_path_factory.mktemp("locust") / "reports"
    with demo_process(PACE_MS) as demo:
        command = [sys.executable, "-m", "locust", "-f", "scenarios/json_post.py", "--host", demo]
        command += ["--web-host", "127.0.0.1", "--web-port", str(free_port()), "--data", str(DIGITS)]
        command += ["--loadbench-reports-dir", str(reports), "--loadbench-warmup", "0.5", *SECRET_OPTIONS]
        command += ["--server-time-header", "X-Service-Time-Ms"]  # the scenario's option, for the recorder
        with ui_process(command, r"Starting web interface at (http://[^\s,]+)") as (ui, process):
            session = Session(demo, reports, http(f"{ui}/")[:2], [])
            session.cycles = [swarm_and_stop(ui)]
        session.returncode = process.returncode
    yield session


@pytest.mark.e2e
def test_swarm_and_stop_over_http_make_one_complete_run_dir_per_cycle(ui_session: Session) -> None:
    dirs = []
    for cycle in ui_session.cycles:
        live = cycle.live
        assert live["recording"] and live["current"]["state"] == "running"
        p50 = next(p for p in live["percentiles"] if p["key"] == "p50")
        assert p50["exact_ms"] > 0 and p50["locust_ms"] is not None
        assert any(r["metric"] == "host CPU" for r in live["resources"])
        dirs.append(check_complete_run(cycle.run))
        # The default --records parquet: each stop converted the run's records, and its report read them there.
        assert (dirs[-1] / "requests.parquet").exists() and not (dirs[-1] / "requests.csv").exists()
        # The report is served from the UI, script-free by its Content-Security-Policy.
        code, body, headers = cycle.report
        assert code == 200 and 'src="data:image/png;base64,' in body
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        # Locust's own poll carries the extra tab's rows.
        tab = json.loads(cycle.stats)["extended_stats"][0]
        assert tab["key"] == "loadbench" and any(r["metric"] == "p99 latency" for r in tab["data"])
    reports = ui_session.reports
    assert len(set(dirs)) == 2 and all(d.parent == reports for d in dirs)
    assert ui_session.listed == [d.name for d in reversed(dirs)]
    # Only reports of this session's or the reports dir's runs; no way out of it.
    for path, (code, body) in ui_session.escapes.items():
        assert code == 404 and "private" not in body, path
    # Credentials never reach a file.
    for file, text in files_text(reports).items():  # the records as text, not as compressed Parquet
        assert SECRET not in text, file


@pytest.mark.e2e
def test_plain_locust_with_a_builtin_scenario_records_each_start_and_stop(locust_session: Session) -> None:
    run_dir = check_complete_run(locust_session.cycles[0].run)
    assert run_dir.parent == locust_session.reports
    meta = read_json(run_dir / "meta.json")
    assert meta["command"][:3] == ["locust", "-f", "scenarios/json_post.py"]
    assert meta["settings"]["server_time_header"] == "X-Service-Time-Ms"
    assert (run_dir / "requests.parquet").exists()  # `locust -f` runs take the default --records too
    ok = read_run_requests(run_dir).query("ok == 1")
    assert len(ok) > 0 and (ok["server_ms"] >= PACE_MS).all() and (ok["server_ms"] <= ok["latency_ms"]).all()
    assert locust_session.returncode is not None


@contextmanager
def loadbench_ui_demo(reports: Path, *extra: str) -> Iterator[str]:
    """`loadbench ui --demo`: the UI and its own demo endpoint, as a user would start them."""
    command = [sys.executable, "-m", "loadbench", "ui", "--demo", "--web-port", "0"]
    command += ["--reports-dir", str(reports), "--warmup", "0.5", "--users", "4", "--spawn-rate", "4"]
    command += ["--sample-interval", "0.2", *extra]
    with ui_process(command, r"web UI at (http://\S+)") as (url, _):
        yield url


@pytest.mark.e2e
def test_ui_demo_json_post_sends_the_demo_digits_without_data(tmp_path: Path) -> None:
    # As `loadbench run --demo --scenario json_post`: no --data needed, the demo's digits are sent.
    with loadbench_ui_demo(
        tmp_path / "reports", "--scenario", "json_post", "--demo-latency-ms", str(PACE_MS)
    ) as ui:
        start_load(ui)
        assert status(ui)["llm"] is None  # not an LLM scenario: no TTFT rows
        run_dir = check_complete_run(stop_and_wait_for_report(ui))
    meta = read_json(run_dir / "meta.json")
    assert meta["settings"]["scenario_args"][-2:] == ["--data", str(DIGITS)]
    summary = read_json(run_dir / "summary.json")
    assert summary["requests"]["errors"] == 0 and summary["requests"]["total"] >= 50


@pytest.mark.e2e
def test_ui_demo_openai_chat_shows_exact_ttft_and_itl_and_gates_each_run(tmp_path: Path) -> None:
    ttft_ms, itl_ms, tokens = 40.0, 4.0, 8
    args = ["--scenario", "openai_chat", "--output-tokens", str(tokens), "--demo-llm-ttft-ms", str(ttft_ms)]
    args += ["--demo-llm-itl-ms", str(itl_ms), "--slo", "ttft_p99<30s", "--slo", "p99<1ms"]
    with loadbench_ui_demo(tmp_path / "reports", *args) as ui:
        start_load(ui)
        s = wait_until(lambda: (s := status(ui))["llm"] and s["llm"]["streams"] >= 20 and s, "20 streams")
        llm = s["llm"]
        rows = {r["key"]: r["exact_ms"] for r in llm["rows"]}
        # The simulator sends the first word ttft_ms after the request, then one every itl_ms.
        assert ttft_ms <= rows["ttft_ms.p50"] <= rows["ttft_ms.p90"] <= rows["ttft_ms.p99"] < 10 * ttft_ms
        # Gaps as the client saw them: a loaded client may read several words in one go (gaps
        # near 0), never a gap longer than the whole stream after the first word.
        assert 0 <= rows["itl_ms.p50"] <= rows["itl_ms.p99"] < 10 * ttft_ms + tokens * itl_ms
        assert llm["gaps"] == (tokens - 1) * llm["streams"] and llm["bad_gaps"] == 0
        _, body, _ = http(f"{ui}/stats/requests")
        tab = {r["metric"]: r for r in json.loads(body)["extended_stats"][0]["data"]}
        assert tab["TTFT p50"]["loadbench"].endswith(" ms") and tab["TTFT p50"]["locust"] == ""
        assert {"TTFT p90", "TTFT p99", "ITL p50", "ITL p99", "p99 latency"} <= set(tab)

        run = stop_and_wait_for_report(ui)
        run_dir = check_complete_run(run)
        # After the stop, the live figures are the analyzer's: the same requests, exactly.
        final, summary = status(ui)["llm"], read_json(run_dir / "summary.json")
        for key in ("ttft_ms", "itl_ms"):
            for p in ("p50", "p99", "max"):
                assert final[key][p] == pytest.approx(summary[key][p], abs=0.002), (key, p)
        assert run["summary"]["ttft_p50"] == summary["ttft_ms"]["p50"] >= ttft_ms
        slo = run["summary"]["slo"]
        assert slo["passed"] is False and "PASS ttft_p99<30s" in slo["text"] and "FAIL p99<1ms" in slo["text"]
        _, body, _ = http(f"{ui}/stats/requests")
        tab = {r["metric"]: r for r in json.loads(body)["extended_stats"][0]["data"]}
        assert tab[f"SLOs {run['id']}"]["loadbench"] == slo["text"]
    assert read_json(run_dir / "meta.json")["settings"]["slos"] == ["ttft_p99<30s", "p99<1ms"]


@pytest.mark.e2e
def test_plain_locust_openai_chat_writes_ttft_into_the_run_summary(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    port = free_port()
    with demo_process() as demo:
        command = [sys.executable, "-m", "locust", "-f", "scenarios/openai_chat.py", "--host", demo]
        command += ["--web-host", "127.0.0.1", "--web-port", str(port), "--output-tokens", "8"]
        command += ["--loadbench-reports-dir", str(reports), "--loadbench-warmup", "0.5"]
        with ui_process(command, r"Starting web interface at (http://[^\s,]+)") as (ui, _):
            start_load(ui)
            assert status(ui)["llm"]["streams"] > 0
            run = stop_and_wait_for_report(ui)
            run_dir = check_complete_run(run)
    assert run_dir.parent == reports
    summary = read_json(run_dir / "summary.json")
    # The demo's simulator at its defaults: the first token SimulatorTiming.ttft_ms after the send.
    assert summary["ttft_ms"]["p50"] >= SimulatorTiming.ttft_ms
    assert summary["itl_ms"]["p50"] > 0 and summary["tokens"]["output_per_s"] > 0
    assert run["summary"]["ttft_p50"] == summary["ttft_ms"]["p50"]


@pytest.mark.e2e
def test_ui_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for args, expected in (
            (["--target", "http://127.0.0.1:1"], "127.0.0.1:1"),
            (["--target", "http://127.0.0.1:1", "--web-port", "70000"], "--web-port"),
            (["--target", "http://127.0.0.1:1", "--web-port", str(port)], "cannot serve the web UI"),
            (["--target", "http://127.0.0.1:1", "--slo", "p99<<1"], "cannot read the SLO 'p99<<1'"),
            (["--demo", "--demo-llm-ttft-ms", "-5"], "--demo-llm-ttft-ms"),
        ):
            result = run_cli("ui", *args, "--reports-dir", str(tmp_path / "r"), timeout=60)
            assert result.returncode == 2, result.stderr
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("loadbench: error: ") and expected in lines[0]
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------------------------------------
# A real browser


def require_browser() -> tuple[str, str]:
    """Paths of chromium and chromedriver; without them skip (fail under CI, which installs them)."""
    found = shutil.which("chromium"), shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        found = (None, None)
    if found[0] and found[1]:
        return found[0], found[1]
    message = "the browser test needs chromium, chromium-driver (apt-get) and selenium (pip, the test extra)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}, and CI must have them: .ci/run installs them")
    pytest.skip(message)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    chromium, chromedriver = require_browser()
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--disable-extensions", "--window-size=1400,1000", f"--user-data-dir={tmp_path / 'profile'}",
    ):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(chromedriver))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.e2e
def test_browser_start_watch_the_tab_stop_and_open_the_report(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def find(xpath: str) -> Any:
        return WebDriverWait(browser, 60, poll_frequency=0.2).until(
            lambda d: next(iter(d.find_elements(By.XPATH, xpath)), None), f"no element {xpath}"
        )

    def tab_table() -> str:
        tables = browser.find_elements(By.XPATH, "//table[.//th[contains(., 'loadbench (exact)')]]")
        return tables[0].text if tables else ""

    with demo_process(PACE_MS) as demo, loadbench_ui(demo, tmp_path / "reports") as ui:
        browser.get(f"{ui}/")
        find("//button[@type='submit' and contains(translate(., 'START', 'start'), 'start')]").click()
        find("//*[@role='tab' and contains(translate(., 'LOADBENCH', 'loadbench'), 'loadbench')]").click()

        # The tab is refreshed by Locust's own poll: resources and exact percentiles change.
        def filled(_: Any) -> str | None:
            text = tab_table()
            return text if "host CPU" in text and "p99 latency" in text else None

        first = WebDriverWait(browser, 60, 0.2).until(filled)
        second = WebDriverWait(browser, 60, 0.2).until(
            lambda _: filled(_) not in (None, first) and tab_table()
        )
        assert "sampled at" in second and "Locust (rounded)" in second
        find("//button[contains(translate(., 'STOP', 'stop'), 'stop')]").click()
        link = find("//a[@id='loadbench-report-link']")
        href = link.get_attribute("href")
        assert re.search(r"/loadbench/runs/[^/]+/report\.html$", href), href
        browser.get(href)
        plots = WebDriverWait(browser, 60, 0.2).until(
            lambda d: (
                d.execute_script(
                    "return [...document.images].filter(i => i.src.startsWith('data:image/png;base64,')"
                    " && i.complete && i.naturalWidth > 0).length"
                )
                >= 3
            )
        )
        assert plots


@pytest.mark.e2e
@pytest.mark.parametrize("driver", ["locust", "loadbench-ui"])
def test_start_page_never_shows_header_values(request: pytest.FixtureRequest, driver: str) -> None:
    # Each session was started with SECRET_OPTIONS.
    session: Session = request.getfixturevalue("locust_session" if driver == "locust" else "ui_session")
    code, page = session.page
    assert code == 200
    assert '"extra_options"' in page  # the form's custom options are on the page: the check is real
    assert SECRET not in page


# ---------------------------------------------------------------------------------------------
# The start form's host field left empty; runs that recorded nothing


@pytest.mark.e2e
def test_an_empty_host_field_means_the_target_the_ui_was_started_with(ui_session: Session) -> None:
    # Locust sets its host to the form's field, empty included, and its users then refuse to
    # start ("You must specify the base host"): every later start of the session sent nothing.
    # The session's first start had the field empty, the next one the form's default.
    for cycle in ui_session.cycles:
        run_dir = check_complete_run(cycle.run)
        assert read_json(run_dir / "meta.json")["target"] == ui_session.demo


@pytest.mark.e2e
def test_a_stop_before_any_answer_is_a_failed_run_that_counts_what_was_cut_off(tmp_path: Path) -> None:
    from helpers import json_server

    def slow(handler: Any, state: dict[str, Any]) -> tuple[int, Any]:
        if handler.command == "POST":  # the load's requests; not the start-up's reachability probe
            with state["lock"]:
                state["posts"] = state.get("posts", 0) + 1
            time.sleep(5)
        return 200, {"label": 1}

    reports = tmp_path / "reports"
    with json_server(slow) as (target, state):
        command = [sys.executable, "-m", "loadbench", "ui", "--target", target, "--scenario", "json_post"]
        command += ["--payload", '{"x": 1}', "--no-check-json", "--web-port", "0", "--no-sampler"]
        command += ["--reports-dir", str(reports), "--warmup", "0"]
        command += ["--no-preflight"]  # its 5 s answer would be one more POST in the server's count
        with ui_process(command, r"web UI at (http://\S+)") as (ui, _):
            code, body, _ = http(f"{ui}/swarm", {"user_count": 4, "spawn_rate": 4})
            assert code == 200 and json.loads(body)["success"], body
            wait_until(lambda: state.get("posts", 0) >= 4, "every user's first request at the server")
            run = stop_and_wait_for_report(ui)
            s = status(ui)
    assert run["status"] == "failed", run
    assert "no request was recorded" in (s["problem"] or ""), s["problem"]
    meta = read_json(Path(run["dir"]) / "meta.json")
    assert meta["status"] == "failed" and "none was answered" in meta["failure"]
    assert meta["in_flight_unrecorded"] == 4
    summary = read_json(Path(run["dir"]) / "summary.json")
    assert summary["run"]["status"] == "failed" and summary["requests"]["in_flight_unrecorded"] == 4


def scraped_totals(url: str) -> tuple[set[str], float]:
    """(the run_ids of ``loadbench_run_info``, the sum of ``loadbench_requests_total``) of one scrape."""
    from prometheus_client.parser import text_string_to_metric_families

    code, text, _ = http(url)
    assert code == 200, text
    runs, total = set(), 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "loadbench_run_info":
                runs.add(sample.labels["run_id"])
            elif sample.name == "loadbench_requests_total":
                total += sample.value
    return runs, total


@pytest.mark.e2e
def test_ui_demo_grpc_runs_and_its_metrics_port_serves_each_run_in_turn(tmp_path: Path) -> None:
    # The gRPC scenario through the web UI, and --metrics-port: one endpoint for the session,
    # serving each run from zero, and the last one's final figures between runs.
    port = free_port()
    metrics = f"http://127.0.0.1:{port}/metrics"
    args = ("--scenario", "kserve_v2_grpc", "--demo-latency-ms", "5", "--metrics-port", str(port))
    with loadbench_ui_demo(tmp_path / "reports", *args, "--metrics-linger", "0s") as ui:
        finished = []
        for _ in range(2):
            start_load(ui)
            runs, total = scraped_totals(metrics)
            assert len(runs) == 1 and total > 0
            run = stop_and_wait_for_report(ui)
            run_dir = check_complete_run(run)
            finished.append((run_dir, runs.pop()))
            summary = read_json(run_dir / "summary.json")
            assert summary["requests"]["errors"] == 0
            assert set(summary["by_name"]) == {"/inference.GRPCInferenceService/ModelInfer"}
            # Between runs: the finished run's final figures, every record of it.
            runs, total = scraped_totals(metrics)
            assert (
                runs == {run_dir.name}
                and total == summary["requests"]["total"] + summary["requests"]["warmup_excluded"]
            )
    assert [run_id for _, run_id in finished] == [run_dir.name for run_dir, _ in finished]
    assert len({run_id for _, run_id in finished}) == 2
