"""The drive stage: Locust in-process (library mode) -> a run directory of exact request records.

The runner, the run directory's life (begin, finish), locustfile loading, open-loop dispatch,
the recorder plugin, live progress and distributed (master/worker) runs.
"""
