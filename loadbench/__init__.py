"""loadbench: load testing and latency benchmarking for deployed ML model endpoints.

The pipeline is drive (Locust) -> record (run directory) -> analyze -> report; the run
directory format in ``docs/run-format.md`` is the contract between stages.
"""

from __future__ import annotations

__version__ = "0.1.0"
