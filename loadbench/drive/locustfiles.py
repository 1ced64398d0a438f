"""Locustfiles as loadbench runs them: find a scenario, import it, parse its options.

Consumes a scenario name (``json_post``) or a locustfile path; produces a `Scenario` (its User
classes and the options Locust's own parser read, the scenario's listeners included) and
applies the run's per-request timeout, TLS verification, redirects and ``--max-body`` to its users
(and ``--server-time-header`` to the recorder); runs the scenario's set-up (`set_up_scenario`).
Imports Locust: driving code only.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import locust
from locust import FastHttpUser
from locust.util.load_locustfile import load_locustfile

from loadbench.errors import LoadbenchError, ScenarioError, UsageError
from loadbench.load.balance import DEFAULT_POLICY
from loadbench.load.retry import DEFAULT_BACKOFF_S, DEFAULT_RETRY_ON
from loadbench.scenario.helpers import ModelUser, fire_init
from loadbench.scenario.routing import TARGETS_OPTION
from loadbench.values import is_grpc_url, is_inprocess_url

BUILTIN_SCENARIOS_DIR = Path(__file__).resolve().parents[2] / "scenarios"


@dataclass
class Scenario:
    """A loaded locustfile: its name, file, User classes and parsed options."""

    name: str
    path: Path
    user_classes: list[type]
    options: argparse.Namespace
    reason: str


def builtin_scenarios() -> list[str]:
    """Names of the scenarios shipped in ``scenarios/``."""
    return sorted(p.stem for p in BUILTIN_SCENARIOS_DIR.glob("*.py") if not p.name.startswith("_"))


def resolve_scenario(name_or_path: str) -> Path:
    """A scenario name (``json_post``) or a locustfile path -> an existing file."""
    if name_or_path.endswith(".py") or os.sep in name_or_path:
        path = Path(name_or_path)
        if not path.is_file():
            raise ScenarioError(f"scenario file {name_or_path} does not exist")
        return path.resolve()
    for folder in (Path.cwd() / "scenarios", BUILTIN_SCENARIOS_DIR):
        candidate = folder / f"{name_or_path}.py"
        if candidate.is_file():
            return candidate.resolve()
    known = ", ".join(builtin_scenarios()) or "none found"
    raise ScenarioError(f"unknown scenario {name_or_path!r} (built-in: {known}; or give a locustfile path)")


def load_scenario(path: Path, target: str, scenario_args: list[str], reason: str) -> Scenario:
    """Import a locustfile and parse its options with Locust's own parser (and its listeners)."""
    try:
        user_classes, _shapes = load_locustfile(str(path))
    except SyntaxError as exc:
        raise ScenarioError(f"scenario {path} line {exc.lineno}: syntax error: {exc.msg}") from None
    except LoadbenchError:
        raise
    except Exception as exc:
        raise ScenarioError(f"scenario {path} failed to import: {type(exc).__name__}: {exc}") from None
    if not user_classes:
        raise ScenarioError(f"scenario {path} defines no Locust User class")
    # No config files: a locust.conf or pyproject.toml in the cwd must not change a loadbench run.
    parser = locust.argument_parser.get_parser(default_config_files=[])

    def fail(message: str) -> None:
        raise UsageError(f"scenario {path.stem}: {message}")

    parser.error = fail  # type: ignore[method-assign]
    options = parser.parse_args(["-f", str(path), "-H", target, *scenario_args])
    return Scenario(path.stem, path, list(user_classes.values()), options, reason)


class TransportSettings(Protocol):
    """What `apply_transport_settings` gives a scenario: a run's `RunConfig`, a worker's settings."""

    timeout_s: float
    insecure: bool
    follow_redirects: int
    max_body_bytes: int
    server_time_header: str | None
    replica_header: str | None
    replica_field: str | None
    server_time_field: str | None
    cache_header: str | None
    cache_field: str | None
    seed: int | None  # the scenario's --seed (--popularity's draws); None: as the scenario's options say
    targets: list[str]
    balance: str | None
    retries: int
    retry_on: list[str] | None
    retry_backoff_s: list[float] | None
    retry_budget: float | None


def apply_transport_settings(scenario: Scenario, settings: TransportSettings) -> None:
    """Give every user the run's per-request timeout, TLS verification, redirect bound and
    ``--max-body``, and the recorder what it reads from answers (``--server-time-header``,
    ``--replica-header``, ``--cache-header`` and their ``-field`` forms).

    Through the options (which loadbench's `ModelUser` and the recorder read) and, for other
    fast-client users, through the class attributes Locust's `FastHttpUser` reads when it builds
    its client (their bodies are read whole by Locust: ``--max-body`` needs a `ModelUser`).
    """
    if is_grpc_url(str(scenario.options.host or "")) and any(
        issubclass(cls, FastHttpUser) for cls in scenario.user_classes
    ):
        raise UsageError(
            f"scenario {scenario.name} sends HTTP, and a grpc:// target speaks gRPC: give --scenario "
            "kserve_v2_grpc (or none), or the server's HTTP port as http://HOST:PORT"
        )
    if is_inprocess_url(str(scenario.options.host or "")) and any(
        issubclass(cls, FastHttpUser) for cls in scenario.user_classes
    ):
        raise UsageError(
            f"scenario {scenario.name} sends HTTP, and a python:// or onnx:// target is called in this "
            "process: give --scenario inprocess (or none)"
        )
    if (settings.targets or settings.retries) and not all(
        issubclass(c, ModelUser) for c in scenario.user_classes
    ):
        raise UsageError(
            f"scenario {scenario.name}: several targets and --retries need users that send through loadbench's "
            "session (loadbench.scenario.ModelUser, as every built-in HTTP scenario's do)"
        )
    scenario.options.timeout = settings.timeout_s
    scenario.options.insecure = settings.insecure
    scenario.options.follow_redirects = settings.follow_redirects
    scenario.options.max_body = settings.max_body_bytes
    scenario.options.server_time_header = settings.server_time_header
    scenario.options.replica_header = settings.replica_header
    scenario.options.replica_field = settings.replica_field
    scenario.options.server_time_field = settings.server_time_field
    scenario.options.cache_header = settings.cache_header
    scenario.options.cache_field = settings.cache_field
    if settings.seed is not None:
        scenario.options.seed = settings.seed
    # Several targets and retries: the session's router reads these (loadbench.scenario.routing).
    setattr(scenario.options, TARGETS_OPTION, list(settings.targets))
    scenario.options.balance = settings.balance or DEFAULT_POLICY
    scenario.options.retries = settings.retries
    scenario.options.retry_on = tuple(settings.retry_on or DEFAULT_RETRY_ON)
    scenario.options.retry_backoff = tuple(settings.retry_backoff_s or DEFAULT_BACKOFF_S)
    scenario.options.retry_budget = settings.retry_budget
    for cls in scenario.user_classes:
        if issubclass(cls, FastHttpUser):
            cls.network_timeout = cls.connection_timeout = settings.timeout_s
            cls.insecure = settings.insecure
            cls.max_redirects = settings.follow_redirects


def set_up_scenario(scenario: Scenario, environment: Any, runner: Any, web_ui: Any = None) -> None:
    """Run the scenario's own set-up (Locust's ``init``: load data, discover the model).

    Before anything is written, so a failed set-up leaves no run directory behind; its first
    failure is one line (`ScenarioError`, exit 2).
    """
    failures = fire_init(environment, runner, web_ui)
    if failures:
        raise ScenarioError(f"scenario {scenario.name}: {failures[0]}")
