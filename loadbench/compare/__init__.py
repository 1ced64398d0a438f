"""Several analyzed runs side by side: ``loadbench compare`` (verdicts with block-bootstrap
intervals) and ``loadbench history`` (key metrics over many runs).

Never imports Locust, `loadbench.drive`, `loadbench.ui` or `loadbench.cli`.
"""
