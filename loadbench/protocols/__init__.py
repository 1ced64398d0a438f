"""What model endpoints speak: request bodies, response extractors, Server-Sent Events, LLM
completions and workloads, media durations, and the probe that discovers a target before any load.

No Locust: scenarios (`loadbench.scenario`) and the driver use these pieces.

Public surface: `bodies` (request bodies and answer checks per endpoint kind), `extract`
(`Extractor`, JSON paths to a prediction), `sse` (`SSEParser`), `completions` (`StreamMeter`),
`workloads` (LLM prompts and output lengths), `media` (`wav_duration_s`), `bodystream` (bodies as
they arrive, or whole within ``--max-body``), `responses` (unfollowed redirects), `servertiming`
(the server's own time from a response header), `exposition` (Prometheus text, `parse_text`),
`triton_stats` (Triton's own counters), and `probe` (`probe_target`, `check_reachable`, the `discover_*` functions).
"""
