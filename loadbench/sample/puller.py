"""`AgentPuller`: the client of a sampling agent (`loadbench.sample.agent`), in the sampler process.

Consumes the agent's ``/time``, ``/info`` and ``/samples`` routes and produces samples in the
run directory's ``samples.jsonl`` form: ``unix_s`` moved onto the local clock (NTP-style offset
estimate) and every key prefixed ``<label>/``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from loadbench.errors import TargetError, UsageError
from loadbench.redact import redact_url
from loadbench.sample.collector import DEFAULT_PORT, TOKEN_ENV, host_label, one_line

SYNC_ROUNDS = 8
RESYNC_EVERY_S = 60.0
MAX_PAGES_PER_PULL = 50  # 250k samples: far more than a ring buffer holds; bounds a runaway loop
# After a failed pull, wait before the next try: an agent that times out would otherwise hold
# its pull thread (and the agent's own request handler) for a full timeout every second.
BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)


def _split_url(url: str) -> tuple[str, str | None]:
    """``http://user:pw@host:9109/`` -> (``http://host:9109``, ``pw``): the URL to show and use,
    and the credential it carried."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError:
        raise UsageError(
            f"--agent {redact_url(url)!r} is not a URL like http://gpu-box:{DEFAULT_PORT}"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"--agent URL must look like http://gpu-box:{DEFAULT_PORT}, got {parts.scheme}://..."
        )
    userinfo, at, hostport = parts.netloc.rpartition("@")
    secret = (userinfo.split(":", 1)[1] if ":" in userinfo else userinfo) if at else None
    clean = urlunsplit((parts.scheme, hostport, parts.path.rstrip("/"), "", ""))
    return clean, secret or None


class AgentPuller:
    """Pulls one agent's samples onto the local clock, for the sampler process.

    A token may also come in the URL's password (``http://:TOKEN@host:9109``); it is never
    shown. `pull` never raises: failures are counted in ``errors`` and kept in ``last_error``.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        label: str = "",
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        timeout_s: float = 2.0,
    ) -> None:
        self.url, url_secret = _split_url(url)
        token = token or url_secret
        if token is not None and not token.isascii():
            raise UsageError("the agent token must be ASCII (it travels in an HTTP header)")
        self.token = token
        self.label = label or host_label(self.url)
        self.clock = clock
        self.owns_client = client is None
        self.client = client or httpx.Client(
            trust_env=False,
            timeout=timeout_s,
            headers={"Authorization": f"Bearer {token}"} if token else None,
        )
        self.offset_s = 0.0
        self.uncertainty_s: float | None = None
        self.rtt_ms: float | None = None
        self.first_offset_s: float | None = None
        self.drift_s = 0.0  # latest offset minus the first: how far the two clocks walked apart
        self.last_sync = -math.inf
        self.syncs = 0
        self.since: int | None = None
        self.pulled = 0
        self.dropped = 0  # samples the agent's ring buffer lost before they were pulled
        self.errors = 0
        self.last_error: str | None = None
        self.last_pull_unix_s: float | None = None  # local wall clock of the last pull that worked
        self.failures_in_a_row = 0
        self.retry_at = -math.inf

    def _get(self, path: str) -> httpx.Response:
        """GET a route; raises TargetError for an unreachable agent or a refused token."""
        try:
            response = self.client.get(self.url + path)
        except httpx.HTTPError as exc:
            raise TargetError(f"agent {self.url} is unreachable: {one_line(exc)}") from None
        if response.status_code == 401:
            given = "the given token" if self.token else "no token (none given)"
            raise TargetError(
                f"agent {self.url} refused the token: it answered 401 to {given}; "
                f"set {TOKEN_ENV} to the token the agent was started with"
            )
        if response.status_code != 200:
            raise TargetError(
                f"agent {self.url} answered {path.split('?')[0]} with HTTP {response.status_code}: "
                "is it a loadbench agent?"
            )
        return response

    def _json(self, response: httpx.Response, path: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise TargetError(f"agent {self.url} answered {path} with something other than JSON") from None

    def start(self) -> dict[str, Any]:
        """Read the agent's facts and estimate the clock offset; the result goes in sampler.json."""
        info = self._json(self._get("/info"), "/info")
        if not isinstance(info, dict):
            raise TargetError(f"agent {self.url} answered /info with something other than an object")
        self.sync()
        seq = info.get("seq")
        # Pull from the last sample taken before the start: the remote series then covers the run
        # from its beginning, without the up-to-30-minute backlog of the ring buffer.
        self.since = max(0, seq - 1) if isinstance(seq, int) else None
        remote = {k: v for k, v in info.items() if k != "seq"}
        return {
            "url": self.url,
            "label": self.label,
            "offset_s": self.offset_s,
            "uncertainty_s": self.uncertainty_s,
            "rtt_ms": self.rtt_ms,
            "remote": remote,
        }

    def sync(self) -> None:
        """Estimate the offset of the agent's clock NTP-style from the fastest of a few round trips."""
        best: tuple[float, float, float] | None = None  # (round trip, t0 + t1, remote)
        for _ in range(SYNC_ROUNDS):
            t0 = self.clock()
            response = self._get("/time")
            t1 = self.clock()  # before parsing: the round trip ends when the answer is in
            remote = self._json(response, "/time")
            if not isinstance(remote, dict) or not isinstance(remote.get("unix_s"), int | float):
                raise TargetError(f"agent {self.url} answered /time without unix_s")
            if best is None or t1 - t0 < best[0]:
                best = (t1 - t0, t0 + t1, float(remote["unix_s"]))
        assert best is not None
        rtt, t_sum, remote_s = best
        # The fastest round trip bounds the error best: the remote reading lies within it.
        self.offset_s = remote_s - t_sum / 2
        self.uncertainty_s = rtt / 2
        self.rtt_ms = round(rtt * 1000, 3)
        if self.first_offset_s is None:
            self.first_offset_s = self.offset_s
        self.drift_s = self.offset_s - self.first_offset_s
        self.syncs += 1
        self.last_sync = time.monotonic()

    def pull(self) -> list[dict[str, Any]]:
        """The samples taken since the last pull, on the local clock with keys ``<label>/<key>``."""
        out: list[dict[str, Any]] = []
        now = time.monotonic()
        if now < self.retry_at:
            return out
        if now - self.last_sync >= RESYNC_EVERY_S:
            try:
                self.sync()
            except Exception as exc:  # keep the previous offset; the samples still come
                self._failed(exc)
                self.last_sync = now  # try again in a minute, not on every pull
        try:
            for _ in range(MAX_PAGES_PER_PULL):
                path = "/samples" if self.since is None else f"/samples?since={self.since}"
                body = self._json(self._get(path), path)
                for sample in body["samples"]:
                    out.append(self._localize(sample))
                self.dropped += int(body.get("dropped", 0))
                self.since = int(body["next"])
                if not body.get("more"):
                    break
        except Exception as exc:  # a lost agent must not end the sampler
            self._failed(exc)
            self.retry_at = time.monotonic() + BACKOFF_S[min(self.failures_in_a_row, len(BACKOFF_S)) - 1]
        else:
            self.failures_in_a_row = 0
            self.last_pull_unix_s = round(self.clock(), 6)
        self.pulled += len(out)
        return out

    def _failed(self, exc: BaseException) -> None:
        self.errors += 1
        self.failures_in_a_row += 1
        line = one_line(exc)
        if self.token:
            line = line.replace(self.token, "***")  # never in a message, whatever the server echoed
        self.last_error = line if len(line) <= 300 else line[:297] + "..."

    def _localize(self, sample: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"unix_s": round(float(sample["unix_s"]) - self.offset_s, 6)}
        prefix = self.label + "/"
        for key, value in sample.items():
            if key not in ("seq", "unix_s"):
                out[prefix + key] = value
        return out

    def summary(self) -> dict[str, Any]:
        """How the pulling went (for a final note in the run directory); never holds the token."""
        return {
            "url": self.url,
            "label": self.label,
            "offset_s": self.offset_s,
            "uncertainty_s": self.uncertainty_s,
            "drift_s": self.drift_s,
            "syncs": self.syncs,
            "pulled": self.pulled,
            "dropped": self.dropped,
            "errors": self.errors,
            "last_error": self.last_error,
            "last_pull_unix_s": self.last_pull_unix_s,
        }

    def close(self) -> None:
        if self.owns_client:
            self.client.close()
