"""Run options about the server under test: its own counters (``--server-stats``), the run's
label among model variants (``--label``) and how its first requests after a (re)start went
(``--cold-start``). Kept apart from `loadbench.cli.options`, which the sampling group takes
``--server-stats`` into."""

from __future__ import annotations

from typing import Any

from loadbench.errors import UsageError
from loadbench.values import argument_type, http_url

COLD_START_MAX = 100_000


def cold_start_count(text: str) -> int:
    """``--cold-start N``: how many of the run's first requests to report apart (1 to 100,000)."""
    try:
        count = int(text)
    except ValueError:
        raise UsageError(f"expected a whole number of requests, e.g. --cold-start 20, not {text!r}") from None
    if not 1 <= count <= COLD_START_MAX:
        raise UsageError(f"takes 1 to {COLD_START_MAX:,} requests, not {count}")
    return count


# `loadbench run` and `ui` (the sampling group): Triton's counters around the measured window.
SERVER_STATS_OPTION: tuple[tuple[str, ...], dict[str, Any]] = (
    ("--server-stats",),
    {
        "type": argument_type(http_url),  # fetched as given, query included
        "metavar": "URL",
        "help": "read the server's own time per request from Triton's counters before and after the "
        "measured window: its statistics API (http://HOST:8000/v2/models/NAME/stats) or its metrics "
        "port (http://HOST:8002/metrics). A refused statistics API (nvidia-pytriton restricts it) falls "
        "back to the metrics port of the same host. Gives summary.json latency_breakdown.processing_ms "
        "and request_ms (docs/metrics.md 'Processing time: the server's own')",
    },
)

# `loadbench run --label`: the run's name among model variants (`loadbench variants`).
LABEL_OPTION: tuple[tuple[str, ...], dict[str, Any]] = (
    ("--label",),
    {
        "metavar": "NAME",
        "help": "name this run among model variants, e.g. --label int8: recorded as meta.json "
        "settings.label and used by `loadbench variants` (default there: the run directory's name)",
    },
)

# `loadbench run --records`: the record file's format once the run ended.
RECORDS_OPTION: tuple[tuple[str, ...], dict[str, Any]] = (
    ("--records",),
    {
        "choices": ("csv", "parquet"),
        "default": "parquet",
        "help": "the format of the run's request records once it ended: parquet (default): requests.csv "
        "is written during the run as always (a killed run keeps it) and converted at the end into "
        "requests.parquet (zstd, a tenth of the size or less; run format 2, read by `loadbench report` and "
        "every other command; `loadbench export DIR --csv` gives the CSV back), or csv: requests.csv "
        "stays (run format 1), for grep/awk on the records or a tool that reads CSV",
    },
)

# `loadbench run --cold-start`: the first requests after the target (re)started, reported apart.
COLD_START_OPTION: tuple[tuple[str, ...], dict[str, Any]] = (
    ("--cold-start",),
    {
        "type": argument_type(cold_start_count),
        "metavar": "N",
        "default": 0,
        "help": "report the run's first N requests apart from the rest (summary.json cold_start: the "
        "first one's latency, their p50 and max, against the measured window's p50), warmup or not: "
        "what a target that has just (re)started costs its first users. Start (or restart) the target "
        "right before the run (the embedded demo is started by the run itself), and add --no-preflight "
        "to measure the very first request, which the preflight would otherwise send unrecorded",
    },
)
