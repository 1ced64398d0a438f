"""Workload control options of every built-in scenario: which payload each request sends
(``--popularity``), how many distinct bodies (``--distinct``), the draws' seed (``--seed``), and what
``meta.json`` records of them (`workload_settings`). `loadbench.scenario.helpers.Payloads` reads them.

No Locust: argparse only.
"""

from __future__ import annotations

from typing import Any

from loadbench.load.popularity import parse_popularity
from loadbench.values import argument_type, at_least_one


def popularity_text(text: str) -> str:
    """``--popularity`` as typed, checked (`parse_popularity`); an argparse ``type``."""
    parse_popularity(text)
    return text.strip().lower()


# ``--distinct K``: a whole number of distinct bodies, 1 or more; an argparse ``type``.
distinct_count = at_least_one("distinct bodies")


def add_workload_control(group: Any) -> None:
    """``--popularity``, ``--distinct`` and ``--seed``: which payload each request sends (`Payloads`)."""
    group.add_argument(
        "--popularity",
        type=argument_type(popularity_text, drop="--popularity "),
        default=None,
        metavar="uniform|zipf:S|repeat:P",
        help="which payload each request sends, for a known repeat structure (a cache's hit ratio): uniform, "
        "zipf:S (rank r with probability ~ r^-S, the first payload rank 1), or repeat:P (a payload already sent "
        "with probability P, else the next new one). Default: each in turn. Records payload_key",
    )
    group.add_argument(
        "--distinct",
        type=distinct_count,
        default=None,
        metavar="K",
        help="send K distinct bodies made from the payload(s), cycling the --data rows: an LLM prompt gets a "
        "short suffix, a tensor's first number a tiny change (labels kept). Records payload_key",
    )
    group.add_argument(
        "--seed",
        type=int,
        default=None,
        metavar="N",
        help="seed of --popularity's draws (default 0; loadbench run: its --seed, recorded; each worker "
        "process adds its number)",
    )


def workload_settings(options: Any) -> dict[str, Any]:
    """What meta.json's ``settings.workload`` records of a scenario's workload control."""
    return {
        "popularity": getattr(options, "popularity", None),
        "distinct": getattr(options, "distinct", None),
        "seed": getattr(options, "seed", None),
        "shared_prefix_tokens": getattr(options, "shared_prefix_tokens", None),
    }
