"""``--pushgateway URL``: the live figures pushed to a Prometheus Pushgateway, for runs too short
(or too far behind a firewall) to be scraped.

The figures are the live endpoint's (`loadbench.drive.livemetrics`, the same registry), pushed
with ``prometheus_client``'s ``push_to_gateway`` as the group ``job="loadbench",
run_id="<run id>"`` (a push replaces the group: the gateway holds the run's latest figures)
every ``--push-interval`` while the load runs, and once more after the last record, so the
gateway ends with the run's totals. `check_gateway` asks the gateway's ``/-/ready`` before
anything is written: an unreachable gateway is bad input (one line, exit 2). A push that fails
during the run is counted in ``meta.json`` (``live_metrics.pushes``), said once on the terminal,
and becomes a notice of the summary; it never stops the run.

Pushes go from a greenlet (Locust's gevent patches the sockets ``urllib`` uses), never from
the request path.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any, TextIO

import gevent
from prometheus_client import push_to_gateway
from prometheus_client.registry import CollectorRegistry

from loadbench.errors import UsageError
from loadbench.redact import redact_url, scrub

JOB = "loadbench"
PUSH_TIMEOUT_S = 5.0


def check_gateway(url: str, timeout_s: float = PUSH_TIMEOUT_S) -> str:
    """``url`` without a trailing slash, once its ``/-/ready`` answers 200; else `UsageError`."""
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--pushgateway must be an http:// or https:// URL, not {redact_url(url)!r}")
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=timeout_s) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise UsageError(
            f"--pushgateway {redact_url(url)} is unreachable: {scrub(str(reason), [])}"
        ) from None
    if status != 200:
        raise UsageError(f"--pushgateway {redact_url(url)}: /-/ready answered HTTP {status}, not 200")
    return url


class Pusher:
    """Pushes one registry to one gateway: every ``interval_s`` from `start`, and at `final`."""

    def __init__(self, url: str, interval_s: float, log: TextIO | None) -> None:
        self.url = url
        self.interval_s = interval_s
        self.log = log  # None: quiet
        self.registry: CollectorRegistry | None = None
        self.grouping: dict[str, str] = {}
        self.record: dict[str, Any] = {"url": redact_url(url), "ok": 0, "failed": 0}
        self._loop: gevent.Greenlet | None = None

    def start(self, registry: CollectorRegistry, run_id: str, meta: dict[str, Any]) -> None:
        """Push the run's figures from now on; ``meta["live_metrics"]["pushes"]`` counts how it goes."""
        self.registry, self.grouping = registry, {"run_id": run_id}
        self.record.update(ok=0, failed=0)
        self.record.pop("last_error", None)
        meta.setdefault("live_metrics", {})["pushes"] = self.record
        self.stop()
        self._loop = gevent.spawn(self._every_interval)

    def _every_interval(self) -> None:
        while True:
            self.push()
            gevent.sleep(self.interval_s)

    def push(self) -> bool:
        if self.registry is None:
            return False
        try:
            push_to_gateway(self.url, JOB, self.registry, self.grouping, timeout=PUSH_TIMEOUT_S)
        except Exception as exc:  # urllib's and the gateway's errors alike: a notice, never a crash
            self.record["failed"] += 1
            if "last_error" not in self.record and self.log is not None:
                self.log.write(f"loadbench: --pushgateway: a push failed: {scrub(str(exc), [])[:200]}\n")
                self.log.flush()
            self.record["last_error"] = scrub(str(exc), [])[:200]
            return False
        self.record["ok"] += 1
        return True

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.kill()
            self._loop = None

    def final(self) -> None:
        """After the last record: stop the interval pushes and push the final figures once."""
        self.stop()
        if self.registry is not None and not self.push() and self.log is not None:
            self.log.write(
                f"loadbench: --pushgateway {self.record['url']} did not get the run's final figures\n"
            )
            self.log.flush()
