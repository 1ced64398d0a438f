"""The analyze stage: a run directory in, ``summary.json`` and ``timeseries.csv`` out.

Latency percentiles, throughput, the real-time ratio, LLM token timings, goodput, quality under load,
resources, validity, SLO gates and sweep capacity. Pure math over records; never imports Locust,
`loadbench.drive`, `loadbench.ui` or `loadbench.cli`. Definitions: docs/metrics.md.

Public surface: `analyzer.analyze_run(run_dir)` and `analyzer.compute_summary` (its `Summary`
type), composed of one section per module: `traffic`, `window`, `llm_metrics`, `quality`,
`resources`, `trust`, `slo`, `stages`, `network`, `replicas` (replicas and targets), `retries`;
`stats` (percentiles, rates, `value_at`), `attempts` (``--retries``' attempts collapsed into the
requests users saw, `attempts.split_attempts`), `capacity` (sweep arithmetic) and `scaling`
(efficiency per replica count, the USL fit) beside them. A run of any length: `store.RecordStore`
(its records in DuckDB, out of core) and `bounded` (`open_bounded`, `bounded_summary`: the same
summary from the store), finishing like the in-memory path in `finish`.
"""
