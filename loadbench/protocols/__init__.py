"""What model endpoints speak: request bodies, response extractors, Server-Sent Events, LLM
completions and workloads, media durations, and the probe that discovers a target before any load.

No Locust: scenarios (`loadbench.scenario`) and the driver use these pieces.
"""
