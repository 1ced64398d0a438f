"""The run directory: its files (``meta.json``, ``requests.csv``, ``samples.csv``, ...), their
columns, writers and readers. The format every stage reads and writes (docs/run-format.md).

Pure I/O: no Locust, no analysis. Imports nothing of loadbench but `loadbench.errors`.

Public surface: `rundir` (file names, `create_run_dir`, `read_meta`, `read_json`, `write_json`,
statuses), `records` (`COLUMNS`, `RequestRecord`, `RequestWriter`, `read_requests`,
`EXTRAS_KEY`, `Route`) and `series` (`read_samples`, `read_users`, `read_timeseries`).
"""
