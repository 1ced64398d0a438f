"""Attempts and the requests users saw: ``--retries`` records every attempt; the figures are about
requests.

Consumes the records of ``requests.csv`` (`loadbench.record.records.read_requests`); produces
`Attempts`: one row per user-visible request (its attempts collapsed by ``request_id``) beside
the attempts themselves, with the map between the two. Pure: no I/O. The analyzer's `Window`
and the report both collapse with `split_attempts`, so their figures and plots agree.

A request's row (definitions: ``docs/metrics.md``, Retries): its start (``start_unix_s``, and the
open loop's ``intended_unix_s``) is its first attempt's; its latency runs from that start to the
end of its last attempt (``last.start + last.latency``), so the backoff waits between attempts
count, as its user waited through them; every other column (``ok``, ``status``, ``error``, what
the server said, the extras, ``target``) is its last attempt's, so a request failed only when its
last attempt did. A record without a ``request_id`` is a request of one attempt, as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Attempts:
    """A run's records as requests and as attempts; without ``request_id`` both are the records."""

    requests: pd.DataFrame  # one row per user-visible request, in the order of its first attempt
    attempts: pd.DataFrame  # every record, in the file's order
    request_of: IntArray  # per attempt: the position of its request in ``requests``
    final: BoolArray  # per attempt: the last of its request (what the user got)

    @property
    def retried(self) -> bool:
        """Whether any request took more than one attempt."""
        return len(self.attempts) > len(self.requests)


def request_ids(records: pd.DataFrame) -> pd.Series:
    """The ``request_id`` column as text, "" where a record has none (or the column is absent)."""
    if "request_id" not in records.columns:
        return pd.Series([""] * len(records), index=records.index, dtype="string")
    return records["request_id"].astype("string").fillna("")


def has_request_ids(records: pd.DataFrame) -> bool:
    """Whether any record names a request (a run with ``--retries``), without a pass over the
    rows when the column is a category (as `read_requests` gives it)."""
    if "request_id" not in records.columns or not len(records):
        return False
    column = records["request_id"]
    if isinstance(column.dtype, pd.CategoricalDtype):
        used = column.cat.remove_unused_categories().cat.categories
        return bool((used.astype(str) != "").any())
    return bool((column.astype("string").fillna("") != "").any())


def split_attempts(records: pd.DataFrame) -> Attempts:
    """``records`` as user-visible requests and attempts (see the module docstring).

    Attempts of one request are ordered by ``attempt``, then by start, so the file's order does
    not matter. Without any ``request_id`` the records are returned as they are (the same frame),
    so a run without retries is analyzed exactly as before.
    """
    n = len(records)
    positions = np.arange(n, dtype=np.int64)
    if not has_request_ids(records):  # no retries: nothing to collapse, and nothing copied
        return Attempts(records, records, positions, np.ones(n, dtype=bool))
    ids = request_ids(records).to_numpy(dtype=object)
    has_id = ids != ""
    if not has_id.any():
        return Attempts(records, records, positions, np.ones(n, dtype=bool))
    start = records["start_unix_s"].to_numpy(dtype=np.float64)
    latency = records["latency_ms"].to_numpy(dtype=np.float64)
    number = records["attempt"].to_numpy(dtype=np.float64) if "attempt" in records else np.zeros(n)
    grouped = positions[has_id]
    codes, _ = pd.factorize(ids[has_id])
    codes = np.asarray(codes, dtype=np.int64)
    # An attempt without its number sorts first (-1), then by start: the order it was sent in.
    order = np.lexsort((start[grouped], np.nan_to_num(number[grouped], nan=-1.0), codes))
    sorted_codes = codes[order]
    begins = np.flatnonzero(np.r_[True, np.diff(sorted_codes) != 0])
    ends = np.r_[begins[1:], sorted_codes.size] - 1
    # Codes run 0..k-1 in order of first appearance, so the k-th group of the sort is code k.
    first = grouped[order[begins]]
    last = grouped[order[ends]]
    # Each request is anchored at its first attempt (its place in the file and on the timeline)
    # and takes every other column from its last.
    anchor = np.concatenate([positions[~has_id], first])
    source = np.concatenate([positions[~has_id], last])
    by_anchor = np.argsort(anchor, kind="stable")
    anchor, source = anchor[by_anchor], source[by_anchor]
    requests = records.iloc[source].reset_index(drop=True)
    # From the first send to the last attempt's end: written to the µs, so the gap between two
    # starts is a whole number of µs, rounded so (a request of one attempt keeps its latency).
    gap_ms = np.round((start[source] - start[anchor]) * 1000.0, 3)
    requests["start_unix_s"] = start[anchor]
    requests["intended_unix_s"] = records["intended_unix_s"].to_numpy(dtype=np.float64)[anchor]
    requests["latency_ms"] = latency[source] + gap_ms
    row_of_anchor = np.empty(n, dtype=np.int64)
    row_of_anchor[anchor] = np.arange(anchor.size, dtype=np.int64)
    request_of = row_of_anchor.copy()  # right for the records without an id: each anchors itself
    request_of[grouped] = row_of_anchor[first[codes]]
    final = np.zeros(n, dtype=bool)
    final[source] = True
    return Attempts(requests, records, request_of, final)


def attempt_timeline(records: pd.DataFrame) -> pd.DataFrame:
    """``records`` with the open loop's due time kept only on first attempts.

    A retry is sent when its backoff ends, not when any schedule said: its latency counts from
    its own send (`loadbench.record.records.from_due_time` then leaves it as it is).
    """
    if "attempt" not in records.columns:
        return records
    number = records["attempt"].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        retry = number >= 2
    if not retry.any():
        return records
    intended = records["intended_unix_s"].to_numpy(dtype=np.float64)
    return records.assign(intended_unix_s=np.where(retry, np.nan, intended))
