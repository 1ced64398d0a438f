"""loadbench inside Locust's web UI: every start/stop in the UI is one run directory with its report.

Plugged in only through Locust's own extension points:

- ``events.test_start`` / ``test_stop`` (fired by the UI's buttons and by ``POST /swarm`` /
  ``POST /stop`` alike; ``GET /stop`` on Locust before 2.47): begin a run with `lifecycle.begin_run` (meta.json, recorder, sampler) and
  end it with `lifecycle.finish_run`; then analyze it and render its report in a child process
  (``python -m loadbench report DIR``: `analyze_run` + `render_report`), so the UI stays live.
- the modern UI's extra tab and routes on the UI's Flask app (`loadbench.ui.routes`): exact
  percentiles beside Locust's rounded ones, for LLM scenarios TTFT and ITL (from each request
  event's ``context["loadbench"]``), live resources, the session's runs and their reports.

`serve` runs it for ``loadbench ui``, after one preflight request (`loadbench.drive.preflight`)
before the UI serves; `loadbench.ui.hook` plugs it into ``locust -f SCENARIO`` (no preflight).
Imports locust: only driving code may import this module.
"""

from __future__ import annotations

import logging
import math
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO, cast

import gevent
import gevent.event
from locust import events
from locust.env import Environment

from loadbench.drive.config import RunConfig
from loadbench.drive.exporter import Exporter, open_exporter
from loadbench.drive.inflight import InFlight, counted_classes, counts_starts
from loadbench.drive.lifecycle import ActiveRun, Prepared, begin_run, finish_run
from loadbench.drive.locustfiles import Scenario, set_up_scenario
from loadbench.drive.preflight import preflight
from loadbench.drive.runner import prepare
from loadbench.errors import LoadbenchError, UsageError
from loadbench.record import rundir
from loadbench.record.records import EXTRAS_KEY
from loadbench.redact import redact_url
from loadbench.report.fmt import format_count, format_ms, format_pct
from loadbench.sample.hostmetrics import find_server_process
from loadbench.ui.live import (
    LABELS,
    PERCENTILES,
    ExactLatencies,
    SessionRun,
    llm_status,
    read_last_sample,
    resource_rows,
    run_summary,
)
from loadbench.ui.routes import install_routes
from loadbench.values import check_target

REPORT_TIMEOUT_S = 900.0
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")


class WebUIPlugin:
    """loadbench's run lifecycle, live view and report routes for one Locust web UI session."""

    def __init__(
        self,
        environment: Environment,
        base: RunConfig,
        scenario: Scenario,
        argv: list[str],
        prepared: Prepared | None = None,
        say: Callable[[str], None] | None = None,
        in_flight: InFlight | None = None,
        exporter: Exporter | None = None,
    ) -> None:
        """``in_flight``: counts the starts of the environment's users' requests (`counted_classes`),
        for the requests a stop cuts off; None where they cannot be counted (plain ``locust -f``).
        ``exporter``: ``--metrics-port``'s endpoint, which serves each run in turn."""
        self.environment = environment
        self.in_flight = in_flight
        self.exporter = exporter or Exporter()
        self.base = replace(base, out_dir=None, force=False, quiet=True)
        self.scenario = scenario
        self.argv = argv
        self._prepared = prepared  # from `loadbench ui`: checked once for its target
        self._prepared_target = check_target(base.target) if prepared is not None else None
        self.say = say or logging.getLogger("loadbench").info
        self.runs: list[SessionRun] = []
        self.active: ActiveRun | None = None
        self.latencies: ExactLatencies | None = None
        self.quitting = False
        self.problem: str | None = None
        self._beginning: gevent.Greenlet | None = None
        self._reports: list[gevent.Greenlet] = []
        self._notices: list[str] = []

    # -- lifecycle -------------------------------------------------------------------------

    def install(self) -> WebUIPlugin:
        """Hook the events, the routes and the extra tab into the environment and its web UI."""
        env = self.environment
        env.events.test_start.add_listener(self.on_test_start)
        env.events.test_stop.add_listener(self.on_test_stop)
        env.events.request.add_listener(self.on_request)
        env.events.quitting.add_listener(self.on_quitting)
        env.events.quit.add_listener(self.on_quit)
        env.loadbench_webui = self  # type: ignore[attr-defined]
        if env.web_ui is not None:
            install_routes(self, env.web_ui)
        return self

    def on_test_start(self, **_: Any) -> None:
        # In its own greenlet: a stop during start-up kills the spawning greenlet, not the begin.
        self._beginning = gevent.spawn(self._begin)
        self._beginning.join()

    def _begin(self) -> None:
        env = self.environment
        runner = env.runner
        options = env.parsed_options
        self.problem = None
        if not env.host and self.base.target:
            # Locust's start form sets the host to what was typed, an empty field included, and
            # its users then refuse to start; empty means the target this UI was started with.
            # Set here (test_start fires before Locust hands the host to the user classes), it is
            # this run's host and the form's default for the next start.
            env.host = self.base.target
        try:
            target = check_target(env.host or self.base.target)
            prepared = self._prepared_for(target)
            users = int(getattr(runner, "target_user_count", None) or self.base.users)
            spawn_rate = getattr(options, "spawn_rate", None) or self.base.spawn_rate
            config = replace(self.base, target=target, users=users, spawn_rate=float(spawn_rate or users))
            # Stopped by hand or by Locust's run time: the planned duration is open.
            extra = {"driver": "web-ui", "settings": {"duration_s": None}}
            active = begin_run(
                config, prepared, env, target, self.argv, cast(TextIO, _SayWriter(self.say)), extra
            )
        except LoadbenchError as exc:
            self.problem = f"not recording this run: {exc}"
            self.say(self.problem)
            return
        active.meta["started_unix_s"] = time.time()  # the load starts now, after the sampler's start-up
        if self.in_flight is not None:
            self.in_flight.reset()
        self.exporter.attach(active.meta, active.recorder, runner, self.in_flight)
        self.active = active
        self.latencies = ExactLatencies(
            active.meta["started_unix_s"] + config.warmup_s,
            active.recorder.timeout_s * 1000.0 if active.recorder.timeout_s else math.inf,
        )
        self._notices = list(active.meta.get("sampler", {}).get("notices", []))
        info_path = active.run_dir / rundir.SAMPLER_INFO
        if info_path.exists():
            self._notices += rundir.read_json(info_path).get("notices", [])
        self.runs.append(SessionRun(active.run_dir, active.meta["started_unix_s"], redact_url(target), users))
        self.say(f"recording {users} users against {redact_url(target)} -> {active.run_dir}")

    def _prepared_for(self, target: str) -> Prepared:
        if self._prepared is not None and self._prepared_target == target:
            return self._prepared
        # Another host typed into the UI (or plain `locust`): find that server's process.
        server, notice = find_server_process(target, self.base.server_pid, self.base.server_name)
        return Prepared(self.scenario, server, notice)

    def on_request(
        self,
        response_time: float,
        exception: BaseException | None = None,
        start_time: float | None = None,
        context: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        if self.active is not None and self.latencies is not None:
            # The scenario's per-request extras (LLM timings): the recorder's EXTRAS_KEY.
            extras = context.get(EXTRAS_KEY) if context else None
            self.latencies.add(
                response_time, start_time, exception is not None, extras if isinstance(extras, dict) else None
            )

    def on_test_stop(self, **_: Any) -> None:
        if self._beginning is not None:
            self._beginning.join()
            self._beginning = None
        active, self.active = self.active, None
        if active is None:
            return
        status = rundir.STATUS_INTERRUPTED if self.quitting else rundir.STATUS_COMPLETE
        runner = self.environment.runner
        if self.in_flight is not None:
            # test_stop fires once Locust has killed the users: what they had in flight is lost.
            active.meta["in_flight_unrecorded"] = self.in_flight.unrecorded()
        status = finish_run(active, status, None, runner.exceptions if runner is not None else {})
        if status == rundir.STATUS_FAILED:
            self.problem = f"run {active.run_dir.name} failed: {active.meta.get('failure')}"
            self.say(self.problem)
        run = self._run(active.run_dir.name)
        if run is not None:
            run.state, run.status = "analyzing", status
            self._reports.append(gevent.spawn(self._report, run))

    def _report(self, run: SessionRun) -> None:
        """Analyze and render in a child process (CPU-heavy; the UI's greenlets keep serving)."""
        command = [sys.executable, "-m", "loadbench", "report", str(run.run_dir)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=REPORT_TIMEOUT_S)
        except (OSError, subprocess.SubprocessError) as exc:
            run.state, run.problem = "failed", f"the report failed: {exc}"
            self.say(run.problem)
            return
        if done.returncode != 0 or not (run.run_dir / rundir.REPORT).exists():
            lines = done.stderr.strip().splitlines()
            run.state = "failed"
            run.problem = f"the report failed: {lines[-1] if lines else f'exit code {done.returncode}'}"
            self.say(run.problem)
            return
        try:
            summary = rundir.read_json(run.run_dir / rundir.SUMMARY)
            run.summary = run_summary(summary)
        except LoadbenchError:
            pass
        run.state = "done"
        self.say(f"report: {run.run_dir / rundir.REPORT}")

    def on_quitting(self, **_: Any) -> None:
        self.quitting = True  # a test still running now was interrupted, not completed

    def on_quit(self, **_: Any) -> None:
        self.wait_for_reports()

    def wait_for_reports(self, timeout_s: float = REPORT_TIMEOUT_S) -> None:
        gevent.joinall(self._reports, timeout=timeout_s)

    def _run(self, run_id: str) -> SessionRun | None:
        return next((r for r in self.runs if r.id == run_id), None)

    # -- what the UI shows ---------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Everything the tab and the live page show, as JSON-ready data."""
        runner = self.environment.runner
        current = self.runs[-1] if self.runs else None
        exact: Mapping[str, object] = self.latencies.summary() if self.latencies is not None else {}
        total = runner.stats.total if runner is not None else None
        percentiles = []
        for key, q in PERCENTILES:
            locust_ms = (
                total.get_response_time_percentile(q) if total is not None and total.num_requests else None
            )
            percentiles.append(
                {
                    "key": key,
                    "label": LABELS.get(key, key),
                    "exact_ms": exact.get(key),
                    "locust_ms": locust_ms,
                }
            )
        percentiles.append(
            {
                "key": "max",
                "label": "max",
                "exact_ms": exact.get("max"),
                "locust_ms": total.max_response_time if total is not None and total.num_requests else None,
            }
        )
        sample = read_last_sample(current.run_dir / rundir.SAMPLES) if current is not None else None
        lat = self.latencies
        llm = llm_status(lat) if lat is not None else None
        return {
            "state": getattr(runner, "state", None),
            "recording": self.active is not None,
            "current": current.json() if current is not None else None,
            "elapsed_s": round(time.time() - current.started_unix_s, 1)
            if current is not None and self.active is not None
            else None,
            "warmup_s": self.base.warmup_s,
            "in_warmup": lat is not None and self.active is not None and time.time() < lat.window_start,
            "requests": {
                "measured": lat.requests if lat else 0,
                "errors": lat.errors if lat else 0,
                "exact_values": len(lat.latency) if lat else 0,
                "not_kept": lat.dropped if lat else 0,
                "locust_total": total.num_requests if total is not None else 0,
                "locust_failures": total.num_failures if total is not None else 0,
            },
            "percentiles": percentiles,
            "llm": llm,
            "sample": sample,
            "resources": resource_rows(sample, self._notices),
            "runs": [r.json() for r in reversed(self.runs)],
            "problem": self.problem,
        }

    def tab_rows(self) -> list[dict[str, str]]:
        """Rows of the extra tab's table (``metric`` / ``loadbench`` / ``locust``)."""
        s = self.status()
        req = s["requests"]
        rows: list[dict[str, str]] = []
        current = s["current"]
        if s["problem"]:
            rows.append({"metric": "problem", "loadbench": s["problem"], "locust": ""})
        if current is not None:
            state = "recording" if s["recording"] else current["state"]
            rows.append(
                {"metric": "run", "loadbench": f"{current['id']} ({state})", "locust": s["state"] or ""}
            )
            if s["in_warmup"]:
                rows.append(
                    {"metric": "warmup", "loadbench": f"first {s['warmup_s']:g} s excluded", "locust": ""}
                )
        where = "exact, successful requests after warmup"
        rows.append(
            {
                "metric": "requests",
                "loadbench": f"{format_count(req['measured'])} ({where})",
                "locust": f"{format_count(req['locust_total'])} (all)",
            }
        )
        rows.append(
            {
                "metric": "errors",
                "loadbench": f"{format_count(req['errors'])} ({format_pct(req['errors'] / req['measured'] if req['measured'] else None)})",
                "locust": format_count(req["locust_failures"]),
            }
        )
        for p in s["percentiles"]:
            locust_ms = p["locust_ms"]
            rows.append(
                {
                    "metric": f"{p['label']} latency",
                    "loadbench": format_ms(p["exact_ms"]),
                    # Locust's percentiles are bucketed whole numbers; its max is exact.
                    "locust": format_ms(locust_ms)
                    if p["key"] == "max" or locust_ms is None
                    else f"{locust_ms:g} ms",
                }
            )
        llm = s["llm"]
        if llm is not None:
            kept = f"{format_count(llm['streams'])} streams, {format_count(llm['gaps'])} gaps"
            rows.append(
                {"metric": "LLM streams", "loadbench": f"{kept} (successful, after warmup)", "locust": ""}
            )
            # Locust has no notion of tokens: its column stays empty.
            rows += [
                {"metric": f"{r['label']}", "loadbench": format_ms(r["exact_ms"]), "locust": ""}
                for r in llm["rows"]
            ]
        rows += [{"metric": r["metric"], "loadbench": r["value"], "locust": ""} for r in s["resources"]]
        for run in s["runs"][:10]:
            link = run["report"] or run["problem"] or run["state"]
            rows.append({"metric": f"report {run['id']}", "loadbench": link, "locust": ""})
            gates = run["summary"].get("slo")
            if gates:
                rows.append({"metric": f"SLOs {run['id']}", "loadbench": gates["text"], "locust": ""})
        if s["runs"]:
            rows.append({"metric": "reports & live page", "loadbench": "/loadbench/", "locust": ""})
        return rows

    def report_path(self, run_id: str) -> Path | None:
        """The report of a run of this session or a run directory right under the reports dir.

        Anything else (another path, ``..``, a link out of the reports dir) is None: not served.
        """
        if not _RUN_ID.fullmatch(run_id):
            return None
        run = self._run(run_id)
        if run is not None:
            path = run.run_dir / rundir.REPORT
        else:
            reports = self.base.reports_dir.resolve()
            path = (reports / run_id / rundir.REPORT).resolve()
            if path.parent.parent != reports:
                return None
        return path if path.is_file() else None


class _SayWriter:
    """A text stream for `begin_run`'s warnings that forwards whole lines to ``say``."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.strip():
                self.say(line.removeprefix("loadbench: "))
        return len(text)

    def flush(self) -> None:
        pass


# -- entry points --------------------------------------------------------------------------


def serve(config: RunConfig, web_host: str, web_port: int, argv: list[str], log: TextIO = sys.stderr) -> int:
    """``loadbench ui``: Locust's web UI with loadbench plugged in, until Ctrl-C or SIGTERM."""
    port = _web_port(web_host, web_port)
    exporter = open_exporter(config, log)  # a busy --metrics-port is bad input, before the UI
    prepared = prepare(config)
    scenario = prepared.scenario
    target = check_target(config.target)
    in_flight = InFlight() if counts_starts(scenario.user_classes) else None
    env = _environment(config, scenario, target, in_flight)
    runner = env.create_local_runner()
    web_ui = env.create_web_ui(host=web_host, port=port, delayed_start=True)
    # loadbench's own set-up: the scenario's set-up failures become one line (exit 2), and the
    # plugin is installed here with this command's settings, not by the scenario's init hook.
    set_up_scenario(scenario, env, runner, web_ui)
    if config.preflight:  # once, before the UI serves: a start there cannot refuse in one line
        preflight(scenario, config, target, argv, log)

    def say(text: str) -> None:
        log.write(f"loadbench: {text}\n")
        log.flush()

    plugin = WebUIPlugin(env, config, scenario, argv, prepared, say, in_flight, exporter).install()
    if in_flight is not None:
        in_flight.register(env)
    _start_web_ui(web_ui, web_host, port)
    shown = f"[{web_host}]" if ":" in web_host else web_host
    say(f"{scenario.name} against {redact_url(target)} ({scenario.reason})")
    say(f"web UI at http://{shown}:{port}/ (Ctrl-C to quit); runs go to {config.reports_dir}/")

    stop = gevent.event.Event()
    handlers = [gevent.signal_handler(sig, stop.set) for sig in (signal.SIGINT, signal.SIGTERM)]
    try:
        stop.wait()
    finally:
        say("stopping...")
        plugin.on_quitting()
        runner.quit()  # fires test_stop for a running test: its run ends "interrupted"
        plugin.wait_for_reports()
        exporter.finish()  # until the last run's final figures are scraped, at most --metrics-linger
        web_ui.stop()
        for h in handlers:
            h.cancel()
    return 0


def _web_port(web_host: str, web_port: int) -> int:
    """The port to serve on (``0``: a free one), checked before anything starts."""
    if not 0 <= web_port <= 65535:
        raise UsageError(f"--web-port must be between 0 and 65535, not {web_port}")
    try:
        # Bind once here for a one-line error (port taken, unknown address) before anything starts.
        with socket.create_server((web_host, web_port)) as probe:
            return int(probe.getsockname()[1])
    except OSError as exc:
        raise UsageError(f"cannot serve the web UI on {web_host}:{web_port}: {exc.strerror or exc}") from None


def _environment(
    config: RunConfig, scenario: Scenario, target: str, in_flight: InFlight | None
) -> Environment:
    """Locust's environment for the UI, its start form filled with this command's settings; its
    users' requests counted by ``in_flight`` when given."""
    options = scenario.options
    options.num_users = config.users  # the start form's defaults
    options.spawn_rate = config.spawn_rate or float(config.users)
    # Locust's UI re-parses sys.argv with its own parser for the start form's custom options:
    # give it the command line plain `locust` would have had (in memory only; ps is unchanged).
    header_args = [arg for h in config.headers for arg in ("--header", h)]
    sys.argv = ["locust", "-f", str(scenario.path), "-H", target, *config.scenario_args, *header_args]
    classes = scenario.user_classes
    return Environment(
        user_classes=classes if in_flight is None else counted_classes(classes, in_flight),
        events=events,
        host=target,
        parsed_options=options,
        locustfile=str(scenario.path),
    )


def _start_web_ui(web_ui: Any, web_host: str, port: int) -> None:
    """Start the UI's server and wait until it listens (a one-line error if it cannot)."""
    web_ui.start()
    deadline = time.monotonic() + 30
    while not (web_ui.server is not None and web_ui.server.started):
        if web_ui.greenlet is None or web_ui.greenlet.dead or time.monotonic() > deadline:
            raise UsageError(f"cannot serve the web UI on {web_host}:{port}")
        gevent.sleep(0.05)
