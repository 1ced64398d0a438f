"""`loadbench variants`: model variants (full precision, int8, pruned, distilled ...) side by side
on quality, latency, throughput, memory and energy, with a Pareto plot.

`variants` builds ``variants.json``'s dict from run (or sweep) directories, `figures` measures one
variant with its bootstrap intervals, `render` writes ``variants.md`` / ``.html`` / ``.json``.
"""
