"""Cache effects: ``summary.json`` ``cache``, from the records' ``payload_key`` and ``cache`` columns.

Consumes the measured window (`loadbench.analyze.window.Window`): its attempts (each reached the
server and its cache), their ``payload_key`` (which body was sent), ``cache`` (what the server said:
``hit``, ``miss``) and latency, and ``meta.json`` ``settings.cache_header`` / ``cache_field``;
produces the ``cache`` section (definitions: ``docs/metrics.md``, Cache). Pure: no I/O.

Every figure counts the successful attempts of the window: a failed request neither reads nor
fills a cache (the demo's does not). The run's attempts before the window (warmup) still warm
the cache: a key first sent in the warmup is warm in the window, and the replay plays them
(uncounted) before the window's.

- **Cold vs warm** (with payload keys): the first attempt of each key in the run, in send order,
  is cold; every later one warm.
- **Hits** from the ``cache`` column (source ``header`` or ``field``); else, with payload keys or a
  cache option whose answers never said, an estimate (source ``mixture``): a two-component
  Gaussian mixture on log latency fitted by EM (`fit_mixture`), each attempt assigned to its
  likelier component, the faster one being the hits. Ashman's D measures the components'
  separation; below `MIN_SEPARATION` they overlap and there is no estimate.
- **Replay** (with payload keys): the hit ratio an LRU and an LFU cache of each size would have
  had on the recorded key sequence (`replay_lru`: Mattson's stack distances, one pass for every
  size; `replay_lfu`: one simulation per size).

Absent (no key in ``summary.json``) for a run with no payload key, no cache answer and no cache
option: two latency modes alone are no sign of a cache (the demo's digits classifier, no cache
in front, has two modes of Ashman's D 2.9: fast and slow rows), so no run is said to have one
on its latency alone.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from loadbench.analyze.stats import latency_figures, ratio
from loadbench.analyze.window import Window

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

MIN_SEPARATION = 2.0  # Ashman's D below which two Gaussian modes are not told apart
MIN_MIXTURE_VALUES = 20  # fewer latencies give no mixture estimate
MIXTURE_SAMPLE = 50_000  # latencies the EM fits at most (a seeded sample); all are then assigned
LFU_BUDGET = 20_000_000  # accesses × sizes the LFU replay simulates at most (sizes thinned beyond)
OVERLAP = "the components overlap: no estimate"


def _text(frame: pd.DataFrame, column: str) -> npt.NDArray[Any]:
    if column not in frame.columns:
        return np.full(len(frame), "", dtype=object)
    return np.asarray(frame[column].astype("string").fillna("").to_numpy(dtype=object))


def _spread(values: FloatArray) -> dict[str, float | None]:
    return latency_figures(values, ("p50", "p90", "p99"))


def _count_spread(values: FloatArray) -> dict[str, Any]:
    return {"count": int(values.size), **latency_figures(values, ("p50", "p99"))}


def _any_text(frame: pd.DataFrame, column: str) -> bool:
    """Whether any record has a value in ``column``, without a pass over the rows when it is a
    category (as `read_requests` gives it): most runs have none, and pay nothing here."""
    if column not in frame.columns or not len(frame):
        return False
    values = frame[column]
    if isinstance(values.dtype, pd.CategoricalDtype):
        used = values.cat.remove_unused_categories().cat.categories
        return bool((used.astype(str) != "").any())
    return bool((values.astype("string").fillna("") != "").any())


def first_occurrences(keys: npt.NDArray[Any]) -> BoolArray:
    """Per position: the first of its key in the sequence ("" keys: never)."""
    codes, _ = pd.factorize(pd.Series(keys, dtype=object))
    first = np.zeros(len(keys), dtype=bool)
    _, where = np.unique(codes, return_index=True)
    first[where] = True
    return np.asarray(first & (keys != ""), dtype=bool)


class KeyCodes:
    """Each key's integer id in order of first appearance (``pd.factorize``'s), over a sequence fed
    in batches: state of one entry per distinct key."""

    def __init__(self) -> None:
        self.ids: dict[Any, int] = {}

    def __call__(self, keys: npt.ArrayLike) -> IntArray:
        local, uniques = pd.factorize(pd.Series(np.asarray(keys, dtype=object), dtype=object))
        ids = self.ids
        known = [ids.setdefault(u, len(ids)) for u in uniques.tolist()]
        return np.asarray(known, dtype=np.int64)[np.asarray(local, dtype=np.int64)]


class StackDistances:
    """Mattson's LRU stack distance of each access, over a sequence fed in batches (`feed`): the
    number of distinct keys used since the key's previous access, itself included (1: the same
    key just before); 0 for a first access. An LRU cache of C entries hits exactly the accesses of
    distance 1..C. State of O(distinct keys): a Fenwick tree over slots, each key's latest access
    holding one slot in access order; when the slots run out, the live ones are renumbered in
    order into a tree twice their number (so a renumbering comes at most every other access)."""

    def __init__(self) -> None:
        self._slot: dict[int, int] = {}  # key -> the slot of its latest access
        self._tree: list[int] = [0]
        self._size = 0
        self._next = 0

    def _renumber(self) -> None:
        keys = sorted(self._slot, key=self._slot.__getitem__)
        self._slot = {key: i for i, key in enumerate(keys)}
        self._size = size = 2 * len(keys) + 64
        tree = [0] * (size + 1)
        for i in range(1, size + 1):  # Fenwick's linear build: a mark at each of the first slots
            tree[i] += 1 if i <= len(keys) else 0
            parent = i + (i & -i)
            if parent <= size:
                tree[parent] += tree[i]
        self._tree, self._next = tree, len(keys)

    def feed(self, codes: npt.ArrayLike) -> IntArray:
        out: list[int] = []
        for code in np.asarray(codes, dtype=np.int64).tolist():
            if self._next == self._size:
                self._renumber()
            tree, slot, size = self._tree, self._slot, self._size
            previous = slot.get(code)
            distance = 0
            if previous is not None:
                i, below = previous + 1, 0
                while i > 0:  # latest accesses at or before the previous one
                    below += tree[i]
                    i -= i & -i
                distance = len(slot) - below + 1  # the keys used since, plus this one
                i = previous + 1
                while i <= size:
                    tree[i] -= 1
                    i += i & -i
            i = self._next + 1
            while i <= size:
                tree[i] += 1
                i += i & -i
            slot[code] = self._next
            self._next += 1
            out.append(distance)
        return np.asarray(out, dtype=np.int64)


def stack_distances(codes: IntArray) -> IntArray:
    """`StackDistances` of a whole sequence (``codes``: a key's integer id per access)."""
    return StackDistances().feed(codes)


def replay_lru(codes: IntArray, counted: BoolArray, sizes: list[int]) -> list[float | None]:
    """The LRU hit ratio over the ``counted`` accesses at each size (all accesses warm the cache)."""
    return lru_ratios(stack_distances(codes)[counted], sizes)


def lru_ratios(distance: IntArray, sizes: list[int]) -> list[float | None]:
    """The LRU hit ratio at each size, from the counted accesses' stack distances."""
    return histogram_ratios(np.bincount(np.asarray(distance, dtype=np.int64), minlength=1), sizes)


def histogram_ratios(histogram: IntArray, sizes: list[int]) -> list[float | None]:
    """The LRU hit ratio at each size, from how many counted accesses had each stack distance."""
    total = int(histogram.sum())
    if total == 0:
        return [None for _ in sizes]
    within = np.cumsum(histogram)  # accesses of distance 0..d
    first = int(histogram[0])
    return [round(float(within[min(c, within.size - 1)] - first) / total, 6) for c in sizes]


class LfuCache:
    """An LFU cache of ``size`` entries fed the accesses in batches (`feed`), counting the counted
    accesses' hits: evicts the least used (uses since it last entered), ties by recency (the least
    recently used of them), as the demo's ``lfu``."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.hits = 0
        self._count: dict[int, int] = {}
        self._buckets: dict[int, OrderedDict[int, None]] = {}
        self._least = 0

    def feed(self, codes: list[int], counted: list[bool]) -> None:
        count, buckets, size = self._count, self._buckets, self.size
        least, hits = self._least, self.hits
        for code, mine in zip(codes, counted, strict=True):
            n = count.get(code)
            if n is not None:
                hits += mine
                bucket = buckets[n]
                del bucket[code]
                if not bucket:
                    del buckets[n]
                    if least == n:
                        least = n + 1
                count[code] = n + 1
                buckets.setdefault(n + 1, OrderedDict())[code] = None
                continue
            if len(count) >= size:
                victims = buckets[least]
                victim, _ = victims.popitem(last=False)
                if not victims:
                    del buckets[least]
                del count[victim]
            count[code] = 1
            buckets.setdefault(1, OrderedDict())[code] = None
            least = 1
        self._least, self.hits = least, hits


def lfu_hits(codes: list[int], counted: list[bool], size: int) -> int:
    """Counted hits of an `LfuCache` of ``size`` entries over the whole sequence."""
    cache = LfuCache(size)
    cache.feed(codes, counted)
    return cache.hits


class LruPass:
    """The replay's first pass over the keyed accesses in send order, fed in batches (`feed`): each
    key's id, the stack distances, and how many counted accesses had each distance. State of
    O(distinct keys)."""

    def __init__(self) -> None:
        self.codes = KeyCodes()
        self.distances = StackDistances()
        self.histogram = np.zeros(1, dtype=np.int64)
        self.accesses = 0

    def feed(self, keys: npt.ArrayLike, counted: BoolArray) -> None:
        distance = self.distances.feed(self.codes(keys))[np.asarray(counted, dtype=bool)]
        found = np.bincount(distance, minlength=self.histogram.size)
        found[: self.histogram.size] += self.histogram
        self.histogram = found
        self.accesses += len(counted)

    @property
    def distinct(self) -> int:
        return len(self.codes.ids)


def lfu_plan(lru: LruPass) -> tuple[list[int], list[int]]:
    """(every replayed size, those the LFU simulates): one simulation per size; beyond
    `LFU_BUDGET` accesses × sizes, every k-th size (the smallest and largest kept)."""
    reused = np.flatnonzero(lru.histogram[1:])
    knee = int(reused[-1]) + 1 if reused.size else None  # the smallest LRU that hits every reuse
    sizes = replay_sizes(lru.distinct, knee)
    step = max(1, int(np.ceil(lru.accesses * len(sizes) / LFU_BUDGET)))
    return sizes, sorted(set(sizes[::step]) | {sizes[0], sizes[-1]})


def replay_of(lru: LruPass, lfu: dict[int, int]) -> dict[str, Any] | None:
    """``cache.replay`` from the first pass and the LFU's counted hits at each simulated size."""
    total = int(lru.histogram.sum())
    if total == 0:
        return None
    sizes, _ = lfu_plan(lru)
    reused = total - int(lru.histogram[0])
    nonzero = np.flatnonzero(lru.histogram[1:])
    return {
        "sizes": sizes,
        "lru": histogram_ratios(lru.histogram, sizes),
        "lfu": [round(lfu[c] / total, 6) if c in lfu else None for c in sizes],
        "accesses": lru.accesses,
        "counted": total,
        "infinite": round(float(reused) / total, 6),
        "lru_full_size": int(nonzero[-1]) + 1 if nonzero.size else None,
    }


def replay_sizes(distinct: int, knee: int | None) -> list[int]:
    """1, 2, 4, ... below ``distinct``, ``distinct`` itself, and the ``knee``."""
    sizes = {distinct, *(1 << k for k in range(max(distinct, 1).bit_length()) if 1 << k < distinct)}
    if knee:
        sizes.add(knee)
    return sorted(s for s in sizes if s >= 1)


def replay_section(keys: npt.NDArray[Any], counted: BoolArray) -> dict[str, Any] | None:
    """``cache.replay``: ``keys`` in send order (successful attempts with a key, the whole run),
    ``counted``: those in the window."""
    if not counted.any():
        return None
    lru = LruPass()
    lru.feed(keys, counted)
    _, simulated = lfu_plan(lru)
    code_list = KeyCodes()(keys).tolist()
    counted_list = np.asarray(counted, dtype=bool).tolist()
    return replay_of(lru, {c: lfu_hits(code_list, counted_list, c) for c in simulated})


def mixture_positions(n: int, seed: int = 0) -> IntArray:
    """Which of ``n`` values (in send order) the EM fits: all, or a seeded sample of
    `MIXTURE_SAMPLE` of them, in the sample's order (``Generator.choice(x, k)`` picks
    ``x[choice(len(x), k)]``: the store fetches the same positions)."""
    if n <= MIXTURE_SAMPLE:
        return np.arange(n, dtype=np.int64)
    return np.asarray(np.random.default_rng(seed).choice(n, MIXTURE_SAMPLE, replace=False), dtype=np.int64)


def fit_mixture(x: FloatArray, seed: int = 0, iterations: int = 300) -> dict[str, Any] | None:
    """A two-component Gaussian mixture of ``x`` by EM: ``weights``, ``means``, ``sds`` (the
    faster component first) and Ashman's D, ``sqrt(2)·|m1−m2| / sqrt(s1²+s2²)``; None for values
    without spread. Started at the quartiles, so the fit is deterministic (``seed``: the sample
    of `MIXTURE_SAMPLE` values it fits when there are more)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size > MIXTURE_SAMPLE:
        x = x[mixture_positions(x.size, seed)]
    spread = float(x.std())
    if x.size < 2 or spread <= 0:
        return None
    floor = (spread * 1e-3) ** 2  # a component collapsing on tied values keeps a little width
    means = np.percentile(x, [25.0, 75.0])
    if means[0] == means[1]:
        means = np.array([x.min(), x.max()])
    var = np.full(2, spread**2 / 4)
    weights = np.array([0.5, 0.5])
    previous = -np.inf
    for _ in range(iterations):
        density = weights / np.sqrt(2 * np.pi * var) * np.exp(-((x[:, None] - means) ** 2) / (2 * var))
        total = density.sum(axis=1) + 1e-300
        loglik = float(np.log(total).sum())
        resp = density / total[:, None]
        mass = resp.sum(axis=0) + 1e-12
        weights = mass / x.size
        means = (resp * x[:, None]).sum(axis=0) / mass
        var = np.maximum((resp * (x[:, None] - means) ** 2).sum(axis=0) / mass, floor)
        if loglik - previous < 1e-9 * abs(loglik):
            break
        previous = loglik
    order = np.argsort(means)
    means, var, weights = means[order], var[order], weights[order]
    sds = np.sqrt(var)
    separation = float(np.sqrt(2.0) * abs(means[1] - means[0]) / np.sqrt(var.sum()))
    return {"weights": weights.tolist(), "means": means.tolist(), "sds": sds.tolist(), "ashman_d": separation}


def assign_fast(x: FloatArray, fit: dict[str, Any]) -> BoolArray:
    """Per value: likelier under the mixture's faster component than under its slower one."""
    w, m, s = (np.asarray(fit[k]) for k in ("weights", "means", "sds"))
    log_density = np.log(w) - np.log(s) - (np.asarray(x)[:, None] - m) ** 2 / (2 * s**2)
    return np.asarray(log_density[:, 0] >= log_density[:, 1], dtype=bool)


def log_latency(latency: FloatArray) -> FloatArray:
    """What the mixture models: log latency (under 1 µs as 1 µs)."""
    return np.asarray(np.log(np.maximum(latency, 1e-3)), dtype=np.float64)


def mixture_of(sample: FloatArray) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(the section's ``mixture`` figures, the fit) of the latencies at `mixture_positions`; None
    where the values have no spread."""
    fit = fit_mixture(log_latency(sample))
    if fit is None:
        return None
    figures = {
        "ashman_d": round(fit["ashman_d"], 3),
        "weights": [round(w, 6) for w in fit["weights"]],
        "medians_ms": [round(float(np.exp(m)), 3) for m in fit["means"]],
        "sd_log": [round(s, 6) for s in fit["sds"]],
    }
    return figures, fit


def _mixture_part(latency: FloatArray) -> tuple[dict[str, Any] | None, BoolArray | None]:
    """The mixture's figures and the hits it assigns; (None, None) for too few values."""
    if latency.size < MIN_MIXTURE_VALUES:
        return None, None
    found = mixture_of(latency[mixture_positions(latency.size)])
    if found is None:
        return None, None
    figures, fit = found
    return figures, assign_fast(log_latency(latency), fit)


def _hit_figures(latency: FloatArray, hit: BoolArray) -> dict[str, Any]:
    hits, misses = int(hit.sum()), int((~hit).sum())
    hit_ms, miss_ms = _spread(latency[hit]), _spread(latency[~hit])
    return {
        "hit_ratio": round(hits / (hits + misses), 6) if hits + misses else None,
        "hits": hits,
        "misses": misses,
        "hit_latency_ms": hit_ms,
        "miss_latency_ms": miss_ms,
        "speedup_p50": ratio(miss_ms["p50"], hit_ms["p50"]),
    }


NO_HITS = {
    "hit_ratio": None,
    "hits": None,
    "misses": None,
    "hit_latency_ms": None,
    "miss_latency_ms": None,
    "speedup_p50": None,
}


def cache_section(w: Window) -> dict[str, Any] | None:
    """``summary.json`` ``cache``; None for a run with nothing to say of a cache (module docstring)."""
    attempts = w.attempts
    header, field = w.settings.get("cache_header"), w.settings.get("cache_field")
    if not (header or field or _any_text(attempts, "payload_key") or _any_text(attempts, "cache")):
        return None
    ok = attempts["ok"].to_numpy().astype(bool)
    in_window = w.attempts_in_window
    order = np.argsort(attempts["start_unix_s"].to_numpy(dtype=np.float64), kind="stable")
    keys = _text(attempts, "payload_key")[order]
    said = np.char.lower(_text(attempts, "cache").astype(str))[order]
    ok, in_window = ok[order], in_window[order]
    latency = attempts["latency_ms"].to_numpy(dtype=np.float64)[order]
    keyed = ok & (keys != "")
    notices: list[str] = []
    if (header or field) and not np.isin(said, ("hit", "miss")).any():
        where = f"the header {header}" if header else f"the field {field}"
        notices.append(f"the answers never carried {where} saying hit or miss: no hits counted from it")
    measured = ok & in_window
    labelled = measured & np.isin(said, ("hit", "miss"))
    section: dict[str, Any] = {}
    mixture: dict[str, Any] | None = None
    if labelled.any():
        section.update(_hit_figures(latency[labelled], said[labelled] == "hit"))
        source = "field" if field and not header else "header"
    else:
        figures, fast = _mixture_part(latency[measured])
        clear = figures is not None and figures["ashman_d"] >= MIN_SEPARATION
        if not (keyed.any() or header or field):
            return None  # two latency modes alone are no sign of a cache (module docstring)
        source, mixture = "mixture", figures
        if figures is None:
            notices.append("too few successful requests for a mixture estimate of the hits")
            section.update(NO_HITS)
        elif not clear:
            notices.append(f"{OVERLAP} (Ashman's D {figures['ashman_d']:.2f} < {MIN_SEPARATION:g})")
            section.update(NO_HITS)
        else:
            assert fast is not None
            section.update(_hit_figures(latency[measured], fast))
    section["source"] = source
    if mixture is not None:
        section["mixture"] = mixture
    section.update(_key_figures(keys, keyed, in_window, latency))
    replay = replay_section(keys[keyed], in_window[keyed]) if keyed.any() else None
    if replay is not None:
        replay["measured"] = section["hit_ratio"]
    section["replay"] = replay
    section["notices"] = notices
    return section


def _key_figures(
    keys: npt.NDArray[Any], keyed: BoolArray, in_window: BoolArray, latency: FloatArray
) -> dict[str, Any]:
    """``distinct_payloads``, ``repeat_share``, ``cold``, ``warm`` (None each without keys)."""
    counted = keyed & in_window
    if not counted.any():
        return dict.fromkeys(("distinct_payloads", "repeat_share", "cold", "warm", "cold_warm_speedup_p50"))
    first = np.zeros(len(keys), dtype=bool)
    first[np.flatnonzero(keyed)[first_occurrences(keys[keyed])]] = True
    cold, warm = counted & first, counted & ~first
    cold_ms, warm_ms = _count_spread(latency[cold]), _count_spread(latency[warm])
    return {
        "distinct_payloads": int(pd.unique(keys[counted]).size),
        "repeat_share": round(float(warm.sum()) / float(counted.sum()), 6),
        "cold": cold_ms,
        "warm": warm_ms,
        "cold_warm_speedup_p50": ratio(cold_ms["p50"], warm_ms["p50"]),
    }
