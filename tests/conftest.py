"""Shared pytest configuration: the ``--update-goldens`` option for golden-file tests, the
``burner`` fixture (a real child process that burns one core and holds 200 MiB), Ctrl-C for the
commands the tests start, loadbench's bytecode written once for all of them, and the slowest
test files first."""

from __future__ import annotations

import compileall
import json
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
from helpers import BURNER, REPO, serving

from loadbench.demo.server import make_server

_HUB_KEEPALIVE: list[object] = []


def pytest_configure(config: pytest.Config) -> None:
    """Let the commands the tests start take Ctrl-C, however the suite was started.

    A suite started in the background by a script (``make test-stress &``) inherits SIGINT
    ignored, and so would every command a test starts: Python keeps an inherited "ignore", so a
    test's Ctrl-C to ``loadbench sweep`` would go unnoticed and the sweep run to its end. A
    handler of our own is not inherited across exec: the commands start with the default.
    Then, once, loadbench's bytecode (`compile_bytecode_once`).
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if not hasattr(config, "workerinput"):  # once: in the xdist controller, or the only process
        compile_bytecode_once()


def compile_bytecode_once() -> None:
    """Write loadbench's (and the scenarios') bytecode once, where every process looks for it.

    The suite starts hundreds of ``python -m loadbench`` (and ``locust -f scenarios/...``)
    processes. Where ``PYTHONDONTWRITEBYTECODE`` is set (it is on the 2-core machine whose
    timings docs/benchmarks.md gives) none of them writes ``__pycache__``, so on a fresh clone
    each one compiled the loadbench modules it imports again: about 0.15 CPU-seconds a process.
    The files written are those Python writes itself without that variable (``__pycache__/`` is
    git-ignored); every import checks them against their source's mtime and size, so an edited
    module is compiled afresh, as before.
    """
    if not sys.flags.dont_write_bytecode:
        return  # the first process to import a module writes its bytecode
    for folder in (REPO / "loadbench", REPO / "scenarios"):
        # quiet=2: a file that cannot be compiled (or written) here fails where it is imported.
        compileall.compile_dir(folder, quiet=2)


DURATIONS = REPO / "tests" / "durations.json"  # each test file's seconds (tests/slowest.py writes it)
NEW_FILE_S = 5.0  # a file not yet timed: about a typical file's time


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slowest test files first, each file's tests in their own order.

    `make unit` hands whole files to its workers (``--dist loadfile``) in collection order
    (``--no-loadscope-reorder``; xdist's own order is by number of tests, which put the few long
    end-to-end tests of the web UI and the what-if validation last): a 110 s file handed out
    near the end ran on alone while the other workers sat idle. Longest first, the load evens
    out (the longest-processing-time rule). The order is the same in every worker (xdist
    requires it): it depends only on the committed durations.
    """
    try:
        seconds: dict[str, float] = json.loads(DURATIONS.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    place = {item.nodeid.split("::")[0]: i for i, item in reversed(list(enumerate(items)))}
    items.sort(
        key=lambda item: (
            -seconds.get(file := item.nodeid.split("::")[0], NEW_FILE_S),
            place[file],
        )
    )


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """Keep gevent's hub alive in a test process that imported Locust.

    Importing locust monkey-patches ``threading`` with gevent. A pytest-xdist worker then waits
    for its next test on a (patched) lock that execnet's own thread releases; when the hub has
    nothing else to watch, gevent raises ``LoopExit: This operation would block forever``
    instead of waiting, and xdist reports an INTERNALERROR. A greenlet that sleeps forever gives
    the hub a timer to watch, so the wait blocks until the release wakes it.
    """
    if _HUB_KEEPALIVE or "gevent.monkey" not in sys.modules:
        return
    import gevent
    import gevent.monkey

    if not gevent.monkey.is_module_patched("threading"):
        return

    def beat() -> None:
        while True:
            gevent.sleep(1.0)

    _HUB_KEEPALIVE.append(gevent.spawn(beat))


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
