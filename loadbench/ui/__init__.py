"""loadbench inside Locust's web UI: every start/stop in the UI is one run directory with its report.

Public surface: `plugin.serve` (``loadbench ui``), `hook` (import it in a locustfile for the tab
under plain ``locust -f``), `live` (the tab's figures, without Locust).
"""
