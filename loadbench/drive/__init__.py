"""The drive stage: Locust in-process (library mode) -> a run directory of exact request records.

The runner, the run directory's life (begin, finish), locustfile loading, open-loop dispatch,
the recorder plugin, live progress and distributed (master/worker) runs.

Public surface: `runner.run(config, argv)` and `runner.prepare`, `config.RunConfig`,
`distributed` (`Master`, `run_worker`), `lifecycle` (`begin_run`, `finish_run`), and the Locust
plug-ins `recorder.Recorder`, `openloop`, `progress.Progress`.
"""
