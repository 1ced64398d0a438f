"""``--metrics-port``, ``--metrics-bind`` and ``--metrics-linger``: the live Prometheus endpoint of
`loadbench run` (and of a distributed master, which receives every worker's records, and of
`loadbench ui`, each run in turn), served by `loadbench.drive.exporter`; ``--pushgateway`` and
``--push-interval``: the same figures pushed (`loadbench.drive.pushgateway`).
"""

from __future__ import annotations

import argparse

from loadbench.cli.options import Option, add_options, duration, positive_duration
from loadbench.demo.args import port

METRICS_OPTIONS: tuple[Option, ...] = (
    (
        ("--metrics-port",),
        {
            "type": port,
            "metavar": "PORT",
            "help": "serve the run's live figures in the Prometheus text format at "
            "http://BIND:PORT/metrics (0: a free port, said on the terminal unless --quiet); a busy port stops "
            "the run before the load (docs/metrics.md 'Live Prometheus endpoint')",
        },
    ),
    (
        ("--metrics-bind",),
        {
            "default": "127.0.0.1",
            "metavar": "ADDR",
            "help": "the address --metrics-port listens on (default 127.0.0.1; 0.0.0.0 for every interface)",
        },
    ),
    (
        ("--metrics-linger",),
        {
            "type": duration,
            "default": 30.0,
            "metavar": "TIME",
            "help": "after the load, keep serving until one scrape has read the final figures, "
            "at most TIME (default 30s)",
        },
    ),
    (
        ("--pushgateway",),
        {
            "metavar": "URL",
            "help": "push the same figures to a Prometheus Pushgateway (job=loadbench, run_id=the run's id) "
            "every --push-interval and at the end, for runs too short to scrape; an unreachable gateway "
            "stops the run before the load, a push that fails later is a notice",
        },
    ),
    (
        ("--push-interval",),
        {"type": positive_duration, "default": 5.0, "metavar": "TIME", "help": "default 5s"},
    ),
)


def add_metrics_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("live Prometheus figures (docs/metrics.md 'Live Prometheus endpoint')")
    add_options(group, METRICS_OPTIONS)
