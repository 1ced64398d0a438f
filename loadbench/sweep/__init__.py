"""``loadbench sweep``: one ordinary run per offered load (each a ``loadbench run`` process),
then the throughput-latency curve, knee, capacity and cost.

Public surface: `sweep.SweepConfig`, `sweep.run_sweep`, `report.render_sweep`.
"""
