"""What-if analysis: queueing theory and Monte-Carlo simulation from a measured run's service
times, validated against measured runs (``docs/whatif.md``).

Reads run and sweep directories only (it sits with the analysis stages, below the drivers):
`fit` reduces a run to service times and overheads, `queueing` holds the closed forms,
`simulate` the discrete-event simulation, `predict` the predictions and the capacity plan,
`validate` the check against a sweep's steps, `render` the table and plot, `whatif` the command.
"""

from loadbench.whatif.fit import Fit, fit_run
from loadbench.whatif.predict import METHODS, Options
from loadbench.whatif.validate import validate_sweep
from loadbench.whatif.whatif import WhatifRequest, run_whatif, write_whatif

__all__ = [
    "METHODS",
    "Fit",
    "Options",
    "WhatifRequest",
    "fit_run",
    "run_whatif",
    "validate_sweep",
    "write_whatif",
]
