"""loadbench inside Locust's web UI: every start/stop in the UI is one run directory with its report."""
