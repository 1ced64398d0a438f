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


def stack_distances(codes: IntArray) -> IntArray:
    """Mattson's LRU stack distance of each access (``codes``: a key's integer id per access): the
    number of distinct keys used since the key's previous access, itself included (1: the same
    key just before); 0 for a first access. An LRU cache of C entries hits exactly the accesses of
    distance 1..C. One pass, a Fenwick tree over positions marking each key's latest access."""
    n = len(codes)
    tree = [0] * (n + 1)
    last: dict[int, int] = {}
    out = np.zeros(n, dtype=np.int64)

    def add(i: int, delta: int) -> None:
        i += 1
        while i <= n:
            tree[i] += delta
            i += i & -i

    def prefix(i: int) -> int:  # marks at positions < i
        total = 0
        while i > 0:
            total += tree[i]
            i -= i & -i
        return total

    for t, code in enumerate(codes.tolist()):
        previous = last.get(code)
        if previous is not None:
            # Keys whose latest access lies between: the distinct keys used since, plus this one.
            out[t] = prefix(t) - prefix(previous + 1) + 1
            add(previous, -1)
        add(t, 1)
        last[code] = t
    return out


def replay_lru(codes: IntArray, counted: BoolArray, sizes: list[int]) -> list[float | None]:
    """The LRU hit ratio over the ``counted`` accesses at each size (all accesses warm the cache)."""
    return lru_ratios(stack_distances(codes)[counted], sizes)


def lru_ratios(distance: IntArray, sizes: list[int]) -> list[float | None]:
    """The LRU hit ratio at each size, from the counted accesses' stack distances."""
    if distance.size == 0:
        return [None for _ in sizes]
    reused = np.sort(distance[distance > 0])
    return [round(float(np.searchsorted(reused, c, side="right")) / distance.size, 6) for c in sizes]


def lfu_hits(codes: list[int], counted: list[bool], size: int) -> int:
    """Counted hits of an LFU cache of ``size`` entries: evicts the least used (uses since it last
    entered), ties by recency (the least recently used of them), as the demo's ``lfu``."""
    count: dict[int, int] = {}
    buckets: dict[int, OrderedDict[int, None]] = {}
    least, hits = 0, 0
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
    return hits


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
    codes, uniques = pd.factorize(pd.Series(keys, dtype=object))
    codes = codes.astype(np.int64)
    distances = stack_distances(codes)[counted]
    reused = distances[distances > 0]
    knee = int(reused.max()) if reused.size else None  # the smallest LRU that hits every reuse
    sizes = replay_sizes(len(uniques), knee)
    lru = lru_ratios(distances, sizes)
    # LFU: one simulation per size; beyond the budget, every k-th size (the smallest and largest kept).
    step = max(1, int(np.ceil(len(codes) * len(sizes) / LFU_BUDGET)))
    lfu_sizes = set(sizes[::step]) | {sizes[0], sizes[-1]}
    code_list, counted_list, total = codes.tolist(), counted.tolist(), int(counted.sum())
    lfu = [round(lfu_hits(code_list, counted_list, c) / total, 6) if c in lfu_sizes else None for c in sizes]
    return {
        "sizes": sizes,
        "lru": lru,
        "lfu": lfu,
        "accesses": len(codes),
        "counted": total,
        "infinite": round(float(reused.size) / total, 6),
        "lru_full_size": knee,
    }


def fit_mixture(x: FloatArray, seed: int = 0, iterations: int = 300) -> dict[str, Any] | None:
    """A two-component Gaussian mixture of ``x`` by EM: ``weights``, ``means``, ``sds`` (the
    faster component first) and Ashman's D, ``sqrt(2)·|m1−m2| / sqrt(s1²+s2²)``; None for values
    without spread. Started at the quartiles, so the fit is deterministic (``seed``: the sample
    of `MIXTURE_SAMPLE` values it fits when there are more)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size > MIXTURE_SAMPLE:
        x = np.random.default_rng(seed).choice(x, MIXTURE_SAMPLE, replace=False)
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


def _mixture_part(latency: FloatArray) -> tuple[dict[str, Any] | None, BoolArray | None]:
    """The mixture's figures and the hits it assigns; (None, None) for too few values."""
    if latency.size < MIN_MIXTURE_VALUES:
        return None, None
    x = np.log(np.maximum(latency, 1e-3))
    fit = fit_mixture(x)
    if fit is None:
        return None, None
    figures = {
        "ashman_d": round(fit["ashman_d"], 3),
        "weights": [round(w, 6) for w in fit["weights"]],
        "medians_ms": [round(float(np.exp(m)), 3) for m in fit["means"]],
        "sd_log": [round(s, 6) for s in fit["sds"]],
    }
    return figures, assign_fast(x, fit)


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


_NO_HITS = {
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
            section.update(_NO_HITS)
        elif not clear:
            notices.append(f"{OVERLAP} (Ashman's D {figures['ashman_d']:.2f} < {MIN_SEPARATION:g})")
            section.update(_NO_HITS)
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
