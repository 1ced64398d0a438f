"""What the fit takes from a run: service times, overheads, and the queue's waits taken out."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from loadbench.errors import UsageError
from loadbench.whatif.fit import MIN_REQUESTS, Fit, fit_run, replay_queue

DATA = Path(__file__).resolve().parents[1] / "data"


def open_loop_fit(sent_ms: list[float], service_ms: list[float], overhead_ms: list[float]) -> Fit:
    service = np.array(service_ms)
    return Fit(
        run_dir="synthetic",
        service_ms=service,
        overhead_ms=np.array(overhead_ms),
        source="server",
        method="the server's own time per request (X-T); the rest",
        requests=service.size,
        window_s=1.0,
        throughput_rps=1.0,
        load_model="open",
        arrival="poisson",
        users=None,
        gaps_ms=np.diff(np.array(sent_ms)),
        latency_ms=service,
        sent_ms=np.array(sent_ms),
    )


def test_replay_takes_each_requests_wait_out_of_its_overhead() -> None:
    # Sent 1 ms apart, 5 ms each on one server: they wait 0, 4 and 8 ms; the true overhead is 0.5.
    # Recorded out of order, as a run's records may be (by end, not by send).
    fit = open_loop_fit([2.0, 0.0, 1.0], [5.0, 5.0, 5.0], [8.5, 0.5, 4.5])
    replayed = replay_queue(fit, 1)
    assert replayed.overhead_ms == pytest.approx([0.5, 0.5, 0.5])
    assert "replaying the run's sends through 1 FIFO server" in replayed.method
    # Two servers: only the third waits (4 ms), so the others' overheads hold no wait.
    two = replay_queue(open_loop_fit([0.0, 1.0, 2.0], [5.0, 5.0, 5.0], [0.5, 0.5, 3.5]), 2)
    assert two.overhead_ms == pytest.approx([0.5, 0.5, 0.5])
    # Never below zero: a wait the replay overestimates leaves no negative overhead.
    assert replay_queue(open_loop_fit([0.0, 0.0], [5.0, 5.0], [0.0, 1.0]), 1).overhead_ms.min() == 0.0


def test_replay_leaves_what_cannot_have_queued_alone() -> None:
    fit = open_loop_fit([0.0, 1.0], [5.0, 5.0], [0.5, 4.5])
    closed = replace(fit, load_model="closed", users=2)
    assert replay_queue(closed, 2) is closed  # two users never wait for two servers
    assert replay_queue(closed, 1) is not closed
    latency = replace(fit, source="latency", sent_ms=None)
    assert replay_queue(latency, 1) is latency


def test_a_run_without_server_timing_fits_its_latency(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(DATA / "run-demo-json_post", run)
    fit = fit_run(run)
    assert fit.source == "latency" and fit.requests >= MIN_REQUESTS
    assert "round trip" in fit.method and fit.notes
    assert fit.load_model == "closed" and fit.users == 2 and fit.arrival is None
    assert fit.queueing_note(1) is not None and fit.queueing_note(2) is None
    given = fit_run(run, overhead_ms=0.5)
    assert np.all(given.overhead_ms == 0.5)
    assert given.mean_service_ms < fit.mean_service_ms


def test_too_few_requests_say_how_many_are_needed() -> None:
    with pytest.raises(UsageError, match=f"has 27 successful requests.*at least {MIN_REQUESTS}"):
        fit_run(DATA / "run-small")
