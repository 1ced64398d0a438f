"""Shared pytest configuration: the ``--update-goldens`` option for golden-file tests, and the
``burner`` fixture (a real child process that burns one core and holds 200 MiB)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from helpers import BURNER, serving

from loadbench.demo.server import make_server


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        default=False,
        help="rewrite the golden files under tests/data/ from the current output instead of comparing",
    )


@pytest.fixture
def update_goldens(request: pytest.FixtureRequest) -> bool:
    """True when the run was started with ``--update-goldens``."""
    return bool(request.config.getoption("--update-goldens"))


@pytest.fixture
def burner() -> Iterator[subprocess.Popen[str]]:
    # Burns for up to 120 s (killed at teardown): a loaded machine gives it its CPU slowly.
    process = subprocess.Popen([sys.executable, "-c", BURNER, "120"], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    yield process
    process.kill()
    process.communicate()


@pytest.fixture(scope="module")
def demo_url() -> Iterator[str]:
    """The demo endpoint served from a thread of this test process (a real server on loopback)."""
    with serving(make_server(port=0)) as url:
        yield url
