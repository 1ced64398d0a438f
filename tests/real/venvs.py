"""Cached virtualenvs for the real third-party model servers of ``tests/real/``.

Each server is installed from PyPI into a virtualenv of its own, never into loadbench's: their
pins (torch, protobuf, fastapi, numpy) fight each other and ours. A venv is built once per
requirement set, under ``$LOADBENCH_REAL_CACHE`` (default ``~/.cache/loadbench/real``, outside
the clone, so CI on the same machine and later runs reuse it), and is keyed by a hash of its
requirements: changing a pin builds a new one beside the old.

    python tests/real/venvs.py build [NAME ...]    build (or reuse) the named venvs, or all
    python tests/real/venvs.py list                 what is cached, and where

A venv that cannot be built here (no wheel for this Python, a registry that says no) is not
faked: :func:`ensure` raises :class:`Unavailable` with pip's last lines, and the tests skip
with that reason. Builds take a file lock, so two pytest workers never build the same venv.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

CACHE = Path(os.environ.get("LOADBENCH_REAL_CACHE") or Path.home() / ".cache" / "loadbench" / "real")
INSTALL_TIMEOUT_S = 1800.0  # torch and the Triton wheel are large; a 2-core machine unpacks slowly


# The Debian package that puts each command a server needs on PATH, for the skip reason.
DEBIAN_PACKAGES = {"java": "default-jre-headless"}


class Unavailable(Exception):
    """The server cannot be installed on this machine; the message says why."""


@dataclass(frozen=True)
class ServerEnv:
    """One server's virtualenv: its name and what ``pip install`` gets, in order of steps."""

    name: str
    steps: tuple[tuple[str, ...], ...]
    #: Debian commands the server needs on PATH (``java`` for TorchServe), checked, not installed.
    commands: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        text = json.dumps([self.steps, sys.version_info[:2]])
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def path(self) -> Path:
        return CACHE / f"{self.name}-{self.key}"

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def bin(self, command: str) -> Path:
        return self.path / "bin" / command


# One entry per server; each test module takes its own. Pins are the versions the conformance
# results in docs/servers.md were measured with.
SERVERS: dict[str, ServerEnv] = {}


def register(env: ServerEnv) -> ServerEnv:
    SERVERS[env.name] = env
    return env


def ensure(env: ServerEnv) -> Path:
    """The venv's directory, built first when missing; raises :class:`Unavailable`."""
    for command in env.commands:
        if shutil.which(command) is None:
            package = DEBIAN_PACKAGES.get(command, "the Debian package that has it")
            raise Unavailable(f"{env.name} needs `{command}` on PATH: apt-get install {package}")
    done = env.path / ".loadbench-ready"
    if done.exists():
        return env.path
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{env.name}-{env.key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be building it: wait for it
        if done.exists():
            return env.path
        failed = CACHE / f"{env.name}-{env.key}.failed"
        if failed.exists():
            raise Unavailable(failed.read_text())
        _build(env, failed)
        done.write_text(time.strftime("%Y-%m-%dT%H:%M:%S") + "\n")
    return env.path


def _build(env: ServerEnv, failed: Path) -> None:
    if env.path.exists():
        shutil.rmtree(env.path)  # a half-built venv from an interrupted run
    log = CACHE / f"{env.name}-{env.key}.log"
    with log.open("w") as out:
        commands = [[sys.executable, "-m", "venv", str(env.path)]]
        commands.append([str(env.python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
        commands += [[str(env.python), "-m", "pip", "install", "--quiet", *step] for step in env.steps]
        for command in commands:
            out.write("$ " + " ".join(command) + "\n")
            out.flush()
            try:
                code = subprocess.run(
                    command,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=INSTALL_TIMEOUT_S,
                    env=_pip_env(env),
                ).returncode
            except subprocess.TimeoutExpired:
                # A time-out is not a "no": leave no .failed, so a later run tries again.
                raise Unavailable(
                    f"{env.name}: `{' '.join(command[3:])}` ran past {INSTALL_TIMEOUT_S:.0f} s"
                ) from None
            if code != 0:
                tail = log.read_text().strip().splitlines()[-6:]
                reason = f"{env.name} cannot be installed here: pip exited {code}: " + " | ".join(tail)
                if _is_refusal(tail):
                    failed.write_text(reason)  # a registry's "no" is final; do not retry every run
                raise Unavailable(reason)


def _pip_env(env: ServerEnv) -> dict[str, str]:
    return {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1", **env.env}


def _is_refusal(tail: list[str]) -> bool:
    text = " ".join(tail).lower()
    return "no matching distribution" in text or "could not find a version" in text


def _main(argv: list[str] | None = None) -> int:
    _load_all()
    parser = argparse.ArgumentParser(prog="venvs.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build (or reuse) the named venvs, or all")
    build.add_argument("names", nargs="*", help="server names (default: all)")
    sub.add_parser("list", help="what is cached, and where")
    args = parser.parse_args(argv)
    if args.command == "list":
        for name, env in sorted(SERVERS.items()):
            state = "ready" if (env.path / ".loadbench-ready").exists() else "not built"
            print(f"{name:12} {state:10} {env.path}")
        return 0
    names = args.names or sorted(SERVERS)
    unknown = [name for name in names if name not in SERVERS]
    if unknown:
        print(
            f"venvs.py: unknown server {unknown[0]!r}; known: {', '.join(sorted(SERVERS))}", file=sys.stderr
        )
        return 2
    status = 0
    for name in names:
        started = time.monotonic()
        try:
            path = ensure(SERVERS[name])
        except Unavailable as error:
            print(f"{name}: SKIP {error}")
            status = 1
            continue
        print(f"{name}: ready in {time.monotonic() - started:.0f} s at {path}")
    return status


def _load_all() -> None:
    """Import every server module, so that each registers its venv."""
    import importlib

    here = Path(__file__).resolve().parent
    sys.path[:0] = [str(here), str(here.parent)]  # as pytest's rootdir-less imports see them
    for module in sorted(here.glob("server_*.py")):
        importlib.import_module(module.stem)


if __name__ == "__main__":
    # The server modules `from venvs import register`: without this they would import a second
    # copy of this file and register into its SERVERS, not this one's, and none would be known.
    sys.modules.setdefault("venvs", sys.modules[__name__])
    sys.exit(_main())
