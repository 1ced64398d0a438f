"""The report stage: an analyzed run directory in, ``report.html`` and ``summary.md`` out.

Also the HTML and plot kits that the compare, history and sweep reports share. Never imports
Locust, `loadbench.drive`, `loadbench.ui` or `loadbench.cli`.
"""
