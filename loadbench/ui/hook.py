"""loadbench's tab in plain ``locust -f SCENARIO``'s web UI: import this module in a locustfile.

Under plain ``locust`` with its web UI, each start/stop in the UI is then one run directory with
its report, as under ``loadbench ui``: ``--loadbench-reports-dir DIR`` and
``--loadbench-warmup SECONDS`` set where and how. ``loadbench run`` and ``loadbench ui`` set
themselves up (library mode) and under ``--headless`` nothing is installed, so the import costs
a scenario nothing elsewhere. The built-in scenarios import it::

    import loadbench.ui.hook  # noqa: F401 - loadbench's tab in plain locust's web UI
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from locust import events
from locust.env import Environment

from loadbench.drive.config import RunConfig
from loadbench.drive.locustfiles import Scenario
from loadbench.redact import redact_argv
from loadbench.scenario.routing import routing_targets
from loadbench.ui.plugin import WebUIPlugin
from loadbench.values import DEFAULT_MAX_BODY_BYTES


@events.init_command_line_parser.add_listener
def web_ui_options(parser: Any) -> None:
    # Settings of the loadbench plugin under plain `locust -f SCENARIO` (web UI only).
    group = parser.add_argument_group("loadbench in the Locust web UI")
    group.add_argument(
        "--loadbench-reports-dir",
        default="reports",
        metavar="DIR",
        help="where each start/stop in the web UI writes its run directory (default reports/)",
    )
    group.add_argument(
        "--loadbench-warmup",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="requests starting in this first part of a run are excluded from its metrics (default 2)",
    )


@events.init.add_listener
def web_ui_plugin(environment: Any, web_ui: Any = None, **_: Any) -> None:
    # Plain `locust -f SCENARIO` with its web UI: plug loadbench in. `loadbench run` and
    # `loadbench ui` (library mode) set themselves up.
    if web_ui is None or getattr(environment, "loadbench_library_mode", False):
        return
    install_from_locust(environment)


def install_from_locust(environment: Environment) -> WebUIPlugin:
    """Plug loadbench into a ``locust -f SCENARIO`` web UI."""
    options = environment.parsed_options
    path = Path(environment.locustfile or "locustfile.py")
    scenario = Scenario(
        path.stem,
        path.resolve(),
        list(environment.user_classes),
        options,  # type: ignore[arg-type]
        "run from the Locust web UI (locust -f)",
    )
    targets = routing_targets(options)
    base = RunConfig(
        target=environment.host or "",
        headers=list(getattr(options, "header", None) or []),
        # The whole command line, for scrubbing secrets (e.g. a key in --path) from records.
        scenario_args=sys.argv[1:],
        reports_dir=Path(getattr(options, "loadbench_reports_dir", None) or "reports").resolve(),
        warmup_s=float(getattr(options, "loadbench_warmup", 2.0)),
        timeout_s=float(getattr(options, "timeout", None) or 60.0),
        insecure=bool(getattr(options, "insecure", False)),
        follow_redirects=int(getattr(options, "follow_redirects", 0) or 0),
        max_body_bytes=int(getattr(options, "max_body", None) or DEFAULT_MAX_BODY_BYTES),
        server_time_header=getattr(options, "server_time_header", None) or None,
        replica_header=getattr(options, "replica_header", None) or None,
        replica_field=getattr(options, "replica_field", None) or None,
        server_time_field=getattr(options, "server_time_field", None) or None,
        cache_header=getattr(options, "cache_header", None) or None,
        cache_field=getattr(options, "cache_field", None) or None,
        # Several targets (--host and --targets FILE) and retries, as the locustfile's options say.
        targets=targets if len(targets) > 1 else [],
        balance=getattr(options, "balance", None) if len(targets) > 1 else None,
        retries=int(getattr(options, "retries", 0) or 0),
        retry_on=list(getattr(options, "retry_on", None) or []) or None,
        retry_backoff_s=list(getattr(options, "retry_backoff", None) or []) or None,
        retry_budget=getattr(options, "retry_budget", None),
    )
    argv = ["locust", *sys.argv[1:]]
    return WebUIPlugin(environment, base, scenario, redact_argv(argv)).install()
