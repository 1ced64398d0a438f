"""The run directory: its files (``meta.json``, ``requests.csv``, ``samples.csv``, ...), their
columns, writers and readers. The format every stage reads and writes (docs/run-format.md).

Pure I/O: no Locust, no analysis. Imports nothing of loadbench but `loadbench.errors`.
"""
