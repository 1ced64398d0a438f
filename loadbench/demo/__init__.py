"""The embedded demo endpoint: a real digits classifier, an ASR stand-in and an LLM simulator
behind a real HTTP server that speaks every protocol loadbench's scenarios do (`server`, with its
service time and FIFO queue of workers in `service`,
`routes_v1`, `embeddings`), several replicas of it in one process, each naming itself in
``X-Served-By`` (`replicas`, ``--replicas``), and the spawner that runs it in a child process.

Never imports Locust or gevent: it runs in its own process.

Public surface: `server.make_server` / `serve_demo`, `spawn.spawn_demo` / `stop_demo` (a child
process for ``--demo``), `spawn.start_replicas` (N replicas in one, for ``sweep --demo --replicas``), `args.add_demo_arguments`; ``python -m loadbench.demo`` serves it.
"""
