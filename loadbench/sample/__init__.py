"""Resource sampling beside the load: host, model-server process, load generator, GPUs (NVML),
Prometheus endpoints and remote agents, written into the run directory on the run's clock.

Runs in its own process (``python -m loadbench.sample.sampler``); never imports Locust.

Public surface: `sampler.SamplerProcess` (the process the driver starts), `collector.Collector`,
`hostmetrics`, `nvml.GpuReader`, `prometheus.Scraper`, `agent.serve_agent` and its
`puller.AgentPuller`.
"""
