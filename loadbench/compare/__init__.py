"""Several analyzed runs side by side: ``loadbench compare`` (verdicts with block-bootstrap
intervals) and ``loadbench history`` (key metrics over many runs).

Never imports Locust, `loadbench.drive`, `loadbench.ui` or `loadbench.cli`.

Public surface: `rundata.load_run`, `compare.compare_runs` / `compare_many`, `rules.parse_rule`,
`report.render_compare`, and `history` (`load_history`, `render_history`).
"""
