"""A scenario's set-up (`on_setup`) under loadbench's drivers and under plain Locust.

Locust is imported in child processes only (it patches the standard library with gevent).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from helpers import REPO, json_server, run_cli

BROKEN = """
from locust import task

from loadbench.errors import ScenarioError
from loadbench.scenario import ModelUser, on_setup


@on_setup
def _load(environment):
    raise ScenarioError("no data here")


class BrokenUser(ModelUser):
    @task
    def nothing(self):
        pass
"""


def test_set_up_failures_stay_with_their_environment() -> None:
    script = textwrap.dedent(
        """
        import logging

        from locust import events
        from locust.env import Environment

        from loadbench.errors import ScenarioError
        from loadbench.scenario import helpers, on_setup

        calls = []

        @on_setup
        def broken(environment):
            calls.append(environment)
            raise ScenarioError("no data here")

        first, second = Environment(events=events), Environment(events=events)
        assert helpers.fire_init(first, None) == ["no data here"]
        assert helpers.fire_init(second, None) == ["no data here"]  # each run has its own
        assert first.loadbench_library_mode and calls == [first, second]

        # Plain locust: no driver collects them; the failure is logged as one line.
        seen = []
        handler = logging.Handler()
        handler.emit = lambda record: seen.append(record.getMessage())
        logging.getLogger("loadbench").addHandler(handler)
        events.init.fire(environment=Environment(events=events), runner=None, web_ui=None)
        assert seen == ["scenario set-up failed: no data here"], seen
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_a_failed_set_up_is_one_line_and_leaves_no_run(tmp_path: Path) -> None:
    locustfile = tmp_path / "broken.py"
    locustfile.write_text(BROKEN, encoding="utf-8")
    out = tmp_path / "run"
    with json_server(lambda handler, state: (200, {})) as (url, _):
        result = run_cli("run", "--target", url, "--scenario", str(locustfile), "-d", "5s", "--out", str(out))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == ["loadbench: error: scenario broken: no data here"], result.stderr
    assert not out.exists()
