"""The load to offer, as data: shapes (ramp, step, spike stages) and open-loop arrival schedules.

Pure: no Locust, no I/O beyond reading a stages or trace file. The driver turns these into
Locust users and schedules; the analyzer reads them back from ``meta.json``.

Public surface: `shapes` (`Stage`, `parse_shape`, `read_stages`, `level_at`, `rate_function`) and
`arrivals` (`Arrival`, `arrival_offsets`, `read_trace`).
"""
