"""What a what-if takes from a measured run: the service-time distribution, each request's
overhead outside the server's queue, and the arrivals.

Consumes a run directory (``meta.json``, ``requests.csv``); produces a `Fit`. Only successful
requests of the measured window count (``docs/metrics.md``, The measured window), each timed
from its actual send (an open loop's lateness is the generator's, not the server's).

What queues is the server's time, not the client's: a latency measured at low load also holds
the client's and the transport's time, which waits in no server queue. Taken as service time,
it overstates utilisation (a 10 ms server seen through 2–3 ms of client overhead reads as 80 %
busy when it is 68 %). So the service time is, in this order:

1. ``server``: the server's own time per request (``requests.csv`` ``server_ms``, from
   ``--server-time-header``), the overhead being the rest of each request's latency;
2. ``latency``: the latency minus a fixed overhead: ``--overhead-ms`` when given, else the
   network round trip the driver measured before the load (``meta.json`` ``network``), which
   leaves the client's own time inside the service time (said in the assumptions).

Either way the latencies hold queueing only if requests waited for a server during the run:
a closed loop of at most as many users as servers never queues; anything else is said.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from loadbench.analyze.window import Window, measure
from loadbench.errors import UsageError
from loadbench.record import rundir
from loadbench.record.columnar import read_run_requests
from loadbench.whatif.queueing import FloatArray
from loadbench.whatif.simulate import starts_of

MIN_REQUESTS = 200  # the fitted p99 rests on 2 requests: the simulation resamples the tail it saw
SERVER_COLUMN = "server_ms"
# The server's time must cover nearly every request to be the service time: a header missing
# on a tenth of the answers is a route or an error path that does not report, not a sample.
SERVER_COVERAGE = 0.9


@dataclass(frozen=True)
class Fit:
    """The measured run, reduced to what the queueing models need."""

    run_dir: str
    service_ms: FloatArray
    overhead_ms: FloatArray  # paired with service_ms
    source: str  # "server" or "latency"
    method: str  # how the service time was obtained, in words
    requests: int  # successful requests of the window that the fit rests on
    window_s: float
    throughput_rps: float  # successful requests per second in the window
    load_model: str  # "open" or "closed"
    arrival: str | None  # an open loop's arrival process (constant, poisson, gamma, trace)
    users: int | None  # closed loop
    gaps_ms: FloatArray  # inter-arrival gaps of the window's requests (sent or due), ms
    latency_ms: FloatArray  # the measured client latencies, to compare predictions with
    notes: list[str] = field(default_factory=list)
    sent_ms: FloatArray | None = None  # server source: each request's send time, ms, paired

    @property
    def mean_service_ms(self) -> float:
        return float(np.mean(self.service_ms))

    @property
    def arrival_scv(self) -> float:
        """Squared coefficient of variation of the measured inter-arrival gaps."""
        mean = float(np.mean(self.gaps_ms)) if self.gaps_ms.size else 0.0
        return float(np.var(self.gaps_ms) / (mean * mean)) if mean > 0 else 1.0

    def may_have_queued(self, servers: int) -> bool:
        """Whether requests may have waited for one of ``servers`` during the run: only a closed
        loop of at most that many users cannot have."""
        return not (self.load_model == "closed" and self.users is not None and self.users <= servers)

    def queueing_note(self, servers: int) -> str | None:
        """Why the fitted service times may hold queueing at ``servers`` servers, or None."""
        if self.source == "server" or not self.may_have_queued(servers):
            return None
        load = f"{self.users} users" if self.load_model == "closed" else "an open loop"
        return (
            f"the run ({load}) may have queued requests on {servers} server(s): its latencies, taken as "
            "service times, then hold waiting and the predictions overstate it; fit on a run of at most "
            f"{servers} user(s), or give the server's own time (`loadbench run --server-time-header`)"
        )


def _server_times(measured: Any, ok: Any) -> FloatArray | None:
    if SERVER_COLUMN not in measured.columns:
        return None
    values = np.asarray(measured[SERVER_COLUMN].to_numpy(dtype=np.float64)[ok])
    finite = np.isfinite(values)
    if values.size == 0 or finite.mean() < SERVER_COVERAGE:
        return None
    return values


def _rtt_ms(meta: dict[str, Any]) -> float | None:
    network = meta.get("network")
    rtt = network.get("rtt_ms_median") if isinstance(network, dict) else None
    return float(rtt) if isinstance(rtt, int | float) and not isinstance(rtt, bool) and rtt >= 0 else None


def _split(
    w: Window, ok: Any, overhead_ms: float | None
) -> tuple[FloatArray, FloatArray, str, str, list[str], FloatArray | None]:
    """service, overhead, source, method, notes, and (server source) the send times."""
    sent_latency = np.asarray(w.measured_service_ms[ok], dtype=np.float64)
    server = _server_times(w.measured, ok)
    if server is not None and overhead_ms is None:
        have = np.isfinite(server)
        service = server[have]
        sent_ms = np.asarray(w.sent_unix_s[w.in_window][ok][have], dtype=np.float64) * 1000.0
        overhead = np.maximum(sent_latency[have] - service, 0.0)
        header = w.settings.get("server_time_header") or "the server's timing header"
        method = (
            f"the server's own time per request ({header}); the rest of each latency "
            f"(median {np.median(overhead):.3f} ms) as overhead outside the queue"
        )
        notes = [] if have.all() else [f"{int((~have).sum())} requests without the server's time left out"]
        return service, overhead, "server", method, notes, sent_ms - sent_ms.min()
    notes = []
    if overhead_ms is None:
        rtt = _rtt_ms(w.meta)
        overhead_ms = rtt if rtt is not None else 0.0
        said = (
            f"the network round trip measured before the load ({overhead_ms:.3f} ms)"
            if rtt is not None
            else "no overhead (the run measured no round trip)"
        )
        notes.append(
            "the client's own time per request stays in the service time (no server timing in the run): "
            "give --overhead-ms, or record the server's time with `loadbench run --server-time-header`"
        )
    else:
        said = f"--overhead-ms {overhead_ms:g}"
    service = np.maximum(sent_latency - overhead_ms, 1e-3)
    overhead = np.full_like(service, overhead_ms)
    method = f"client latency (from the send) minus {said}"
    return service, overhead, "latency", method, notes, None


def fit_run(run_dir: Path, overhead_ms: float | None = None) -> Fit:
    """Fit a run directory; `UsageError` (one line) when it cannot be fitted."""
    meta = rundir.read_meta(run_dir)
    # Each attempt of a retried request arrived at the server's queue on its own: fit attempts,
    # not the user-visible requests (whose latency holds the backoff waits).
    requests = read_run_requests(run_dir).assign(request_id="")
    w, _ = measure(meta, requests)
    ok = w.ok_mask
    if int(ok.sum()) < MIN_REQUESTS:
        raise UsageError(
            f"{run_dir} has {int(ok.sum())} successful requests in its measured window; a what-if fit "
            f"needs at least {MIN_REQUESTS} (run longer, e.g. --duration 60s)"
        )
    service, overhead, source, method, notes, sent_ms = _split(w, ok, overhead_ms)
    sent = np.sort(np.asarray(w.measured["start_unix_s"].to_numpy(dtype=np.float64)))
    gaps = np.diff(sent) * 1000.0
    load = w.load
    users = w.settings.get("users")
    return Fit(
        run_dir=str(run_dir),
        service_ms=service,
        overhead_ms=overhead,
        source=source,
        method=method,
        requests=int(service.size),
        window_s=w.duration_s,
        throughput_rps=int(ok.sum()) / w.duration_s if w.duration_s > 0 else 0.0,
        load_model="open" if load.get("model") == "open" else "closed",
        arrival=str(load["arrival"]) if load.get("model") == "open" and load.get("arrival") else None,
        users=int(users) if isinstance(users, int) and not isinstance(users, bool) else None,
        gaps_ms=np.asarray(gaps[gaps >= 0], dtype=np.float64),
        latency_ms=np.asarray(w.ok_latency, dtype=np.float64),
        notes=notes,
        sent_ms=sent_ms,
    )


def replay_queue(fit: Fit, servers: int) -> Fit:
    """The fit with each request's wait for a server taken out of its overhead.

    With the server's own time, latency − server time is the overhead outside the queue only
    for a request that did not wait: in a run that queued, it also holds the wait, which a
    prediction then counts twice. The waits are recovered by replaying the run's own sends
    through a FIFO queue of ``servers`` (the measured server's concurrency) with the service
    times the server reported, in order; what is left is the overhead."""
    if fit.source != "server" or fit.sent_ms is None or not fit.may_have_queued(servers):
        return fit
    order = np.argsort(fit.sent_ms, kind="stable")
    arrivals, service = fit.sent_ms[order], fit.service_ms[order]
    wait = np.empty_like(arrivals)
    wait[order] = starts_of(arrivals, service, servers) - arrivals
    overhead = np.maximum(fit.overhead_ms - wait, 0.0)
    method = (
        f"{fit.method.split('; ')[0]}; the rest of each latency less the wait that replaying the run's "
        f"sends through {servers} FIFO server(s) gives it (median {np.median(overhead):.3f} ms) as "
        "overhead outside the queue"
    )
    return replace(fit, overhead_ms=overhead, method=method)
