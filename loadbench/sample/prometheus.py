"""Scrape Prometheus metrics endpoints and turn successive scrapes into per-sample values.

Consumes the Prometheus text exposition format 0.0.4 (and the common OpenMetrics
extensions: ``# EOF``, ``foo_total`` / ``foo_created`` samples of a family ``foo``,
exemplars, float-second timestamps) as served by vLLM, TGI, Triton and the DCGM exporter.

Produces:

* `parse_text` (`loadbench.protocols.exposition`, re-exported here): ``{family name: Family}`` with
  every sample attached to its family.
* `Scraper.scrape`: a flat ``{"prom.<key>": float | None}`` dict for one timeline sample.
  Gauges and untyped series pass through; counters become per-second rates between
  successive scrapes; histograms become interval quantiles (p50/p90/p99), an observation
  rate and a mean; summaries keep their quantiles and get a rate and mean like histograms.
  Values that are not finite become None, because the run directory's JSON has no
  spelling for NaN or infinity.

No dependency beyond httpx: the parser is loadbench's own (`loadbench.protocols.exposition`, shared with
`loadbench.protocols.triton_stats`).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

import httpx

from loadbench.errors import UsageError
from loadbench.protocols.exposition import (
    Family,
    Labels,
    PrometheusParseError,
    Sample,
    parse_text,
    series_key,
)
from loadbench.redact import redact_url, scrub, secret_values

__all__ = [
    "KEY_PREFIX",
    "QUANTILES",
    "Family",
    "PrometheusParseError",
    "Sample",
    "Scraper",
    "histogram_quantile",
    "parse_text",
    "series_key",
]

KEY_PREFIX = "prom."
# (key suffix, quantile) computed for every histogram.
QUANTILES: tuple[tuple[str, float], ...] = (("_p50", 0.5), ("_p90", 0.9), ("_p99", 0.99))

_SUMMARY_SUFFIXES = ("_rate", "_mean")
_HISTOGRAM_SUFFIXES = (*_SUMMARY_SUFFIXES, *(suffix for suffix, _ in QUANTILES))

# Ask for the classic text format; servers that also speak OpenMetrics or protobuf then
# send the one format this parser is tested against.
ACCEPT = "text/plain;version=0.0.4;q=1.0,*/*;q=0.1"


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile over cumulative ``(upper bound, count)`` buckets.

    Linear interpolation inside the bucket holding the rank; a rank in the +Inf bucket
    gives the highest finite bound. None when there are no observations or no +Inf bucket.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} is outside [0, 1]")
    buckets = sorted(buckets)
    if len(buckets) < 2 or buckets[-1][0] != math.inf:
        return None
    # Counts scraped non-atomically can dip; Prometheus flattens them the same way.
    fixed: list[tuple[float, float]] = []
    running = 0.0
    for bound, count in buckets:
        running = max(running, count)
        fixed.append((bound, running))
    observations = fixed[-1][1]
    if observations <= 0:
        return None
    rank = q * observations
    b = next(i for i, (_, count) in enumerate(fixed) if count >= rank)
    if b == len(fixed) - 1:
        return fixed[-2][0]
    if b == 0 and fixed[0][0] <= 0:
        return fixed[0][0]
    start, end, count = 0.0, fixed[b][0], fixed[b][1]
    if b > 0:
        start = fixed[b - 1][0]
        count -= fixed[b - 1][1]
        rank -= fixed[b - 1][1]
    if count <= 0:  # only at q == 0 with an empty lowest bucket
        return start
    return start + (end - start) * (rank / count)


def _bucket_bound(le: str | None) -> float | None:
    if le is None:
        return None
    try:
        return float(le)
    except ValueError:
        return None


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass
class _Group:
    """One histogram or summary series (labels minus ``le``) within one scrape."""

    buckets: dict[float, float] = field(default_factory=dict)
    sum: float | None = None
    count: float | None = None


# (time, value) for counters; (time, group) for histograms and summaries.
_CounterState = tuple[float, float]
_GroupState = tuple[float, _Group]

_KEY_CACHE_LIMIT = 50_000


class Scraper:
    """Scrape one URL repeatedly; turn each scrape into flat values for a sample."""

    def __init__(
        self,
        url: str,
        match: str | None = None,
        timeout_s: float = 2.0,
        headers: dict[str, str] | None = None,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError):
            raise UsageError(f"bad metrics URL {url!r}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise UsageError(f"bad metrics URL {url!r}: use http://host:port/metrics")
        self._match: re.Pattern[str] | None = None
        if match is not None:
            try:
                self._match = re.compile(match)
            except re.error as exc:
                raise UsageError(f"bad metrics match regex {match!r}: {exc}") from None
        self.url = url
        self.match = match
        # What messages and the run directory show: credentials in the URL masked.
        self.shown_url = redact_url(url)
        self.timeout_s = timeout_s
        self._headers = {"Accept": ACCEPT, **(headers or {})}
        self._secrets = secret_values([f"{k}: {v}" for k, v in self._headers.items()], url)
        self._owns_client = client is None
        # trust_env=False: proxy variables must not reroute a scrape of a local model server.
        self._client = client if client is not None else httpx.Client(trust_env=False)
        self._clock = clock
        self.scrapes = 0  # attempts
        self.errors = 0
        self.last_error: str | None = None
        # The most series one successful scrape kept: 0 after successes means --scrape-match
        # matched nothing (or the endpoint serves nothing), which `summary` lets a reader see.
        self.series_max = 0
        self._counters: dict[str, _CounterState] = {}
        self._groups: dict[str, _GroupState] = {}
        # The same series come back every scrape: remember their keys and match verdicts.
        self._keys: dict[tuple[str, Labels], str] = {}
        self._verdicts: dict[str, bool] = {}

    def close(self) -> None:
        """Close the HTTP client if this scraper made it."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> Scraper:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def scrape(self) -> dict[str, float | None]:
        """One scrape as ``{"prom.<key>": value}``; ``{}`` (and ``errors`` + 1) when it fails."""
        self.scrapes += 1
        url = self.shown_url
        try:
            response = self._client.get(self.url, headers=self._headers, timeout=self.timeout_s)
            # Read the clock once the answer is in: that is when the server read its counters.
            now = self._clock()
            if response.status_code != 200:
                return self._fail(f"HTTP {response.status_code} from {url}")
            families = parse_text(response.text)
            out = self.values(families, now)
        except httpx.TimeoutException:
            return self._fail(f"{url} did not answer within {self.timeout_s:g} s")
        except httpx.HTTPError as exc:
            return self._fail(f"{url} is unreachable: {exc or type(exc).__name__}")
        except PrometheusParseError as exc:
            return self._fail(f"unparsable metrics from {url}: {exc}")
        except Exception as exc:
            # A sampler must outlive any single bad scrape, whatever went wrong in it.
            return self._fail(f"scrape of {url} failed: {type(exc).__name__}: {exc}")
        self.series_max = max(self.series_max, len(out))
        return out

    def _fail(self, message: str) -> dict[str, float | None]:
        self.errors += 1
        # An exception's text may quote the URL or a header: never keep a credential.
        line = " ".join(scrub(message, self._secrets).split())
        self.last_error = line if len(line) <= 300 else line[:297] + "..."
        return {}

    def summary(self) -> dict[str, object]:
        """How the scraping went, for ``sampler.json``; credentials masked."""
        return {
            "url": self.shown_url,
            "match": self.match,
            "scrapes": self.scrapes,
            "errors": self.errors,
            "last_error": self.last_error,
            "series_max": self.series_max,
        }

    def _key(self, name: str, labels: Labels) -> str:
        cache_key = (name, labels)
        key = self._keys.get(cache_key)
        if key is None:
            if len(self._keys) > _KEY_CACHE_LIMIT:  # label churn (e.g. request ids) must not grow memory
                self._keys.clear()
            key = self._keys[cache_key] = series_key(name, labels)
        return key

    def _kept(self, family: str, key: str) -> bool:
        if self._match is None:
            return True
        verdict = self._verdicts.get(key)
        if verdict is None:
            if len(self._verdicts) > _KEY_CACHE_LIMIT:
                self._verdicts.clear()
            verdict = self._verdicts[key] = bool(self._match.search(family) or self._match.search(key))
        return verdict

    def values(self, families: dict[str, Family], now: float) -> dict[str, float | None]:
        """The flat values of one parsed scrape taken at monotonic time ``now`` (seconds)."""
        out: dict[str, float | None] = {}
        counters: dict[str, _CounterState] = {}
        groups: dict[str, _GroupState] = {}
        created = _created_names(families)
        for family in families.values():
            if family.type == "counter":
                self._counter_values(family, now, out, counters)
            elif family.type in ("histogram", "summary"):
                self._group_values(family, now, out, groups)
            elif family.name not in created:
                for s in family.samples:
                    key = self._key(s.name, s.labels)
                    if self._kept(family.name, key):
                        out[KEY_PREFIX + key] = _finite(s.value)
        # Only series of this scrape carry over: a vanished series must not leak memory, and
        # one that comes back starts afresh.
        self._counters = counters
        self._groups = groups
        return out

    def _counter_values(
        self, family: Family, now: float, out: dict[str, float | None], state: dict[str, _CounterState]
    ) -> None:
        created = family.name + "_created"
        for s in family.samples:
            if s.name == created:
                continue
            key = self._key(s.name, s.labels)
            if not self._kept(family.name, key):
                continue
            rate_key = self._key(s.name + "_rate", s.labels)
            out_key = KEY_PREFIX + rate_key
            out[out_key] = None
            if not math.isfinite(s.value):
                continue
            previous = self._counters.get(rate_key)
            state[rate_key] = (now, s.value)
            if previous is not None:
                dt = now - previous[0]
                delta = s.value - previous[1]
                # delta < 0 is a counter reset: the interval's true increase is unknown.
                if dt > 0 and delta >= 0:
                    out[out_key] = delta / dt

    def _group_values(
        self, family: Family, now: float, out: dict[str, float | None], state: dict[str, _GroupState]
    ) -> None:
        name = family.name
        bucket_name, sum_name, count_name = name + "_bucket", name + "_sum", name + "_count"
        # Keyed by series key, not label tuple: an exporter may order labels differently on
        # _bucket and _sum lines of the same series.
        current: dict[str, tuple[Labels, _Group]] = {}
        for s in family.samples:
            if s.name == name:
                # A summary's quantile series are gauges already.
                key = self._key(name, s.labels)
                if self._kept(name, key):
                    out[KEY_PREFIX + key] = _finite(s.value)
                continue
            bound = None
            if s.name == bucket_name:
                le = None
                rest = []
                for pair in s.labels:
                    if pair[0] == "le":
                        le = pair[1]
                    else:
                        rest.append(pair)
                bound = _bucket_bound(le)
                if bound is None:
                    continue  # a bucket without a usable bound cannot place observations
                labels = tuple(rest)
            elif s.name == sum_name or s.name == count_name:
                labels = s.labels
            else:
                continue  # _created, or a stray sample name
            base = self._key(name, labels)
            entry = current.get(base)
            if entry is None:
                entry = current[base] = (labels, _Group())
            group = entry[1]
            if bound is not None:
                group.buckets[bound] = s.value
            elif s.name == sum_name:
                group.sum = s.value
            else:
                group.count = s.value
        is_histogram = family.type == "histogram"
        for base, (labels, group) in current.items():
            if not self._kept(name, base):
                continue
            previous = self._groups.get(base)
            state[base] = (now, group)
            rate: float | None = None
            mean: float | None = None
            quantiles: list[float | None] = [None] * len(QUANTILES)
            if previous is not None and now > previous[0]:
                rate, mean, quantiles = _interval(group, previous[1], now - previous[0], is_histogram)
            if is_histogram:
                suffixes, values = _HISTOGRAM_SUFFIXES, (rate, mean, *quantiles)
            else:
                suffixes, values = _SUMMARY_SUFFIXES, (rate, mean)
            for suffix, value in zip(suffixes, values, strict=True):
                out[KEY_PREFIX + self._key(name + suffix, labels)] = value


def _interval(
    now: _Group, before: _Group, dt: float, is_histogram: bool
) -> tuple[float | None, float | None, list[float | None]]:
    """(observations/s, mean, quantiles) of the observations between two scrapes of one series."""
    no_quantiles: list[float | None] = [None] * len(QUANTILES)
    deltas: list[tuple[float, float]] = []
    layout_same = now.buckets.keys() == before.buckets.keys()
    if is_histogram and layout_same:
        deltas = [(bound, count - before.buckets[bound]) for bound, count in now.buckets.items()]
        if any(d < 0 or not math.isfinite(d) for _, d in deltas):
            return None, None, no_quantiles  # a reset: this interval's observations are unknown
    if now.count is not None and before.count is not None:
        count: float | None = now.count - before.count
    elif math.inf in now.buckets and math.inf in before.buckets:
        count = now.buckets[math.inf] - before.buckets[math.inf]
    else:
        count = None
    if count is None or not math.isfinite(count) or count < 0:
        return None, None, no_quantiles
    rate = count / dt
    mean = None
    if count > 0 and now.sum is not None and before.sum is not None:
        mean = _finite((now.sum - before.sum) / count)
    if not is_histogram or not layout_same or count == 0:
        return rate, mean, no_quantiles
    return rate, mean, [histogram_quantile(q, deltas) for _, q in QUANTILES]


def _created_names(families: dict[str, Family]) -> set[str]:
    """Names of ``X_created`` gauge families that only timestamp a counter/histogram/summary.

    prometheus_client (vLLM's exporter) emits them as separate gauges in format 0.0.4; they
    are Unix start times, not load signals, and would double the number of keys.
    """
    names = set()
    for family in families.values():
        if family.type == "counter":
            base = family.name[: -len("_total")] if family.name.endswith("_total") else family.name
            names.add(base + "_created")
        elif family.type in ("histogram", "summary"):
            names.add(family.name + "_created")
    return names
