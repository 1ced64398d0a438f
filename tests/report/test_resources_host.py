"""The report's resources section marks the host CPU row of a saturated host shared with the server."""

from __future__ import annotations

from typing import Any

from loadbench.report.resources import resources_html


def _summary(target: str, server: bool, host_mean: float) -> dict[str, Any]:
    spread = {"mean": host_mean, "p95": 100.0, "max": 100.0}
    return {
        "run": {"target": target},
        "resources": {
            "sampled": True,
            "samples": 9,
            "host": {"cpu_percent": spread},
            "host_cpu": {"mean_percent": host_mean, "limit_percent": 90.0, "at_limit": host_mean >= 90.0},
            "server_process": {"cpu_percent": {"mean": 96.0, "p95": 99.0, "max": 99.0}} if server else None,
            "generator": {"cpu_mean_percent": 40.0, "cpu_max_percent": 42.0, "saturated": False},
            "notices": [],
        },
    }


def _host_row(page: str) -> str:
    row = page[page.index("host CPU (% of all cores)") :]
    return row[: row.index("</tr>")]


def test_a_saturated_shared_host_is_flagged_on_its_cpu_row() -> None:
    page = resources_html(_summary("http://10.0.0.7:8000", server=True, host_mean=99.9), None)
    assert (
        "<span class='flag' title='host at its limit: 99.9 % of all cores on average (time-weighted); "
        "the generator shared it with the server (the server process was sampled on this host)'>saturated</span>"
    ) in _host_row(page)
    assert "generator saturated" not in page  # the generator itself was under its limit
    loopback = resources_html(_summary("http://[::1]:8000", server=False, host_mean=95.0), None)
    assert "the target ::1 is this host" in _host_row(loopback)


def test_a_busy_host_without_the_server_or_under_the_limit_is_not_flagged() -> None:
    for summary in (
        _summary("http://10.0.0.7:8000", server=False, host_mean=99.9),
        _summary("http://127.0.0.1:8000", server=True, host_mean=89.9),
    ):
        assert "class='flag'" not in resources_html(summary, None)
