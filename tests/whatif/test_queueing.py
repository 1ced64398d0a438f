"""The closed forms against answers known by hand or from the textbooks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loadbench.whatif.queueing import (
    Queue,
    UnstableError,
    erlang_c,
    erlang_c_mmc,
    kingman,
    pollaczek_khinchine_wait_ms,
)

QS = (0.5, 0.9, 0.99, 0.999)


def exp_service(mean_ms: float, n: int = 100_000, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).exponential(mean_ms, n)


def test_erlang_c_known_values() -> None:
    # One server: the probability of waiting is the utilisation.
    assert erlang_c(1, 0.7) == pytest.approx(0.7)
    # Two servers at 1 Erlang: (a^2/2! * 2/(2-1)) / (1 + a + a^2/2! * 2) = 1/3.
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    # The textbook sum, computed directly for a case that does not overflow.
    c, a = 5, 3.5
    top = a**c / math.factorial(c) * c / (c - a)
    assert erlang_c(c, a) == pytest.approx(top / (sum(a**k / math.factorial(k) for k in range(c)) + top))
    # Beyond the textbook's overflow: 400 servers stay finite and between 0 and 1.
    assert 0 < erlang_c(400, 380.0) < 1
    assert erlang_c(3, 3.0) == 1.0


def test_mm1_quantiles_are_the_exponential_sojourn() -> None:
    # M/M/1: the time in the system is exponential with rate mu - lambda, exactly.
    service = exp_service(10.0)
    queue = Queue(70.0, 1, service, np.zeros_like(service))
    d = erlang_c_mmc(queue, QS)
    theta = 1 / float(service.mean()) - 0.07
    for q in QS:
        assert d.quantiles[q] == pytest.approx(-math.log(1 - q) / theta, rel=1e-6)
    assert d.mean == pytest.approx(1 / theta, rel=1e-9)
    assert d.wait_probability == pytest.approx(queue.utilisation)


def test_overhead_shifts_the_latency() -> None:
    service = exp_service(10.0)
    plain = erlang_c_mmc(Queue(50.0, 2, service, np.zeros_like(service)), QS)
    shifted = erlang_c_mmc(Queue(50.0, 2, service, np.full_like(service, 2.0)), QS)
    for q in QS:
        assert shifted.quantiles[q] == pytest.approx(plain.quantiles[q] + 2.0, rel=1e-6)
    assert shifted.mean == pytest.approx(plain.mean + 2.0)


def test_kingman_is_pollaczek_khinchine_for_one_server_and_poisson() -> None:
    rng = np.random.default_rng(2)
    service = rng.lognormal(math.log(10.0), 0.6, 50_000)
    queue = Queue(60.0, 1, service, np.zeros_like(service))
    assert kingman(queue, QS).wait_mean == pytest.approx(pollaczek_khinchine_wait_ms(60.0, service), rel=1e-9)
    # Deterministic service (M/D/1): half the M/M/1 wait, rho S / (2 (1 - rho)).
    fixed = np.full(1000, 10.0)
    assert pollaczek_khinchine_wait_ms(50.0, fixed) == pytest.approx(0.5 * 10.0 / (2 * 0.5))


def test_kingman_equals_erlang_c_for_exponential_service() -> None:
    # G/G/c with exponential service and Poisson arrivals is M/M/c: the same mean wait.
    service = exp_service(10.0, 400_000)
    queue = Queue(300.0, 4, service, np.zeros_like(service))
    assert kingman(queue, QS).wait_mean == pytest.approx(erlang_c_mmc(queue, QS).wait_mean, rel=0.01)


def test_quantiles_grow_with_load_and_fall_with_servers() -> None:
    service = exp_service(10.0)
    zero = np.zeros_like(service)
    p99 = [kingman(Queue(rate, 2, service, zero), QS).quantiles[0.99] for rate in (50, 100, 150, 190)]
    assert p99 == sorted(p99)
    assert kingman(Queue(150, 3, service, zero), QS).quantiles[0.99] < p99[2]


def test_unstable_is_refused() -> None:
    service = np.full(100, 10.0)
    with pytest.raises(UnstableError, match=r"unstable: utilisation 1\.00 >= 1"):
        kingman(Queue(100.0, 1, service, np.zeros_like(service)), QS)
    assert pollaczek_khinchine_wait_ms(150.0, service) == math.inf
