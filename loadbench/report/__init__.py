"""The report stage: an analyzed run directory in, ``report.html`` and ``summary.md`` out.

Also the HTML and plot kits that the compare, history and sweep reports share. Never imports
Locust, `loadbench.drive`, `loadbench.ui` or `loadbench.cli`.

Public surface: `report.render_report(run_dir)` (``report.html`` + ``summary.md``) and the kits:
`fmt` (numbers), `html` (`esc`, tables, `render_template`, `trusted`), `markdown`, `plotkit`
and `plots` (figures from plain arrays and frames).
"""
