"""``--metrics-port``: a live Prometheus endpoint at ``/metrics`` while the run goes on.

`open_exporter` binds the port before anything is written (a busy port is a `UsageError`:
one line, exit 2, no load). `Exporter.attach` makes the live figures
(`loadbench.drive.livemetrics`) the recorder's counter, so they count every record as it is
written to ``requests.csv``: a local run's, or every worker's on a distributed master, which
records the lines it receives through the same recorder. `Exporter.finish` keeps serving after the load until
one scrape has read the final figures, at most ``--metrics-linger``, so the totals a scraper
stores are the run's. The sampler's latest figures are served beside them
(`loadbench.drive.samplegauges`, from ``samples.jsonl``).

``--pushgateway`` pushes the same registry (`loadbench.drive.pushgateway`), with or without the
endpoint. Served by gevent's WSGI server (Locust runs under gevent) with ``prometheus_client``'s WSGI app
over the run's own registry. Without ``--metrics-port`` every method does nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TextIO

import gevent
import gevent.event
from gevent.pywsgi import WSGIServer
from prometheus_client import make_wsgi_app

import loadbench
from loadbench.drive.config import RunConfig
from loadbench.drive.inflight import InFlight
from loadbench.drive.livemetrics import Gauges, LiveMetrics, RunInfo
from loadbench.drive.openloop import Dispatcher
from loadbench.drive.pushgateway import Pusher, check_gateway
from loadbench.drive.recorder import Recorder
from loadbench.drive.samplegauges import SampleGauges
from loadbench.errors import UsageError
from loadbench.record import rundir

PATH = "/metrics"


class Exporter:
    """The endpoint of one run; inert when ``server`` is None (no ``--metrics-port``)."""

    def __init__(
        self,
        server: WSGIServer | None = None,
        linger_s: float = 0.0,
        log: TextIO | None = None,
        pusher: Pusher | None = None,
    ) -> None:
        self.server = server
        self.pusher = pusher
        self.linger_s = linger_s
        self.log = log  # None: quiet
        self.metrics: LiveMetrics | None = None
        self._app: Callable[..., Iterable[bytes]] | None = None
        self._final = False
        self.final_scraped = gevent.event.Event()

    @property
    def url(self) -> str | None:
        if self.server is None:
            return None
        return f"http://{self.server.server_host}:{self.server.server_port}{PATH}"

    def attach(
        self,
        meta: dict[str, Any],
        recorder: Recorder,
        runner: Any,
        in_flight: InFlight | None = None,
        dispatcher: Dispatcher | None = None,
    ) -> None:
        """Feed the figures from ``recorder``'s lines from now on and start serving them. Called
        again (the web UI's next run), the endpoint serves the new run's figures from zero; between
        runs it keeps serving the last one's final figures."""
        if self.server is None and self.pusher is None:
            return
        info = RunInfo(
            run_id=str(meta.get("run_id", "")),
            scenario=str(meta.get("scenario", "")),
            target=str(meta.get("target", "")),
            version=loadbench.__version__,
        )
        gauges = _gauges(runner, in_flight, dispatcher)
        gauges.start_unix_s = lambda: meta.get("started_unix_s")
        self.metrics = LiveMetrics(info, recorder.secrets, gauges)
        registry = self.metrics.registry()
        if recorder.run_dir is not None:  # a worker's recorder has none, and serves no endpoint
            registry.register(SampleGauges(recorder.run_dir / rundir.SAMPLES))
        self._app = make_wsgi_app(registry)
        recorder.counter = self.metrics
        meta["live_metrics"] = {"url": self.url, "linger_s": self.linger_s}
        self._final = False
        self.final_scraped.clear()
        if self.server is not None and not self.server.started:  # the web UI: one endpoint, run after run
            self.server.start()
            self._say(f"live metrics at {self.url}")
        if self.pusher is not None:
            self.pusher.start(registry, info.run_id, meta)

    def _say(self, line: str) -> None:
        if self.log is not None:
            self.log.write(f"loadbench: {line}\n")
            self.log.flush()

    def finish(self) -> None:
        """After the last record: serve until a scrape has read the final figures, at most
        ``linger_s``, then close. Call once the recorder is closed."""
        if self.pusher is not None:
            self.pusher.final()
        if self.server is None:
            return
        self._final = True
        if self.metrics is not None and self.linger_s > 0:
            self._say(f"waiting up to {self.linger_s:g} s for a last scrape of {self.url}")
            self.final_scraped.wait(self.linger_s)
        self.server.stop(timeout=1.0)  # lets a scrape being answered finish
        self.server = None

    def _serve(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH or self._app is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [f"loadbench serves its metrics at {PATH}\n".encode()]
        final = self._final  # read before the figures are: a scrape begun earlier may miss the last
        body = self._app(environ, start_response)
        if final:
            self.final_scraped.set()
        return body


def _gauges(runner: Any, in_flight: InFlight | None, dispatcher: Dispatcher | None) -> Gauges:
    gauges = Gauges(users=lambda: float(runner.user_count))
    if dispatcher is not None:
        stats = dispatcher.stats
        gauges.in_flight = lambda: float(dispatcher.in_flight(runner.user_count))
        gauges.schedule = lambda: (stats.due, stats.handed_out, stats.dropped)
    elif in_flight is not None:
        gauges.in_flight = lambda: float(max(in_flight.started - in_flight.ended, 0))
    return gauges


def open_exporter(config: RunConfig, log: TextIO) -> Exporter:
    """The endpoint of ``--metrics-port``, its port bound now (not yet serving), and the pusher of
    ``--pushgateway``, the gateway checked now; what they do is said on ``log`` unless ``config.quiet``."""
    pusher = None
    if config.pushgateway is not None:
        url = check_gateway(config.pushgateway)
        pusher = Pusher(url, config.push_interval_s, None if config.quiet else log)
    if config.metrics_port is None:
        return Exporter(pusher=pusher)
    if not 0 <= config.metrics_port <= 65535:
        raise UsageError(f"--metrics-port must be 0 to 65535, not {config.metrics_port}")
    if not config.metrics_linger_s >= 0:
        raise UsageError(f"--metrics-linger must be at least 0 s, not {config.metrics_linger_s:g}")
    exporter = Exporter(linger_s=config.metrics_linger_s, log=None if config.quiet else log, pusher=pusher)
    server = WSGIServer((config.metrics_bind, config.metrics_port), exporter._serve, log=None)
    try:
        server.init_socket()
    except OSError as exc:
        where = f"{config.metrics_bind}:{config.metrics_port}"
        raise UsageError(f"--metrics-port: cannot listen on {where}: {exc.strerror or exc}") from None
    exporter.server = server
    return exporter
