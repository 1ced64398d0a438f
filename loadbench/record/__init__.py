"""The run directory: its files (``meta.json``, ``requests.csv`` or ``requests.parquet``,
``samples.jsonl``, ...), their columns, writers and readers. The format every stage reads and
writes (docs/run-format.md).

Pure I/O: no Locust, no analysis. Imports nothing of loadbench but `loadbench.errors`.

Public surface: `rundir` (file names, `create_run_dir`, `read_meta`, `read_json`, `write_json`,
statuses), `records` (`COLUMNS`, `RequestRecord`, `RequestWriter`, `read_requests`,
`read_requests_checked`, `EXTRAS_KEY`, `Route`), `salvage` (`RecordDamage`, `damage_of`: what a
damaged record file lost), `columnar` (`read_run_requests`: a run's records from whichever file
holds them; `records_writer`, `convert_csv`, `write_csv`: the Parquet format) and `series`
(`read_samples`, `read_users`, `read_timeseries`, `UsersWriter`).
"""
