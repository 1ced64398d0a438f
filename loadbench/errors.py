"""The one exception tree of loadbench.

LoadbenchError            anything the user can fix; the CLI prints one line, exit code 2
 ├── UsageError           a bad option, duration, header or scenario argument
 ├── TargetError          the target URL is malformed or does not answer
 ├── ScenarioError        a scenario name or locustfile that cannot be used
 └── RunDirError          a run directory that is missing, unwritable, or corrupt
"""

from __future__ import annotations


class LoadbenchError(Exception):
    """Base of every error loadbench reports as one line with exit code 2."""


class UsageError(LoadbenchError):
    """A command-line option or value that cannot be used."""


class TargetError(LoadbenchError):
    """The target endpoint's URL is malformed or the endpoint does not answer."""


class ScenarioError(LoadbenchError):
    """A scenario that cannot be found or loaded."""


class RunDirError(LoadbenchError):
    """A run directory that is missing, unwritable or holds corrupt files."""
