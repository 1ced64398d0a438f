"""``loadbench sweep``: one ordinary run per offered load (each a ``loadbench run`` process),
then the throughput-latency curve, knee, capacity and cost.

With ``--replicas``, one capacity search per number of replicas, then scaling efficiency and a
Universal Scalability Law fit (``scaling.json``).

Public surface: `sweep.SweepConfig`, `sweep.run_sweep`, `report.render_sweep`; `scaling.ScalingConfig`,
`scaling.run_scaling`, `scaling_report.render_scaling`.
"""
