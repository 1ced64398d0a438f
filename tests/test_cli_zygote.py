"""The tests' warm `loadbench` (tests/cli_zygote.py): a command forked from the zygote exits, prints
and sees its working directory exactly as ``python -m loadbench`` started afresh does."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import cli_zygote
import psutil
import pytest
from cli_zygote import REPO, Zygote, run_afresh
from helpers import run_cli

BASE_ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    started = Zygote(BASE_ENV)
    yield started
    started.close()


@pytest.mark.parametrize(
    "argv",
    [
        ["--version"],
        ["run", "--users", "0"],  # a usage error: exit 2, one line on stderr
        ["report", "not-a-run"],  # relative to the working directory
        ["report", "a-directory"],  # exists there, but is no run directory
    ],
)
def test_a_forked_command_is_the_command_started_afresh(
    zygote: Zygote, tmp_path: Path, argv: list[str]
) -> None:
    (tmp_path / "a-directory").mkdir()
    forked = zygote.run(argv, tmp_path, BASE_ENV, 60)
    started = run_afresh(argv, tmp_path, BASE_ENV, 60)
    assert (forked.returncode, forked.stdout, forked.stderr) == (
        started.returncode,
        started.stdout,
        started.stderr,
    )
    assert forked.stdout + forked.stderr  # each says something


def test_a_command_past_its_timeout_is_killed_and_the_zygote_serves_on(zygote: Zygote) -> None:
    children = {p.pid for p in psutil.Process(zygote.process.pid).children()}
    with pytest.raises(subprocess.TimeoutExpired):
        zygote.run(["demo", "--port", "0"], REPO, BASE_ENV, 3)  # serves until stopped
    assert {p.pid for p in psutil.Process(zygote.process.pid).children()} == children
    assert zygote.run(["--version"], REPO, BASE_ENV, 60).returncode == 0


def test_another_environment_is_not_the_zygotes(zygote: Zygote) -> None:
    # A module may read a variable at import: the zygote imported under BASE_ENV only.
    assert zygote.usable(BASE_ENV)
    assert not zygote.usable({**BASE_ENV, "LOADBENCH_SOMETHING": "1"})
    assert not zygote.usable({k: v for k, v in BASE_ENV.items() if k != "PYTHONUNBUFFERED"})
    assert os.environ.get("LOADBENCH_SOMETHING") is None


def test_run_cli_forks_from_the_zygote_under_pytest() -> None:
    # pytest sets PYTEST_CURRENT_TEST anew for every test, and importing loadbench's gRPC module
    # sets GRPC_VERBOSITY for good: neither may send every command to a fresh interpreter (both
    # did, unnoticed, until this test).
    import loadbench.protocols.v2grpc  # noqa: F401

    run_cli("--version")
    zygote = cli_zygote.started()
    assert zygote is not None
    served = zygote.served
    assert run_cli("--version").stdout.startswith("loadbench ")
    assert cli_zygote.started() is zygote and zygote.served == served + 1
