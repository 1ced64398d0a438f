"""Several analyzed runs side by side: ``loadbench compare`` (verdicts with block-bootstrap
intervals) and ``loadbench history`` (key metrics over many runs).

Never imports Locust, `loadbench.drive`, `loadbench.ui` or `loadbench.cli`.

Public surface: `rundata.load_run`, `compare.compare_runs` / `compare_many` /
`check_comparable`, `rules.parse_rule`, `report.render_compare`, `verdict.verdict_text`, and
`history` (`expand_runs`, `load_history`, `render_history`; the runs and their series in
`history_runs`). A long run is read through its store (`runstore.StoredRun`), never into memory.
"""
