"""The live Prometheus figures of a run (``--metrics-port``), fed from its request records.

Every figure comes from the request records as ``requests.csv`` gets them (the local
recorder's, or the lines a distributed master receives from its workers), never from Locust's
rounded statistics, and counts a record exactly as its line would, so once the last record is
in, ``sum(loadbench_requests_total)`` is the request count of ``summary.json`` before the warmup
is cut (docs/metrics.md "Live Prometheus endpoint").

The figures are kept here as plain counts and handed to ``prometheus_client`` as metric families
when a scrape asks (`LiveMetrics.collect`): a histogram's observation is one bisect, not a walk
over its buckets, which matters with `loadbench.drive.histograms.BOUNDS` holding some 280 of them. The exposition (and its
escaping of label values) is ``prometheus_client``'s, from a registry of the run's own.

Label values are bounded (the first `MAX_NAMES` request names and `MAX_KINDS` error kinds keep
their own; later ones are ``other``) and scrubbed of the run's credentials.

Locust-free: the unit tests import it in the pytest process.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from loadbench.analyze.stats import error_kind
from loadbench.drive.histograms import Histogram
from loadbench.record.records import COLUMNS, MAX_LABEL_CHARS, RequestRecord, one_line
from loadbench.redact import scrub

MAX_NAMES = 100
MAX_KINDS = 30
# count_ok's latencies wait in a list until a scrape or this many: counted in bulk, they cost a
# fraction of one by one in the load generator's hot path (benchmarks/metrics_overhead.py).
FOLD_AT = 4096
OTHER = "other"
_COL = {name: i for i, name in enumerate(COLUMNS)}


class _Gaps:
    """A name's gaps between tokens not yet counted: ``itl_ms`` fields as the lines hold them
    (`LiveMetrics.feed`) and numbers already rounded as a line writes them (`LiveMetrics.count`)."""

    __slots__ = ("count", "texts", "values")

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.values: list[float] = []
        self.count = 0


class _OkSlot:
    """count_ok's plain successes of one (name, status), latencies as given, not yet counted."""

    __slots__ = ("label", "pending", "status")

    def __init__(self, label: str, status: str) -> None:
        self.label = label
        self.status = status
        self.pending: list[float] = []


class BoundedLabel:
    """A label's values: the first ``limit`` distinct ones scrubbed, every later one `OTHER`."""

    def __init__(self, limit: int, secrets: list[str]) -> None:
        self.limit = limit
        self.secrets = secrets
        self.known: dict[str, str] = {}

    def __call__(self, value: str) -> str:
        shown = self.known.get(value)
        if shown is None:
            if len(self.known) >= self.limit:
                return OTHER  # not remembered: a name per request must not grow memory
            shown = self.known[value] = scrub(value, self.secrets)
        return shown


@dataclass
class Gauges:
    """Figures read when a scrape asks; each None when the run cannot know it."""

    users: Callable[[], float | None] = lambda: None
    in_flight: Callable[[], float | None] = lambda: None
    start_unix_s: Callable[[], float | None] = lambda: None  # read late: the load's start moves it
    # Open loop: (due, sent, dropped) so far of the schedule.
    schedule: Callable[[], tuple[int, int, int] | None] = lambda: None


@dataclass
class RunInfo:
    run_id: str = ""
    scenario: str = ""
    target: str = ""
    version: str = ""


def _finite(value: Any) -> float | None:
    """A finite int or float (not a bool) as a float: what the line writes a number of; else None."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _count_of(value: Any) -> int | None:
    """A token count as the line writes it: a non-negative int, else none."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _gaps_ms(text: str) -> npt.NDArray[np.float64]:
    """The finite numbers of an ``itl_ms`` field (space-separated), parsed at once; a field with a
    word that is no number, each on its own (`_number`), as a line's reader would."""
    if not text:
        return np.empty(0)
    words = text.split()
    try:
        values = np.array(words, dtype=np.float64)
    except ValueError:
        values = np.array([g for g in map(_number, words) if g is not None], dtype=np.float64)
    return values[np.isfinite(values)]


def _number(text: str) -> float | None:
    if not text:  # the usual empty field: no exception to raise and catch
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class LiveMetrics(Collector):
    """The run's figures, a recorder's `loadbench.drive.recorder.RecordCounter`: `count_ok`
    takes a plain success, `count` any record, `feed` ``requests.csv`` lines; each counts a
    record exactly as its line. `collect` gives metric families."""

    def __init__(self, info: RunInfo, secrets: list[str] | None = None, gauges: Gauges | None = None) -> None:
        self.secrets = list(secrets or [])
        self.info = replace(
            info,
            run_id=scrub(info.run_id, self.secrets),
            scenario=scrub(info.scenario, self.secrets),
            target=scrub(info.target, self.secrets),
        )
        self.gauges = gauges or Gauges()
        self.names = BoundedLabel(MAX_NAMES, self.secrets)
        self.kinds = BoundedLabel(MAX_KINDS, self.secrets)
        self.requests: dict[tuple[str, str, str], int] = {}  # (name, outcome, status)
        self.durations: dict[tuple[str, str], Histogram] = {}  # (name, ok)
        self.ttft: dict[str, Histogram] = {}
        self.itl: dict[str, Histogram] = {}
        self.tokens: dict[tuple[str, str], int] = {}  # (name, "input" | "output")
        self.predictions = {"true": 0, "false": 0}
        self.schedule_lag = Histogram()
        # count_ok's (name, status) -> its label, status text and the latencies not yet counted.
        self._gaps: dict[str, _Gaps] = {}  # a name's gaps between tokens not yet counted
        self._ok: dict[tuple[str, int], _OkSlot] = {}

    def registry(self) -> CollectorRegistry:
        """A registry of the run's own (the process's global one holds nothing of loadbench)."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        return registry

    def feed(self, text: str) -> None:
        """Count the records of one or more ``requests.csv`` lines (a partial last row is skipped)."""
        # Without a quote the CSV reader splits at every comma: so does str.split, at a fraction
        # of the cost (the recorder's hot path writes such lines for every plain success).
        rows = (
            (line.split(",") for line in text.splitlines())
            if '"' not in text
            else csv.reader(text.splitlines())
        )
        for row in rows:
            if len(row) > _COL["intended_unix_s"]:
                self._count(row)

    def count(self, r: RequestRecord) -> None:
        """One record as the recorder holds it: what `feed` counts of its ``requests.csv`` line
        (its numbers rounded as the line writes them), without formatting and parsing the line:
        the local run's path, where the endpoint's cost is every request's."""
        latency_ms = round(r.latency_ms, 3)
        if not math.isfinite(latency_ms):
            return
        start = round(r.start_unix_s, 6)
        intended = None if r.intended_unix_s is None else round(r.intended_unix_s, 6)
        name = self._tally(r.name, str(r.status), r.ok, r.error, latency_ms, start, intended)
        extras = r.extras
        if not extras:
            return
        ttft = _finite(extras.get("ttft_ms"))
        gaps = extras.get("itl_ms")
        if not isinstance(gaps, list | tuple):  # as the line writes them: numbers, bools too
            gaps = []
        expected, predicted = extras.get("expected"), extras.get("predicted")
        self._tally_extras(
            name,
            r.ok,
            None if ttft is None else round(ttft, 3),
            [round(float(g), 3) for g in gaps if isinstance(g, int | float) and math.isfinite(g)],
            _count_of(extras.get("input_tokens")),
            _count_of(extras.get("output_tokens")),
            "" if expected is None else one_line(str(expected), MAX_LABEL_CHARS),
            "" if predicted is None else one_line(str(predicted), MAX_LABEL_CHARS),
        )

    def count_ok(
        self, name: str, status: int, latency_ms: float, start_unix_s: float, intended_unix_s: float | None
    ) -> None:
        """A plain success (no extras) from the figures the recorder formats its line from: what
        `feed` counts of that line, at a fraction of its cost (the recorder's hot path, every
        request of a healthy run). Its latency waits in a list, counted in bulk (`fold`) when a
        scrape asks or `FOLD_AT` are waiting."""
        slot = self._ok.get((name, status))
        if slot is None:
            slot = self._ok_slot(name, status)
        pending = slot.pending
        pending.append(latency_ms)
        if intended_unix_s is not None:
            self._lag(round(start_unix_s, 6), round(intended_unix_s, 6))  # as the line writes them
        if len(pending) >= FOLD_AT:
            self._fold(slot)

    def fold(self) -> None:
        """Count every latency `count_ok` keeps waiting, and every gap between tokens."""
        for slot in self._ok.values():
            if slot.pending:
                self._fold(slot)
        for name, waiting in self._gaps.items():
            if waiting.count:
                self._fold_gaps(name, waiting)

    def _fold_gaps(self, name: str, waiting: _Gaps) -> None:
        parsed = _gaps_ms(" ".join(waiting.texts))
        if waiting.values:
            parsed = np.concatenate((parsed, np.asarray(waiting.values, dtype=np.float64)))
        waiting.texts, waiting.values, waiting.count = [], [], 0
        self.itl.setdefault(name, Histogram()).observe_ms(parsed)

    def _fold(self, slot: _OkSlot) -> None:
        rounded = [v for v in (round(x, 3) for x in slot.pending) if math.isfinite(v)]  # as the line
        slot.pending = []
        if not rounded:  # not a latency: no line has one to count either
            return
        key = (slot.label, "ok", slot.status)
        self.requests[key] = self.requests.get(key, 0) + len(rounded)
        hist_key = (slot.label, "true")
        hist = self.durations.get(hist_key) or self.durations.setdefault(hist_key, Histogram())
        hist.observe_ms(rounded)

    def _lag(self, start: float, intended: float) -> None:
        """An open loop's send lag, from the two times as the line writes them."""
        self.schedule_lag.observe(max(start - intended, 0.0))

    def _ok_slot(self, name: str, status: int) -> _OkSlot:
        if len(self._ok) >= 4 * MAX_NAMES:
            self.fold()
            self._ok.clear()  # a name per request: keep memory bounded (the labels are anyway)
        self._ok[(name, status)] = slot = _OkSlot(self.names(name), str(status))
        return slot

    def _count(self, row: list[str]) -> None:
        latency_ms = _number(row[_COL["latency_ms"]])
        if latency_ms is None:
            return
        name = self._tally(
            row[_COL["name"]],
            row[_COL["status"]] or "0",
            row[_COL["ok"]] == "1",
            row[_COL["error"]],
            latency_ms,
            _number(row[_COL["start_unix_s"]]),
            _number(row[_COL["intended_unix_s"]]),
        )
        if len(row) > _COL["predicted"]:
            ok = row[_COL["ok"]] == "1"
            ttft = _number(row[_COL["ttft_ms"]]) if row[_COL["ttft_ms"]] else None
            gaps = row[_COL["itl_ms"]]  # parsed when counted, with the other records' (`fold`)
            tokens_in, tokens_out = (
                int(row[_COL[column]]) if row[_COL[column]].isdigit() else None
                for column in ("input_tokens", "output_tokens")
            )
            self._tally_extras(
                name, ok, ttft, gaps, tokens_in, tokens_out, row[_COL["expected"]], row[_COL["predicted"]]
            )

    def _tally(
        self,
        raw_name: str,
        status: str,
        ok: bool,
        error: str,
        latency_ms: float,
        start: float | None,
        intended: float | None,
    ) -> str:
        """Count one request; its name as labelled."""
        name = self.names(raw_name)
        outcome = "ok" if ok else self.kinds(error_kind(int(status), error))
        key = (name, outcome, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        hist_key = (name, "true" if ok else "false")
        hist = self.durations.get(hist_key) or self.durations.setdefault(hist_key, Histogram())
        hist.observe(latency_ms / 1000.0)
        if intended is not None and start is not None:
            self._lag(start, intended)
        return name

    def _tally_extras(
        self,
        name: str,
        ok: bool,
        ttft_ms: float | None,
        gaps_ms: str | list[float],
        tokens_in: int | None,
        tokens_out: int | None,
        expected: str,
        predicted: str,
    ) -> None:
        if ttft_ms is not None:
            self.ttft.setdefault(name, Histogram()).observe(ttft_ms / 1000.0)
        if gaps_ms:
            # Tens to hundreds of gaps a record: they wait, and are parsed and counted in bulk.
            waiting = self._gaps.get(name) or self._gaps.setdefault(name, _Gaps())
            if isinstance(gaps_ms, str):
                waiting.texts.append(gaps_ms)
                waiting.count += gaps_ms.count(" ") + 1
            else:
                waiting.values.extend(gaps_ms)
                waiting.count += len(gaps_ms)
            if waiting.count >= FOLD_AT:
                self._fold_gaps(name, waiting)
        if tokens_in is not None:
            self.tokens[(name, "input")] = self.tokens.get((name, "input"), 0) + tokens_in
        if tokens_out is not None:
            self.tokens[(name, "output")] = self.tokens.get((name, "output"), 0) + tokens_out
        if expected:
            self.predictions["true" if ok and predicted == expected else "false"] += 1

    def collect(self) -> Iterator[Any]:
        self.fold()
        scenario = self.info.scenario
        yield from self._info_families()
        requests = CounterMetricFamily(
            "loadbench_requests", "Requests recorded, by outcome (ok or the error kind)",
            labels=["scenario", "name", "outcome", "status"],
        )  # fmt: skip
        for (name, outcome, status), count in sorted(self.requests.items()):
            requests.add_metric([scenario, name, outcome, status], count)
        yield requests
        yield _histograms(
            "loadbench_request_duration_seconds",
            "Request latency (requests.csv latency_ms), successful (ok=true) or not",
            ["scenario", "name", "ok"],
            (([scenario, *key], hist) for key, hist in sorted(self.durations.items())),
        )
        for metric, what, hists in (
            ("loadbench_ttft_seconds", "Time to the first token of a stream", self.ttft),
            ("loadbench_itl_seconds", "Gaps between the tokens of a stream", self.itl),
        ):
            yield _histograms(
                metric, what, ["scenario", "name"], (([scenario, n], h) for n, h in sorted(hists.items()))
            )
        for kind in ("input", "output"):
            tokens = CounterMetricFamily(
                f"loadbench_{kind}_tokens", f"{kind.title()} tokens", labels=["scenario", "name"]
            )
            for (name, which), count in sorted(self.tokens.items()):
                if which == kind:
                    tokens.add_metric([scenario, name], count)
            yield tokens
        predictions = CounterMetricFamily(
            "loadbench_predictions",
            "Labeled requests, by whether the prediction matched",
            labels=["scenario", "correct"],
        )
        for correct, count in self.predictions.items():
            predictions.add_metric([scenario, correct], count)
        yield predictions
        yield from self._gauge_families()

    def _info_families(self) -> Iterator[Any]:
        info = self.info
        run = GaugeMetricFamily(
            "loadbench_run_info", "The run", labels=["run_id", "scenario", "target", "version"]
        )
        run.add_metric([info.run_id, info.scenario, info.target, info.version], 1)
        yield run
        start = self.gauges.start_unix_s()
        if start is not None:
            yield GaugeMetricFamily(
                "loadbench_run_start_time_seconds", "When the load began (Unix time)", value=start
            )

    def _gauge_families(self) -> Iterator[Any]:
        for metric, what, read in (
            ("loadbench_users", "Users (an open loop's senders) running", self.gauges.users),
            ("loadbench_in_flight", "Requests sent and not answered yet", self.gauges.in_flight),
        ):
            value = read()
            if value is not None:
                yield GaugeMetricFamily(metric, what, value=value)
        schedule = self.gauges.schedule()
        if schedule is None:
            return
        due, sent, dropped = schedule
        yield CounterMetricFamily("loadbench_schedule_due", "Open loop: send times reached", value=due)
        yield CounterMetricFamily(
            "loadbench_schedule_dropped", "Open loop: send times never queued", value=dropped
        )
        yield GaugeMetricFamily(
            "loadbench_schedule_backlog",
            "Open loop: send times waiting for a free sender",
            value=max(due - sent - dropped, 0),
        )
        yield _histograms(
            "loadbench_schedule_lag_seconds",
            "Open loop: from a request's due time to its send",
            [],
            [([], self.schedule_lag)],
        )


def _histograms(
    metric: str, what: str, labels: list[str], series: Iterable[tuple[list[str], Histogram]]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(metric, what, labels=labels)
    for values, hist in series:
        family.add_metric(values, hist.cumulative(), hist.total)
    return family
